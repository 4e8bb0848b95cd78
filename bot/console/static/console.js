// Attendant agent console. Plain JS, no build step. Everything from the server is put on the page with
// textContent (never innerHTML): caller words, names and the agent's own note are text, not markup.
"use strict";

(function () {
  const STATUS_LABEL = {
    ringing: "Incoming call",
    answered: "On call",
    withdrawn: "Withdrawn",
    wrapup: "Wrap-up",
    done: "Finished",
  };
  const WHY_LABEL = {
    "ring-no-answer": "not answered in time",
    abandoned: "the caller hung up",
    "answered-elsewhere": "answered by a colleague",
  };
  const LIVE = new Set(["ringing", "answered", "wrapup"]);

  const state = {
    me: null,
    cards: new Map(), // call_id -> card
    order: [], // call ids, newest first
    shown: null, // call id in the main area
    pinned: null, // call id the agent opened from the list
    received: new Map(), // call_id -> {status, at: performance.now(), remaining}
    formStatus: new Map(), // call_id -> text
  };

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const field = (root, name) => root.querySelector(`[data-f="${name}"]`);

  function announce(text) {
    const box = $("announcer");
    box.textContent = "";
    window.setTimeout(() => { box.textContent = text; }, 50);
  }

  function clock(seconds) {
    const s = Math.max(0, Math.round(seconds));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  function human(text) {
    return String(text).replace(/[_-]+/g, " ");
  }

  function callerName(card) {
    const v = card.view || {};
    if (v.customer && v.customer.name) return v.customer.name;
    if (v.caller_number) return v.caller_number;
    return "Unknown caller";
  }

  function reasonLine(card) {
    const v = card.view || {};
    const parts = [];
    if (v.reason) parts.push(human(v.reason));
    if (v.skill) parts.push(human(v.skill));
    return parts.join(" · ");
  }

  // --- the main card -------------------------------------------------------------------------------

  function currentId() {
    if (state.pinned && state.cards.has(state.pinned)) return state.pinned;
    for (const id of state.order) {
      const c = state.cards.get(id);
      if (LIVE.has(c.status) || (c.status === "done" && !c.disposition)) return id;
    }
    return null;
  }

  function render() {
    const id = currentId();
    const main = $("current");
    const old = main.querySelector("article.card");
    if (!id) {
      if (old) old.remove();
      state.shown = null;
      $("empty").hidden = false;
      renderRecent();
      return;
    }
    const card = state.cards.get(id);
    $("empty").hidden = true;
    // Rebuild the card, but keep what the agent is typing in the wrap-up form.
    let keepNote = null;
    let keepChoice = null;
    if (old && state.shown === id) {
      const note = field(old, "note");
      keepNote = note ? note.value : null;
      const chosen = old.querySelector('input[name="disposition"]:checked');
      keepChoice = chosen ? chosen.value : null;
    }
    const node = buildCard(card);
    if (keepNote !== null && !card.disposition) field(node, "note").value = keepNote;
    if (keepChoice && !card.disposition) {
      const radio = node.querySelector(`input[name="disposition"][value="${CSS.escape(keepChoice)}"]`);
      if (radio) radio.checked = true;
    }
    // Keep the keyboard where it was: the same control in the rebuilt card gets the focus back.
    const focusKey = old && state.shown === id ? focusKeyIn(old) : null;
    if (old) old.replaceWith(node); else main.appendChild(node);
    if (focusKey) {
      const again = node.querySelector(focusKey);
      if (again && !again.disabled) again.focus();
      else main.focus();
    }
    state.shown = id;
    tick();
    renderRecent();
  }

  function focusKeyIn(node) {
    const active = document.activeElement;
    if (!active || !node.contains(active)) return null;
    if (active.id) return `#${CSS.escape(active.id)}`;
    if (active.dataset.f) return `[data-f="${active.dataset.f}"]`;
    return null;
  }

  function buildCard(card) {
    const node = document.getElementById("card-tpl").content.firstElementChild.cloneNode(true);
    const v = card.view || {};
    node.dataset.status = card.status;
    node.dataset.callId = card.call_id;
    field(node, "status").textContent = STATUS_LABEL[card.status] || card.status;
    field(node, "queue").textContent = card.queue ? card.queue : "";
    field(node, "name").textContent = callerName(card);

    const verified = field(node, "verified");
    if (v.verified === true) {
      verified.textContent = v.verified_how ? `Verified (${human(v.verified_how)})` : "Verified";
      verified.classList.add("ok");
    } else if (v.verified === false) {
      verified.textContent = "Not verified";
      verified.classList.add("no");
    } else {
      verified.remove();
    }
    const identity = [];
    if (v.customer && v.customer.id) identity.push(`Customer ${v.customer.id}`);
    if (v.customer && v.customer.kind) identity.push(human(v.customer.kind));
    if (v.caller_number && v.customer && v.customer.name) identity.push(v.caller_number);
    if (v.language) identity.push(`Language ${v.language}`);
    field(node, "identity").textContent = identity.join(" · ");

    const summary = field(node, "summary");
    if (v.summary) summary.textContent = v.summary; else summary.remove();
    const facts = field(node, "facts");
    const addFact = (dl, term, value) => {
      if (value === null || value === undefined || value === "") return;
      const row = el("div", "fact");
      row.appendChild(el("dt", null, term));
      row.appendChild(el("dd", null, value));
      dl.appendChild(row);
    };
    addFact(facts, "Reason", v.reason ? human(v.reason) : null);
    addFact(facts, "Skill", v.skill ? human(v.skill) : null);
    addFact(facts, "Task", v.task ? human(v.task) : null);
    addFact(facts, "Priority", v.priority);
    addFact(facts, "Waited", typeof v.waited_s === "number" ? clock(v.waited_s) : null);
    if (v.unavailable) addFact(facts, "Context", "not available right now");
    if (card.status === "withdrawn" && card.why) addFact(facts, "Withdrawn", WHY_LABEL[card.why] || card.why);
    if (typeof card.talk_s === "number" && card.status !== "ringing") addFact(facts, "Talk time", clock(card.talk_s));

    const intents = field(node, "intents");
    for (const it of v.intents || []) {
      const li = el("li", "intent");
      li.appendChild(el("span", "intent-name", human(it.name)));
      if (typeof it.confidence === "number") {
        const pct = Math.round(it.confidence * 100);
        const meter = el("span", "meter");
        meter.setAttribute("role", "img");
        meter.setAttribute("aria-label", `confidence ${pct} percent`);
        const fill = el("span", "meter-fill");
        fill.style.width = `${pct}%`;
        meter.appendChild(fill);
        li.appendChild(meter);
        li.appendChild(el("span", "pct", `${pct}%`));
      }
      intents.appendChild(li);
    }
    if (!intents.children.length) field(node, "intents-panel").remove();

    const slots = field(node, "slots");
    for (const s of v.slots || []) addFact(slots, human(s.name), s.value);
    if (!slots.children.length) field(node, "slots-panel").remove();

    const history = field(node, "history");
    const kinds = [["orders", "Orders"], ["incidents", "Incidents"], ["bookings", "Bookings"]];
    for (const [kind, title] of kinds) {
      const items = (v.history || {})[kind];
      if (!items) continue;
      const box = el("section", "history-kind");
      box.appendChild(el("h3", null, `${title} (${items.length})`));
      const list = el("ul", "history-list");
      if (!items.length) list.appendChild(el("li", "muted small", "None"));
      for (const pairs of items) {
        const li = el("li");
        const [first, ...rest] = pairs;
        li.appendChild(el("span", "history-id", first[1]));
        const detail = rest.map(([k, val]) => `${human(k)}: ${val}`).join(" · ");
        if (detail) li.appendChild(el("span", "history-detail", detail));
        list.appendChild(li);
      }
      box.appendChild(list);
      history.appendChild(box);
    }
    if (!history.children.length) field(node, "history-panel").remove();

    const transcript = field(node, "transcript");
    const WHO = { caller: "Caller", bot: "Assistant", system: "System" };
    for (const line of v.transcript || []) {
      const li = el("li", `line ${line.who}`);
      li.appendChild(el("span", "who", WHO[line.who] || line.who));
      li.appendChild(el("span", "said", line.text));
      transcript.appendChild(li);
    }
    if (!transcript.children.length) transcript.appendChild(el("li", "muted small", "No transcript for this call."));

    if (card.status === "wrapup" || card.status === "done") buildWrapup(node, card);
    return node;
  }

  function buildWrapup(node, card) {
    const box = field(node, "wrapup");
    box.hidden = false;
    const radios = field(node, "dispositions");
    (state.me ? state.me.dispositions : []).forEach((d, i) => {
      const id = `disp-${i}`;
      const wrap = el("div", "radio");
      const input = el("input");
      input.type = "radio";
      input.name = "disposition";
      input.id = id;
      input.value = d.code;
      input.required = true;
      if (card.disposition === d.code) input.checked = true;
      if (card.disposition) input.disabled = true;
      const label = el("label", null, d.label);
      label.htmlFor = id;
      wrap.appendChild(input);
      wrap.appendChild(label);
      radios.appendChild(wrap);
    });
    const note = field(node, "note");
    const save = field(node, "save");
    const ready = field(node, "ready");
    const status = field(node, "form-status");
    if (card.disposition) {
      note.value = card.note || "";
      note.readOnly = true;
      save.disabled = true;
      save.textContent = "Disposition saved";
    }
    if (card.status === "done") {
      ready.hidden = true;
      field(node, "countdown-box").hidden = true;
    }
    status.textContent = state.formStatus.get(card.call_id) || "";
    field(node, "form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      submitDisposition(card.call_id);
    });
    ready.addEventListener("click", () => sayReady(card.call_id));
  }

  async function post(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = {}; }
    if (resp.status === 401) window.location.assign("/login");
    if (!resp.ok) throw new Error(data.error || `The console answered ${resp.status}`);
    return data;
  }

  // The card is rebuilt when the server pushes a change, so look the controls up each time.
  function live(callId, name) {
    const node = $("current").querySelector("article.card");
    return node && node.dataset.callId === callId ? field(node, name) : null;
  }

  function setFormStatus(callId, text) {
    state.formStatus.set(callId, text);
    const status = live(callId, "form-status");
    if (status) status.textContent = text;
  }

  async function submitDisposition(callId) {
    const save = live(callId, "save");
    if (!save || save.disabled) return; // one submission, however often it is clicked
    const form = live(callId, "form");
    const chosen = form.querySelector('input[name="disposition"]:checked');
    if (!chosen) {
      setFormStatus(callId, "Choose a disposition first.");
      form.querySelector('input[name="disposition"]').focus();
      return;
    }
    save.disabled = true;
    save.textContent = "Saving…";
    try {
      const data = await post(`/api/calls/${encodeURIComponent(callId)}/disposition`, {
        code: chosen.value,
        note: live(callId, "note").value,
      });
      const label = state.me.dispositions.find((d) => d.code === data.code);
      setFormStatus(callId, `Saved: ${label ? label.label : data.code}.`);
    } catch (err) {
      const again = live(callId, "save");
      if (again) {
        again.disabled = false;
        again.textContent = "Save disposition";
      }
      setFormStatus(callId, err.message);
    }
  }

  async function sayReady(callId) {
    const ready = live(callId, "ready");
    if (!ready || ready.disabled) return;
    const save = live(callId, "save");
    const chosen = live(callId, "form").querySelector('input[name="disposition"]:checked');
    if (save && !save.disabled && chosen) await submitDisposition(callId);
    const button = live(callId, "ready");
    if (button) button.disabled = true;
    try {
      await post("/api/ready", { call_id: callId });
      setFormStatus(callId, "You are available for the next call.");
      announce("You are available for the next call.");
    } catch (err) {
      const again = live(callId, "ready");
      if (again) again.disabled = false;
      setFormStatus(callId, err.message);
    }
  }

  // --- the list of calls ------------------------------------------------------------------------------

  function renderRecent() {
    const list = $("recent");
    list.textContent = "";
    $("recent-empty").hidden = state.order.length > 0;
    for (const id of state.order) {
      const card = state.cards.get(id);
      const li = el("li");
      const btn = el("button", "recent-item");
      btn.type = "button";
      if (id === state.shown) btn.setAttribute("aria-current", "true");
      btn.appendChild(el("span", `dot-status s-${card.status}`));
      const text = el("span", "recent-text");
      text.appendChild(el("span", "recent-name", callerName(card)));
      const sub = [STATUS_LABEL[card.status] || card.status];
      if (card.status === "withdrawn" && card.why) sub.push(WHY_LABEL[card.why] || card.why);
      else if (reasonLine(card)) sub.push(reasonLine(card));
      text.appendChild(el("span", "recent-sub", sub.join(" · ")));
      btn.appendChild(text);
      btn.addEventListener("click", () => {
        state.pinned = id === currentLiveId() ? null : id;
        render();
        $("current").focus();
      });
      li.appendChild(btn);
      list.appendChild(li);
    }
  }

  function currentLiveId() {
    const pinned = state.pinned;
    state.pinned = null;
    const id = currentId();
    state.pinned = pinned;
    return id;
  }

  // --- timers -----------------------------------------------------------------------------------------

  function tick() {
    const node = $("current").querySelector("article.card");
    if (!node) return;
    const card = state.cards.get(node.dataset.callId);
    const got = card ? state.received.get(card.call_id) : null;
    if (!card || !got) return;
    const since = (performance.now() - got.at) / 1000;
    const timer = field(node, "timer");
    if (card.status === "ringing") timer.textContent = `ringing ${clock(since)}`;
    else if (card.status === "answered") timer.textContent = `talking ${clock(since)}`;
    else timer.textContent = "";
    if (card.status === "wrapup" && typeof got.remaining === "number") {
      const left = Math.max(0, got.remaining - since);
      field(node, "countdown").textContent = clock(left);
      const total = card.wrapup_s || got.remaining || 1;
      field(node, "bar").style.width = `${Math.max(0, Math.min(100, (left / total) * 100))}%`;
      if (left <= 0) field(node, "countdown-box").classList.add("over");
    } else if (card.status === "wrapup") {
      field(node, "countdown-box").hidden = true;
    }
  }

  // --- the stream -------------------------------------------------------------------------------------

  function upsert(card) {
    const before = state.cards.get(card.call_id);
    state.cards.set(card.call_id, card);
    state.order = state.order.filter((id) => id !== card.call_id);
    state.order.unshift(card.call_id);
    const got = state.received.get(card.call_id);
    if (!got || got.status !== card.status) {
      state.received.set(card.call_id, {
        status: card.status, at: performance.now(), remaining: card.wrapup_remaining_s,
      });
    }
    return before;
  }

  function onCard(card) {
    const before = upsert(card);
    const changed = !before || before.status !== card.status;
    if (changed && card.status === "ringing") {
      state.pinned = null;
      const why = reasonLine(card);
      announce(`Incoming call: ${callerName(card)}${why ? `, ${why}` : ""}.`);
    } else if (changed && card.status === "withdrawn") {
      announce(`Call from ${callerName(card)} withdrawn: ${WHY_LABEL[card.why] || "no longer ringing"}.`);
      if (state.pinned === card.call_id) state.pinned = null;
    } else if (changed && card.status === "answered") {
      announce(`Connected to ${callerName(card)}.`);
    } else if (changed && card.status === "wrapup") {
      announce("Call ended. Wrap-up: choose a disposition.");
    } else if (changed && card.status === "done" && before && before.status === "wrapup") {
      announce("Wrap-up is over. You are available for the next call.");
    }
    render();
  }

  function onSnapshot(cards) {
    state.cards.clear();
    state.order = [];
    for (const card of cards.slice().reverse()) upsert(card);
    render();
    document.body.dataset.synced = "true";
  }

  function setConn(kind, text) {
    $("conn").dataset.state = kind;
    $("conn-text").textContent = text;
  }

  function connect() {
    const source = new EventSource("/api/events");
    source.addEventListener("open", () => setConn("live", "Live"));
    source.addEventListener("snapshot", (ev) => onSnapshot(JSON.parse(ev.data).cards));
    source.addEventListener("card", (ev) => onCard(JSON.parse(ev.data).card));
    // Voicemails are voicemails.js's: handed over as DOM events.
    source.addEventListener("snapshot", () => document.dispatchEvent(new CustomEvent("attendant:synced")));
    source.addEventListener("voicemail", (ev) => {
      const detail = JSON.parse(ev.data).voicemail;
      document.dispatchEvent(new CustomEvent("attendant:voicemail", { detail }));
    });
    source.addEventListener("error", async () => {
      setConn("down", "Reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        const resp = await fetch("/api/me", { credentials: "same-origin" });
        if (resp.status === 401) { window.location.assign("/login"); return; }
        window.setTimeout(connect, 2000);
      }
    });
  }

  async function start() {
    const resp = await fetch("/api/me", { credentials: "same-origin" });
    if (resp.status === 401) { window.location.assign("/login"); return; }
    state.me = await resp.json();
    $("agent-name").textContent = state.me.name;
    const chips = $("agent-skills");
    for (const s of state.me.skills) {
      const chip = el("li", "chip", `${s.skill} ${"★".repeat(s.proficiency)}`);
      chip.setAttribute("aria-label", `${s.skill}, proficiency ${s.proficiency} of 5`);
      chips.appendChild(chip);
    }
    connect();
    window.setInterval(tick, 250);
  }

  document.addEventListener("DOMContentLoaded", start);
})();

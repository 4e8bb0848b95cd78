// Attendant agent console: the voicemails panel. Plain JS, no build step; everything from the server is put
// on the page with textContent. console.js hands over the event stream as DOM events: "attendant:synced"
// (the stream (re)opened: load the list) and "attendant:voicemail" (one voicemail, new or changed).
"use strict";

(function () {
  const STATUS_LABEL = { new: "New", heard: "Heard", handled: "Handled" };
  const RANK = { new: 0, heard: 1, handled: 2 };
  const items = new Map(); // id -> voicemail
  const nodes = new Map(); // id -> li (kept, so a playing audio element is never rebuilt)

  const $ = (id) => document.getElementById(id);
  const field = (root, name) => root.querySelector(`[data-f="${name}"]`);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const human = (text) => String(text).replace(/[_-]+/g, " ");
  const clock = (seconds) => {
    const s = Math.max(0, Math.round(seconds));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };

  function who(vm) {
    return vm.name || vm.caller_number || "Unknown caller";
  }

  function when(at) {
    if (typeof at !== "number") return "";
    const d = new Date(at * 1000);
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return sameDay ? `today ${time}` : `${d.toLocaleDateString()} ${time}`;
  }

  async function post(url) {
    const resp = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = {}; }
    if (resp.status === 401) window.location.assign("/login");
    if (!resp.ok) throw new Error(data.error || `The console answered ${resp.status}`);
    return data;
  }

  function addFact(dl, term, value) {
    if (value === null || value === undefined || value === "") return;
    const row = el("div", "fact");
    row.appendChild(el("dt", null, term));
    row.appendChild(el("dd", null, value));
    dl.appendChild(row);
  }

  function fillContext(node, vm) {
    const v = vm.view || {};
    const summary = field(node, "summary");
    summary.textContent = v.summary || "";
    summary.hidden = !v.summary;
    const facts = field(node, "facts");
    facts.textContent = "";
    addFact(facts, "Reason", v.reason ? human(v.reason) : null);
    addFact(facts, "Skill", v.skill ? human(v.skill) : null);
    if (v.verified === true) addFact(facts, "Verified", v.verified_how ? `yes (${human(v.verified_how)})` : "yes");
    else if (v.verified === false) addFact(facts, "Verified", "no");
    if (v.customer && v.customer.id) addFact(facts, "Customer", v.customer.id);
    addFact(facts, "Caller number", v.caller_number);
    addFact(facts, "Task", v.task ? human(v.task) : null);
    addFact(facts, "Priority", v.priority);
    addFact(facts, "Language", v.language);
    addFact(facts, "Understood", (v.intents || []).map((it) => human(it.name)).join(", "));
    for (const s of v.slots || []) addFact(facts, human(s.name), s.value);
    for (const [kind, rows] of Object.entries(v.history || {})) {
      if (rows.length) addFact(facts, human(kind), rows.map((pairs) => pairs[0][1]).join(", "));
    }
    if (vm.record_status && vm.record_status !== "dtmf") addFact(facts, "Recording ended", human(vm.record_status));
    const transcript = field(node, "transcript");
    transcript.textContent = "";
    const WHO = { caller: "Caller", bot: "Assistant", system: "System" };
    for (const line of v.transcript || []) {
      const li = el("li", `line ${line.who}`);
      li.appendChild(el("span", "who", WHO[line.who] || line.who));
      li.appendChild(el("span", "said", line.text));
      transcript.appendChild(li);
    }
    transcript.hidden = !transcript.children.length;
  }

  function fill(node, vm) {
    node.dataset.status = vm.status;
    field(node, "status").textContent = STATUS_LABEL[vm.status] || vm.status;
    field(node, "name").textContent = who(vm);
    const meta = [];
    if (vm.name && vm.caller_number) meta.push(vm.caller_number);
    if (vm.skill) meta.push(human(vm.skill));
    if (vm.reason) meta.push(human(vm.reason));
    field(node, "meta").textContent = meta.join(" · ");
    field(node, "when").textContent = when(vm.at);
    field(node, "length").textContent = typeof vm.length_s === "number" ? clock(vm.length_s) : "";
    const handle = field(node, "handle");
    const handled = field(node, "handled");
    if (vm.status === "handled") {
      handle.hidden = true;
      const by = vm.handled_by ? ` by ${vm.handled_by}` : "";
      handled.textContent = `Handled${by}${vm.handled_at ? `, ${when(vm.handled_at)}` : ""}`;
    } else {
      handle.hidden = false;
      handled.textContent = vm.heard_by ? `Heard by ${vm.heard_by}` : "";
    }
    if (field(node, "details").open) fillContext(node, vm);
  }

  function build(vm) {
    const node = $("vm-tpl").content.firstElementChild.cloneNode(true);
    node.dataset.id = vm.id;
    const audio = field(node, "audio");
    audio.src = `/api/voicemails/${encodeURIComponent(vm.id)}/audio`;
    audio.setAttribute("aria-label", `Voicemail from ${who(vm)}`);
    audio.addEventListener("play", () => {
      const now = items.get(vm.id);
      if (now && now.status === "new") post(`/api/voicemails/${encodeURIComponent(vm.id)}/heard`).then(
        (data) => upsert(data.voicemail), () => {});
    });
    field(node, "handle").addEventListener("click", async (ev) => {
      const button = ev.currentTarget;
      if (button.disabled) return;
      button.disabled = true;
      try {
        const data = await post(`/api/voicemails/${encodeURIComponent(vm.id)}/handled`);
        upsert(data.voicemail);
      } catch (err) {
        field(node, "handled").textContent = err.message;
      } finally {
        button.disabled = false;
      }
    });
    const details = field(node, "details");
    details.addEventListener("toggle", async () => {
      if (!details.open) return;
      fillContext(node, items.get(vm.id) || vm);
      const resp = await fetch(`/api/voicemails/${encodeURIComponent(vm.id)}`, { credentials: "same-origin" });
      if (resp.ok) {
        const full = await resp.json();
        const now = items.get(vm.id);
        if (now) now.view = full.view;
        fillContext(node, full);
      }
    });
    return node;
  }

  function upsert(vm) {
    const before = items.get(vm.id);
    if (before && RANK[before.status] > RANK[vm.status]) return; // a late, older answer: statuses only advance
    if (before && vm.view && before.view && before.view.transcript && !(vm.view.transcript || []).length) {
      vm.view.transcript = before.view.transcript;
    }
    items.set(vm.id, vm);
    let node = nodes.get(vm.id);
    if (!node) {
      node = build(vm);
      nodes.set(vm.id, node);
      place(node, vm);
    }
    fill(node, vm);
    renderCounts();
  }

  function place(node, vm) {
    const list = $("vm-list");
    const newer = (a, b) => (a.at || 0) - (b.at || 0) || (a.id > b.id ? 1 : -1);
    for (const other of list.children) {
      const o = items.get(other.dataset.id);
      if (o && newer(vm, o) > 0) { list.insertBefore(node, other); return; }
    }
    list.appendChild(node);
  }

  function renderCounts() {
    const fresh = [...items.values()].filter((vm) => vm.status === "new").length;
    $("vm-new").textContent = fresh ? `${fresh} new` : "";
    $("vm-empty").hidden = items.size > 0;
  }

  async function load() {
    const resp = await fetch("/api/voicemails", { credentials: "same-origin" });
    if (!resp.ok) return;
    const data = await resp.json();
    for (const vm of data.voicemails.slice().reverse()) upsert(vm);
    document.body.dataset.voicemails = "loaded";
  }

  document.addEventListener("attendant:synced", () => { load(); });
  document.addEventListener("attendant:voicemail", (ev) => {
    const isNew = !items.has(ev.detail.id);
    upsert(ev.detail);
    if (isNew && ev.detail.status === "new") {
      const box = $("announcer");
      if (box) {
        box.textContent = "";
        window.setTimeout(() => { box.textContent = `New voicemail from ${who(ev.detail)}.`; }, 50);
      }
    }
  });
})();

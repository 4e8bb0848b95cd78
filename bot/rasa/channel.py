"""The Attendant input channel of the Rasa server: the one door between the gateway and the assistant.

Rasa loads this class from ``bot/rasa/credentials.yml`` (key ``bot.rasa.channel.AttendantInput``); Rasa
runs on loopback only (``bot/stack.py``). This module runs inside the Rasa process: of the project it imports
only :mod:`actions.shared` (pure helpers), never the gateway or the actions.

Endpoints
---------
``GET  /webhooks/attendant/``          health: ``{"status": "ok"}`` (no token needed, says nothing else).
                                       Rasa opens its port only once the model is loaded, so an answer
                                       here means the assistant is loaded.
``POST /webhooks/attendant/warmup``    parses one fixed sentence (the first parse builds TensorFlow's
                                       graphs and is slow) and answers ``{"status": "ok"}``, nothing of the
                                       parse; 503 while no model is loaded. Same token as the webhook.
``POST /webhooks/attendant/webhook``   one caller turn; needs ``Authorization: Bearer <RASA_TOKEN>``,
                                       compared in constant time; anything else gets 401.

These are the only routes of the Rasa server besides Rasa's own ``GET /`` (a hello with its version):
Rasa runs without its HTTP API (no ``--enable-api``), so there is no ``/conversations/...``, ``/model/...``
or ``/status`` to read a tracker or set a slot through. The token (the channel's shared secret) reaches
this process through the environment (``RASA_TOKEN``, read by ``credentials.yml``), never its command line.

Request body::

    {"sender": "<call uuid>", "message": "<text>", "metadata": {...}}

``sender`` is the call's UUID (the Rasa conversation id, so the tracker lives at Redis key
``attendant:tracker:<sender>``). ``metadata`` is stored with the user turn (``UserMessage.metadata``).
A malformed body gets 400 with ``{"error": ...}``.

Response: a JSON list, in speaking order, like Rasa's REST channel::

    [{"recipient_id": "<sender>", "text": "Your balance is ..."},
     {"recipient_id": "<sender>", "custom": {...}}]

Conversation contract with the gateway
--------------------------------------
- **Call start.** The gateway greets the caller itself (``prompts.yml`` ``greeting:``) and sends nothing
  until the caller's first turn: a connection that never produces a turn leaves no tracker.
- **Caller turns.** Each finished utterance is one message with the same sender id (the call id) and the
  call's metadata ``{"call_id": <uuid>, "caller_number": <str|null>, "channel": <str|null>, "language":
  "en", "input": "asr"|"keypad"|"inject"|"system"}``. Before the first one is read,
  ``action_session_start`` keeps ``call_id`` and ``caller_number`` in slots and counts the call.
- **Keypad.** Menu digits are mapped by the gateway to ``/ask_balance``, ``/ask_order_status``,
  ``/book_appointment``, ``/request_agent``. Digits keyed during a PIN or number prompt are sent as
  plain text ("1234"). Messages starting with ``/`` must be a bare intent name (``/[a-z_]+``): entities
  are refused (400), so nobody can set slots from outside. A caller's own words (metadata ``input``
  ``asr`` or ``inject``) are never an intent: a leading ``/`` is dropped (the gateway drops it too), so
  "/session_start" said or typed by a caller is just words, and ``/session_start`` from anyone counts
  as not understood (the first turn starts the call; a new session keeps the call's failed PIN checks
  anyway: ``actions/conversation.py``).
- **End of call.** An item ``{"custom": {"end_call": true}}`` (after "Thank you for calling. Goodbye."):
  finish speaking, then hang up.
- **Handoff.** An item ``{"custom": {"handoff": {"reason": R, "skill": S, "context": {...}}}}``: finish
  speaking, then hand the call to a person (the payload is built by
  :func:`actions.shared.handoff.handoff_payload`). ``R`` is one of ``requested`` (caller asked for an agent,
  operator, a real person, or accepted our offer), ``no-match`` (not understood twice in a row),
  ``verification-failed`` (three failed checks, or neither PIN nor date of birth to give),
  ``verification-locked`` (the customer is locked out: too many failed checks across calls), ``not-found``
  (the calling number is not a customer's), ``technical`` (a backend or the assistant failed). ``S`` is
  ``billing``, ``orders``, ``sales``, ``bookings``, ``support`` or ``general``. ``context`` is the call's
  context (see **Context** below) — never the PIN or the date of birth.
- **Context.** Every reply starts with ``{"custom": {"context": {...}}}`` (after ``input_redacted``, when
  there is one): the call's context after the turn, built by :func:`actions.shared.context.call_context`
  (who is calling, verified or not and how, the customer once verified, task and skill, the latest intents
  with confidence, what the task learned, incident priority, handoff reason, language). The gateway keeps
  it in the call's Redis record after every turn, so what was learned outlives the gateway.
- **Parse only** (speculation, and the gateway's own yes/no questions: the callback offer, after hours).
  ``POST /webhooks/attendant/parse`` (same token and body) answers what the
  model makes of ``message`` as the webhook would see it: ``{"intent": <name>, "confidence": <0..1>,
  "entities": [{"entity", "value", "start", "end"}...], "masked": <bool>}``. The words are shielded exactly as
  on the webhook (masked; at a PIN or date-of-birth prompt the answer is ``inform_digits`` and the secret is
  neither parsed nor put aside); fillers and masks alone answer ``nlu_fallback``. No tracker is created,
  written or locked (the tracker is only read, to know which question is open): the gateway parses the
  stable partial of an utterance while it waits for the end of the turn, and a speculation it discards
  leaves no trace. The parse is kept a few seconds per sender: when the same words then come as the turn
  on the webhook, Rasa is given that parse instead of running the model again.
- **Fillers.** An utterance of fillers only ("uh", "hmm", "the") counts as not understood: Rasa gets
  ``/nlu_fallback`` and the words heard go into the turn's metadata as ``heard``.
- **Replies** are at most two short sentences with one question.
- **Failure.** If the assistant fails on a turn or has nothing to say, this channel answers with the
  ``utter_handoff_technical`` line of the loaded model's domain and a ``technical`` handoff, so the caller
  always reaches a person. (Without a model there is no domain: the handoff comes alone, and the gateway says
  its own ``handoff`` prompt from ``nlu-data/prompts.yml``.)

PINs and dates of birth never enter the conversation record: while a slot listed in ``sensitive_slots``
(credentials.yml: ``pin``, ``dob``) is being asked for, the digits (PIN) or the date (date of birth) in
the message, spoken or keyed, are put aside in Redis (``actions/shared/vault.py``) and Rasa receives
``/inform_digits{"secret_ref": "<reference>"}`` instead. The reply to such a turn starts with
``{"custom": {"input_redacted": true}}`` so the gateway masks the caller's words in its own transcript.

At any other moment the words are masked before Rasa sees them (:mod:`actions.shared.masking`): card
numbers, security codes, PINs and dates of birth become ``[card]``, ``[cvv]``, ``[pin]``, ``[date]``, so
the tracker, the classifier's entities, the slots filled from text (an incident's description) and the
handoff context only ever hold the masked words. A bare run of 4-6 digits counts as a PIN unless a form is
asking for one of :data:`DIGIT_SLOTS` (an order number, a time); digits keyed when no such question is
asked are masked whatever their length. When the words were masked the reply starts with
``{"custom": {"heard_as": "<masked>"}}``, and the gateway writes that into its transcript.
This module logs sender ids only, never message text, numbers or metadata.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.shared.context import call_context
from actions.shared.dob import looks_like_a_date, parse_dob
from actions.shared.handoff import HANDOFF_LINES, Reason, Skill, handoff_payload
from actions.shared.masking import mask_text, only_masks
from actions.shared.numerals import digits_from_speech
from actions.shared.speech import is_filler_only
from actions.shared.vault import UNAVAILABLE, UNREADABLE, SecretStash, SecretStashError

log = logging.getLogger(__name__)

SENDER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
INTENT_RE = re.compile(r"/[a-z_]{1,64}")
CALLER_INPUTS = frozenset({"asr", "inject"})
"""Metadata ``input`` values of turns that are a caller's words (never an intent)."""
SESSION_START = "/session_start"
MAX_MESSAGE_CHARS = 2000
NOT_UNDERSTOOD = "/nlu_fallback"
WARM_UP_TEXT = "hello i want to check my balance"
PARSE_KEEP_S = 10.0
"""How long a speculative parse is kept for the turn that commits the same words."""
PARSE_KEEP_MAX = 2000
"""Senders whose last speculative parse is kept (oldest dropped first)."""
DIGIT_SLOTS = (
    "order_ref",
    "order_ref_ok",
    "product",
    "booking_when",
    "slot_ok",
    "callback_number",
    "callback_when",
)
"""Slots whose answer may be a bare number (an order number, a quantity, a time, a phone number): while a
form asks for one, a bare run of 4-6 digits is an answer, not a PIN (credentials.yml ``digit_slots``)."""


class ChannelConfigError(ValueError):
    """credentials.yml lacks something the channel needs."""


class Body(NamedTuple):
    """A request's body as the webhook and the parse route take it (:func:`_parse_body`)."""

    sender: str
    text: str
    """The message, stripped; a caller's words never start with ``/``."""
    metadata: dict[str, Any] | None


Route = Callable[[Request], Awaitable[HTTPResponse]]
BodyRoute = Callable[[Request, Body], Awaitable[HTTPResponse]]


class AttendantInput(RestInput):
    """Token-checked REST channel for the Attendant gateway (see the module docstring)."""

    @classmethod
    def name(cls) -> str:
        return "attendant"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> AttendantInput:
        creds = credentials or {}
        token = str(creds.get("token") or "")
        if not token:
            raise ChannelConfigError("bot.rasa.channel.AttendantInput needs a token (RASA_TOKEN)")
        stash = None
        if creds.get("redis_host"):
            port = int(creds.get("redis_port") or 6379)
            stash = SecretStash(str(creds["redis_host"]), port, int(creds.get("redis_db") or 0))
        sensitive = creds.get("sensitive_slots") or ["pin"]
        digit_slots = creds.get("digit_slots") or DIGIT_SLOTS
        return cls(token, stash, tuple(str(s) for s in sensitive), tuple(str(s) for s in digit_slots))

    def __init__(
        self,
        token: str,
        stash: SecretStash | None = None,
        sensitive_slots: tuple[str, ...] = ("pin",),
        digit_slots: tuple[str, ...] = DIGIT_SLOTS,
    ) -> None:
        if not token:
            raise ChannelConfigError("empty token")
        self._token = token.encode()
        self._stash = stash
        self._sensitive = frozenset(sensitive_slots)
        self._digit_slots = frozenset(digit_slots)
        self._parsed: OrderedDict[str, tuple[str, float, dict[str, Any]]] = OrderedDict()
        """sender -> (shielded words, when, Rasa's parse of them): the last speculative parse per call."""

    def authorised(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries our bearer token (constant-time compare)."""
        scheme, _, supplied = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(supplied.strip().encode(), self._token)

    def refused(self, request: Request) -> HTTPResponse | None:
        """401 unless the request carries our bearer token (:meth:`authorised`)."""
        if not self.authorised(request.headers.get("Authorization")):
            return response.json({"error": "unauthorized"}, status=401)
        return None

    def guarded(self, *, words_only: bool = False, needs_model: bool = False) -> Callable[[BodyRoute], Route]:
        """A route that takes a body (the webhook, the parse route) behind the checks, in this order: the
        bearer token (401), the body (400 with what is wrong, :func:`_parse_body`); with ``words_only`` a
        message that is not an intent (400); with ``needs_model`` a loaded model (503). The handler gets
        the request and the body."""

        def guard(handler: BodyRoute) -> Route:
            @functools.wraps(handler)
            async def route(request: Request) -> HTTPResponse:
                refused = self.refused(request)
                if refused is not None:
                    return refused
                try:
                    body = _parse_body(request.body)
                except ValueError as exc:
                    return response.json({"error": str(exc)}, status=400)
                if words_only and body.text.startswith("/"):
                    return response.json({"error": "only words are parsed here"}, status=400)
                refused = _not_ready(request) if needs_model else None
                if refused is not None:
                    return refused
                return await handler(request, body)

            return route

        return guard

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("attendant_webhook", __name__)

        @bp.route("/", methods=["GET"])  # type: ignore[untyped-decorator]
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/warmup", methods=["POST"])  # type: ignore[untyped-decorator]
        async def warm_up(request: Request) -> HTTPResponse:
            refused = self.refused(request) or _not_ready(request)
            if refused is not None:
                return refused
            await _agent(request).parse_message(WARM_UP_TEXT)
            return response.json({"status": "ok"})

        # No 503 here: a turn without a model fails like any failed turn, into the technical handoff.
        @bp.route("/webhook", methods=["POST"])  # type: ignore[untyped-decorator]
        @self.guarded()
        async def receive(request: Request, body: Body) -> HTTPResponse:
            sender, text, metadata = body
            heard = text
            try:
                if text == SESSION_START:  # the gateway never sends it: the first turn starts the call
                    log.warning("session start as a message refused sender=%s", sender)
                    text = NOT_UNDERSTOOD
                text = await self._shield_secrets(request, sender, text, metadata)
            except Exception:  # tracker unreadable: do not guess whether digits are a PIN
                log.exception("could not check for a PIN prompt sender=%s", sender)
                return response.json(_technical_handoff(request, sender))
            masked = text if text != heard and not text.startswith("/") else None
            if not text.startswith("/") and (is_filler_only(text) or only_masks(text)):
                # "uh", "hmm", "the", "[pin]": nothing to understand. Say so rather than let the classifier
                # guess; what was heard (masked) stays in the turn's metadata.
                metadata = {**(metadata or {}), "heard": text}
                text = NOT_UNDERSTOOD
            collector = CollectingOutputChannel()
            parsed = self._reuse_parse(sender, text)
            try:
                await on_new_message(
                    UserMessage(
                        text,
                        collector,
                        sender,
                        parse_data=parsed,
                        input_channel=self.name(),
                        metadata=metadata,
                    )
                )
            except Exception:  # the caller must still reach a person
                log.exception("turn failed sender=%s", sender)
                return response.json(_technical_handoff(request, sender))
            if not collector.messages:
                log.error("assistant had nothing to say sender=%s", sender)
                return response.json(_technical_handoff(request, sender))
            reply: list[dict[str, Any]] = []
            if text != heard and text.startswith("/inform_digits"):
                # Tell the gateway this turn held a secret, so its own transcript masks it too.
                reply.append({"recipient_id": sender, "custom": {"input_redacted": True}})
            elif masked is not None:
                # The words as Rasa recorded them: the gateway's transcript keeps these, not the originals.
                reply.append({"recipient_id": sender, "custom": {"heard_as": masked}})
            context = await self._context(request, sender)
            if context is not None:
                reply.append({"recipient_id": sender, "custom": {"context": context}})
            return response.json([*reply, *collector.messages])

        @bp.route("/parse", methods=["POST"])  # type: ignore[untyped-decorator]
        @self.guarded(words_only=True, needs_model=True)
        async def parse(request: Request, body: Body) -> HTTPResponse:
            sender, text, metadata = body
            try:
                shielded = await self._shield_secrets(request, sender, text, metadata, stash=False)
            except Exception:  # tracker unreadable: say nothing rather than guess about a PIN
                log.exception("parse: could not check for a PIN prompt sender=%s", sender)
                return response.json({"error": "not parsed"}, status=500)
            masked = shielded != text
            if shielded.startswith("/"):  # a secret at its prompt: never parsed, never put aside
                return response.json(_parse_answer("inform_digits", 1.0, [], masked=True))
            if is_filler_only(shielded) or only_masks(shielded):
                return response.json(_parse_answer(NOT_UNDERSTOOD[1:], 1.0, [], masked=masked))
            try:
                parsed = await _agent(request).parse_message(shielded)
            except Exception:
                log.exception("parse failed sender=%s", sender)
                return response.json({"error": "not parsed"}, status=500)
            self._keep_parse(sender, shielded, parsed)
            intent = parsed.get("intent") or {}
            entities = [
                {k: e.get(k) for k in ("entity", "value", "start", "end")}
                for e in parsed.get("entities") or []
                if isinstance(e, dict)
            ]
            return response.json(
                _parse_answer(
                    str(intent.get("name") or ""), float(intent.get("confidence") or 0.0), entities, masked
                )
            )

        return bp

    def _keep_parse(self, sender: str, text: str, parsed: dict[str, Any]) -> None:
        """Remember a speculative parse for the turn that may commit the same words."""
        self._parsed[sender] = (text, time.monotonic(), parsed)
        self._parsed.move_to_end(sender)
        while len(self._parsed) > PARSE_KEEP_MAX:
            self._parsed.popitem(last=False)

    def _reuse_parse(self, sender: str, text: str) -> dict[str, Any] | None:
        """The speculative parse of exactly these (shielded) words for this sender, if fresh; used once."""
        kept = self._parsed.pop(sender, None)
        if kept is None or text.startswith("/"):
            return None
        words, at, parsed = kept
        if words != text or time.monotonic() - at > PARSE_KEEP_S:
            return None
        return parsed

    async def _shield_secrets(
        self,
        request: Request,
        sender: str,
        text: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        stash: bool = True,
    ) -> str:
        """Put a PIN or a date of birth aside while it is being asked for; Rasa gets a reference.
        Otherwise mask what the words hold of card numbers, codes, PINs and dates of birth.

        At the PIN prompt the digits in the words are the secret; at the date-of-birth prompt, a date
        (kept as ``YYYY-MM-DD``), or :data:`~actions.shared.vault.UNREADABLE` for words that look like a date
        but do not make one ("the thirty second of smarch"), so they are not recorded either.
        ``stash=False`` (a parse only): a secret is not put aside; the answer is a bare ``/inform_digits``.
        """
        if text.startswith("/"):
            return text
        asked = await self._requested_slot(request, sender)
        sensitive = asked if asked in self._sensitive else None
        secret = secret_in(text, sensitive)
        if secret is None:
            # Digits are an answer only where a form asks for digits (an order number, a time).
            digits_asked = asked in self._digit_slots
            keyed = (metadata or {}).get("input") == "dtmf" and not digits_asked
            return mask_text(text, bare_digits_are_pin=not digits_asked, keyed=keyed)
        if not stash:
            return "/inform_digits"
        ref = UNAVAILABLE  # never pass the secret on in clear, even when it cannot be put aside
        if self._stash is None:
            log.error("no Redis configured for secrets (credentials.yml) sender=%s", sender)
        else:
            try:
                ref = await self._stash.put(sender, secret)
            except SecretStashError:
                log.warning("could not put a secret aside sender=%s", sender)
        return "/inform_digits" + json.dumps({"secret_ref": ref})

    async def _context(self, request: Request, sender: str) -> dict[str, Any] | None:
        """The call's context after this turn (:func:`actions.shared.context.call_context`); ``None`` when
        the tracker cannot be read (the turn's answer still goes out)."""
        try:
            tracker = await _tracker(request, sender)
            if tracker is None:
                return None
            return call_context(tracker.get_slot, (event.as_dict() for event in tracker.events))
        except Exception:  # the context is a courtesy to the agent; the caller's turn must not fail on it
            log.exception("could not build the call's context sender=%s", sender)
            return None

    async def _requested_slot(self, request: Request, sender: str) -> str | None:
        """The slot a form is asking for right now, if any."""
        tracker = await _tracker(request, sender)
        if tracker is None or not tracker.active_loop_name:
            return None
        slot = tracker.get_slot("requested_slot")
        return None if slot is None else str(slot)


def _agent(request: Request) -> Any:
    """The running Rasa's agent (``None`` before Rasa set one up)."""
    return getattr(request.app.ctx, "agent", None)


def _not_ready(request: Request) -> HTTPResponse | None:
    """503 while no model is loaded."""
    agent = _agent(request)
    if agent is None or not agent.is_ready():
        return response.json({"error": "no model loaded"}, status=503)
    return None


async def _tracker(request: Request, sender: str) -> Any:
    """The conversation's tracker from the running Rasa's tracker store; ``None`` without one."""
    store = getattr(_agent(request), "tracker_store", None)
    return None if store is None else await store.retrieve(sender)


def secret_in(text: str, slot: str | None) -> str | None:
    """What to put aside from ``text`` while ``slot`` is asked for; ``None`` when nothing (let it through)."""
    if slot is None:
        return None
    if slot == "dob":
        born = parse_dob(text)
        if born is not None:
            return born.isoformat()
        if looks_like_a_date(text):
            return UNREADABLE
        return None
    return digits_from_speech(text)


def _parse_body(raw: bytes) -> Body:
    try:
        body = json.loads(raw or b"")
    except ValueError as exc:
        raise ValueError("body is not JSON") from exc
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    sender = body.get("sender")
    if not isinstance(sender, str) or not SENDER_RE.fullmatch(sender):
        raise ValueError("sender must be 1-128 characters of letters, digits, _ . : @ -")
    text = body.get("message")
    if not isinstance(text, str) or len(text) > MAX_MESSAGE_CHARS:
        raise ValueError(f"message must be a string of at most {MAX_MESSAGE_CHARS} characters")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError("metadata must be an object")
    text = text.strip()
    if metadata and metadata.get("input") in CALLER_INPUTS:
        text = text.lstrip("/").strip() or NOT_UNDERSTOOD  # a caller's words, never an intent
    if not text:
        raise ValueError("message is empty")
    if text.startswith("/") and not INTENT_RE.fullmatch(text):
        raise ValueError("a message starting with / must be a bare intent name")
    return Body(sender, text, metadata)


def _parse_answer(
    intent: str, confidence: float, entities: list[dict[str, Any]], masked: bool
) -> dict[str, Any]:
    return {"intent": intent, "confidence": confidence, "entities": entities, "masked": masked}


def _technical_handoff(request: Request, sender: str) -> list[dict[str, Any]]:
    """The technical handoff line, as the loaded model's domain words it, then the handoff."""
    domain = getattr(_agent(request), "domain", None)
    responses: Mapping[str, Any] = getattr(domain, "responses", None) or {}
    variants = responses.get(HANDOFF_LINES[Reason.TECHNICAL]) or []
    said: list[dict[str, Any]] = []
    if variants and isinstance(variants[0], dict) and variants[0].get("text"):
        said.append({"recipient_id": sender, "text": str(variants[0]["text"])})
    handoff = handoff_payload(Reason.TECHNICAL, Skill.GENERAL, {"call_id": sender})
    return [*said, {"recipient_id": sender, "custom": {"handoff": handoff}}]

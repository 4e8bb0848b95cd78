"""Dialogue: one HTTP round trip to Rasa per caller turn.

Rasa listens on loopback behind the ``attendant`` channel (``bot/rasa_channel.py``), which checks a bearer
token. Sender id = call UUID, so each call has its own tracker (kept in Redis by Rasa).

Errors::

    DialogueError                 the turn failed; the caller is handed to a person with reason "technical"
    ├── DialogueUnavailable       nothing reached Rasa (connection refused / reset before sending):
    │                             retried once, then handed off
    └── DialogueTimeout           Rasa took longer than the turn budget: not retried (the turn may have
                                  been applied), handed off at once
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from telephony.callstate import Reason, Skill

log = logging.getLogger(__name__)


class DialogueError(Exception):
    """A turn could not be completed."""

    retryable = False


class DialogueUnavailable(DialogueError):
    """Rasa could not be reached."""

    retryable = True


class DialogueTimeout(DialogueError):
    """Rasa did not answer within the turn budget."""


@dataclass(frozen=True, slots=True)
class HandoffRequested:
    """The assistant asks for a live agent (its ``{"custom": {"handoff": ...}}`` payload, typed)."""

    reason: Reason
    """Why: ``requested``, ``no-match``, ``verification-failed``, ``verification-locked``, ``technical``,
    ..."""
    skill: Skill = Skill.GENERAL
    """Agent skill needed."""
    context: Mapping[str, Any] = field(default_factory=dict)
    """Everything the bot learned (slots, task, verified flag), for the agent."""

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> HandoffRequested:
        """From the channel's JSON; an unknown reason or skill is logged and replaced by the default."""
        reason = Reason.parse(payload.get("reason") or Reason.REQUESTED.value, Reason.REQUESTED)
        skill = Skill.parse(payload.get("skill") or Skill.GENERAL.value)
        if (
            str(payload.get("reason") or "requested") != reason.value
            or str(payload.get("skill") or "general") != skill.value
        ):
            log.warning("handoff payload with an unknown reason or skill; using %s/%s", reason, skill)
        context = payload.get("context")
        return cls(reason, skill, dict(context) if isinstance(context, Mapping) else {})


@dataclass(frozen=True, slots=True)
class Reply:
    """What the assistant wants done after a turn."""

    texts: tuple[str, ...] = ()
    """Sentences to speak, in order."""
    end_call: bool = False
    """Say the texts, then hang up."""
    handoff: HandoffRequested | None = None
    """Say the texts, then hand over to a person."""
    input_redacted: bool = False
    """The caller's turn held a secret (a PIN): it must not be written anywhere in clear."""
    context: Mapping[str, Any] | None = None
    """What the assistant knows of the call after this turn (who, verified or not, task, slots): kept with
    the call from the first turn, so an agent gets it even if the gateway dies mid-call."""
    heard_as: str | None = None
    """The caller's words as the assistant recorded them, when it masked some (a card number, a PIN...)."""


def parse_reply(messages: Any) -> Reply:
    """Turn Rasa's channel output (a list of ``{"text"}`` / ``{"custom"}`` items) into a :class:`Reply`."""
    if not isinstance(messages, list):
        raise DialogueError(f"unexpected reply shape: {type(messages).__name__}")
    texts: list[str] = []
    end_call = False
    redacted = False
    handoff: HandoffRequested | None = None
    context: Mapping[str, Any] | None = None
    heard_as: str | None = None
    for item in messages:
        if not isinstance(item, dict):
            continue
        text = item.get("text")
        if isinstance(text, str) and text.strip():
            texts.append(text.strip())
        custom = item.get("custom")
        if isinstance(custom, dict):
            if custom.get("end_call"):
                end_call = True
            if custom.get("input_redacted"):
                redacted = True
            if isinstance(custom.get("handoff"), dict):
                handoff = HandoffRequested.from_payload(custom["handoff"])
            if isinstance(custom.get("context"), dict):
                context = custom["context"]
            if isinstance(custom.get("heard_as"), str):
                heard_as = custom["heard_as"]
    return Reply(tuple(texts), end_call, handoff, redacted, context, heard_as)


@dataclass(frozen=True, slots=True)
class Understood:
    """What the assistant's language understanding made of some words (no conversation turn)."""

    intent: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Parsed:
    """What the assistant's model makes of some words, as the turn would see them (masked), recording nothing:
    a speculative parse of the caller's words before the end of the turn."""

    intent: str
    confidence: float
    entities: tuple[Mapping[str, Any], ...] = ()
    masked: bool = False
    """The words held something the channel masks (a card number, a PIN)."""


class Dialogue(Protocol):
    """Something that answers a caller turn (the real one is :class:`RasaClient`)."""

    async def send(self, sender: str, text: str, metadata: Mapping[str, Any] | None = None) -> Reply:
        """One caller turn."""
        ...


class RasaClient:
    """Async client for the Attendant channel of a Rasa server."""

    def __init__(self, url: str, token: str, timeout_s: float) -> None:
        self._url = f"{url.rstrip('/')}/webhooks/attendant/webhook"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self._session

    async def send(self, sender: str, text: str, metadata: Mapping[str, Any] | None = None) -> Reply:
        """Send one turn; retry once when nothing reached Rasa."""
        try:
            return await self._send_once(sender, text, metadata)
        except DialogueUnavailable:
            await asyncio.sleep(0.2)
            return await self._send_once(sender, text, metadata)

    async def _send_once(self, sender: str, text: str, metadata: Mapping[str, Any] | None) -> Reply:
        http = await self._http()
        body = {"sender": sender, "message": text, "metadata": dict(metadata or {})}
        try:
            async with http.post(self._url, json=body) as resp:
                if resp.status != 200:
                    raise DialogueError(f"rasa answered HTTP {resp.status}")
                return parse_reply(await resp.json(content_type=None))
        except asyncio.TimeoutError as exc:
            raise DialogueTimeout("rasa did not answer in time") from exc
        except aiohttp.ClientConnectorError as exc:
            raise DialogueUnavailable(f"rasa unreachable: {exc.os_error}") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise DialogueError(f"rasa turn failed: {type(exc).__name__}") from exc

    async def understand(self, sender: str, text: str) -> Understood:
        """The intent of ``text`` by the assistant's model, outside the conversation (the gateway's own
        yes/no questions), through the parse-only route. Not retried: a failure counts as not understood
        (the keypad still works)."""
        parsed = await self.parse(sender, text, timeout_s=self._timeout_s)
        return Understood(parsed.intent, parsed.confidence)

    async def parse(
        self, sender: str, text: str, metadata: Mapping[str, Any] | None = None, *, timeout_s: float = 0.15
    ) -> Parsed:
        """The parse-only route: the model's reading of ``text`` (intent, confidence, entities), no tracker
        created or touched. Never retried; an answer slower than ``timeout_s`` raises
        :class:`DialogueTimeout`."""
        http = await self._http()
        url = self._url.rsplit("/", 1)[0] + "/parse"
        body = {"sender": sender, "message": text, "metadata": dict(metadata or {})}
        try:
            async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                if resp.status != 200:
                    raise DialogueError(f"rasa answered HTTP {resp.status}")
                answer = await resp.json(content_type=None)
        except asyncio.TimeoutError as exc:
            raise DialogueTimeout("parse too slow") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise DialogueError(f"parse failed: {type(exc).__name__}") from exc
        if not isinstance(answer, dict):
            raise DialogueError("unexpected parse shape")
        entities = answer.get("entities") or []
        return Parsed(
            str(answer.get("intent") or ""),
            float(answer.get("confidence") or 0.0),
            tuple(e for e in entities if isinstance(e, dict)) if isinstance(entities, list) else (),
            bool(answer.get("masked")),
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

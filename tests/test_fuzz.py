"""Fuzzing the protocol edges: whatever bytes arrive, the AudioSocket decoder and the FastAGI header reader
either produce well-formed frames or refuse with their own error — never another exception, never a hang.

Two kinds of input: hypothesis strategies (shrinking to a minimal counterexample when something breaks) and a
seeded mutation fuzzer that runs 100,000 inputs derived from real Asterisk streams (bit flips, truncations,
splices, length-field corruption) in a few seconds.
"""

from __future__ import annotations

import asyncio
import random
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony import audiosocket as wire
from telephony.agi import HeaderError, read_header
from telephony.frames import AudioIn, Dtmf, Hangup, PeerError, Transcript

FUZZ_INPUTS = 100_000

VALID = (
    wire.encode_uuid(uuid.UUID(int=7))
    + wire.encode_audio(bytes(320), 8000)
    + wire.encode_audio(b"\x01\x02" * 320, 16000)
    + wire.encode_dtmf("5")
    + wire.encode_text("hello there")
    + wire.encode_error()
    + wire.encode_hangup()
)


def decode_all(chunks: list[bytes]) -> tuple[list[object], str | None]:
    """Feed ``chunks`` one by one; the messages, and the ProtocolError text if one was raised."""
    decoder = wire.Decoder()
    out: list[object] = []
    try:
        for chunk in chunks:
            out.extend(decoder.feed(chunk))
    except wire.ProtocolError as exc:
        return out, str(exc)
    return out, None


def well_formed(message: object) -> bool:
    if isinstance(message, AudioIn):
        return len(message.pcm) % 2 == 0 and message.rate in wire.RATE_KINDS
    if isinstance(message, Dtmf):
        return message.digit in wire.DTMF_DIGITS
    if isinstance(message, Transcript):
        return message.source == "inject" and len(message.text.encode()) <= wire.MAX_TEXT_BYTES
    return isinstance(message, (wire.CallId, Hangup, PeerError))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.lists(st.integers(min_value=1, max_value=64), max_size=40))
def test_any_bytes_in_any_split_decode_the_same_or_fail_cleanly(data: bytes, cuts: list[int]) -> None:
    whole, whole_error = decode_all([data])
    chunks, i = [], 0
    for n in cuts:
        chunks.append(data[i : i + n])
        i += n
    chunks.append(data[i:])
    split, split_error = decode_all(chunks)
    assert split == whole and split_error == whole_error  # how TCP cuts the stream changes nothing
    assert all(well_formed(m) for m in whole)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["uuid", "a8", "a16", "dtmf", "text", "err", "hang"]), max_size=30))
def test_valid_streams_round_trip(kinds: list[str]) -> None:
    encoders = {
        "uuid": lambda: wire.encode_uuid(uuid.UUID(int=1)),
        "a8": lambda: wire.encode_audio(b"\x03\x00" * 160, 8000),
        "a16": lambda: wire.encode_audio(b"\x04\x00" * 320, 16000),
        "dtmf": lambda: wire.encode_dtmf("#"),
        "text": lambda: wire.encode_text("ok"),
        "err": lambda: wire.encode_error(wire.ErrorCode.MEMORY),
        "hang": wire.encode_hangup,
    }
    messages, error = decode_all([b"".join(encoders[k]() for k in kinds)])
    assert error is None and len(messages) == len(kinds)


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        if op == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # truncate
            del buf[rng.randrange(len(buf)) :]
        elif op == 2:  # splice random bytes
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and len(buf) >= 3:  # corrupt a length field
            i = rng.randrange(len(buf) - 2)
            buf[i + 1 : i + 3] = rng.randrange(65536).to_bytes(2, "big")
        elif op == 4 and buf:  # duplicate a slice
            i = rng.randrange(len(buf))
            buf[i:i] = buf[i : i + rng.randint(1, 40)]
    return bytes(buf)


def test_a_hundred_thousand_mutated_streams() -> None:
    rng = random.Random(20261130)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(FUZZ_INPUTS):
        data = mutate(rng, VALID)
        cut = rng.randrange(len(data) + 1)
        messages, error = decode_all([data[:cut], data[cut:]])
        assert all(well_formed(m) for m in messages)
        outcomes["refused" if error else "ok"] += 1
    assert sum(outcomes.values()) == FUZZ_INPUTS
    assert outcomes["ok"] > 1000 and outcomes["refused"] > 1000  # both paths really exercised


async def _read(data: bytes, *, eof: bool) -> dict[str, str] | str:
    reader = asyncio.StreamReader(limit=4096)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    try:
        return await read_header(reader, timeout_s=0.002, max_bytes=4096)
    except HeaderError as exc:
        return str(exc)


HEADER = (
    b"agi_network: yes\nagi_network_script: outcome\nagi_request: agi://127.0.0.1/outcome\n"
    b"agi_channel: PJSIP/trunk-00000042\nagi_arg_1: 0f8fad5b-d9cb-469f-a165-70867728950e\n\n"
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=6000), st.booleans())
def test_fastagi_header_reader_takes_any_bytes(data: bytes, eof: bool) -> None:
    result = asyncio.run(_read(data, eof=eof))
    if isinstance(result, dict):
        assert "agi_network_script" in result or "agi_request" in result
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())


def test_fastagi_header_mutations() -> None:
    rng = random.Random(5038)

    async def run_all() -> dict[str, int]:
        seen = {"header": 0, "refused": 0}
        for _ in range(3000):
            result = await _read(mutate(rng, HEADER), eof=rng.random() < 0.5)
            seen["header" if isinstance(result, dict) else "refused"] += 1
        return seen

    seen = asyncio.run(run_all())
    assert seen["header"] > 100 and seen["refused"] > 100

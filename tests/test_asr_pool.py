"""Recognisers kept between calls (``bot.asr.VoskEngine``): the real Vosk model and a line said by Piper for
what a reused recogniser hears; scripted Kaldi stand-ins only for the pool's bookkeeping and threading."""

from __future__ import annotations

import threading
import time

import pytest

from bot.asr import AsrError, VoskEngine, VoskStream, _Recogniser
from telephony.sim.speech import PiperCaller
from tests.conftest import korean_vosk_model

RATE = 16000
FRAME = RATE * 20 // 1000 * 2


@pytest.fixture(scope="module")
def line() -> bytes:
    return PiperCaller().synthesize("hello i would like to check my account balance please", RATE)


def feed(stream: VoskStream, pcm: bytes) -> str:
    partial = ""
    for i in range(0, len(pcm), FRAME):
        update = stream.accept(pcm[i : i + FRAME], RATE)
        partial = update.partial or partial
    return partial


def test_the_next_call_gets_the_same_recogniser_and_nothing_of_the_last_call(line: bytes) -> None:
    engine = VoskEngine(korean_vosk_model())
    first = engine.stream()
    assert feed(first, line[: len(line) * 2 // 3]), "the recogniser heard words mid-utterance"
    first.close()  # the caller hung up mid-sentence
    assert (engine.created, engine.idle) == (1, 1)
    second = engine.stream()
    assert (engine.created, engine.idle) == (1, 0)
    update = second.flush()
    assert update.final is None and update.partial == "", "words of the last call reached the next one"
    feed(second, line)
    heard = second.flush().final
    assert heard, "a reused recogniser still recognises"
    second.close()
    with pytest.raises(AsrError, match="closed"):
        second.accept(line[:FRAME], RATE)
    second.close()  # twice is harmless
    assert engine.idle == 1


class Kaldi:
    """A stand-in recogniser: counts final results, can fail or block one decode."""

    def __init__(self, fail: bool = False, gate: threading.Event | None = None) -> None:
        self.fail, self.gate, self.finalised = fail, gate, 0
        self.entered = threading.Event()

    def AcceptWaveform(self, data: bytes) -> bool:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise RuntimeError("bad audio")
        return False

    def PartialResult(self) -> str:
        return '{"partial": ""}'

    def FinalResult(self) -> str:
        self.finalised += 1
        return '{"text": ""}'


def pooled(keep: int, reuse_max: int) -> VoskEngine:
    engine = VoskEngine.__new__(VoskEngine)
    engine.rate, engine.keep, engine.reuse_max, engine.created = RATE, keep, reuse_max, 0
    engine._idle, engine._pool_lock = [], threading.Lock()

    def new() -> _Recogniser:
        engine.created += 1
        return _Recogniser(Kaldi())

    engine._new = new  # type: ignore[method-assign]
    return engine


def test_a_recogniser_is_retired_after_reuse_max_calls_and_the_pool_keeps_at_most_keep() -> None:
    engine = pooled(keep=1, reuse_max=3)
    for _ in range(3):
        engine.stream().close()
    assert engine.created == 1 and engine.idle == 0  # served three calls: retired
    engine.stream().close()
    assert engine.created == 2
    a, b = engine.stream(), engine.stream()
    a.close()
    b.close()
    assert engine.idle == 1  # one kept, one dropped


def test_a_recogniser_that_failed_is_not_handed_on() -> None:
    engine = pooled(keep=4, reuse_max=10)
    stream = VoskStream(_Recogniser(Kaldi(fail=True)), RATE, engine._give_back)
    with pytest.raises(AsrError, match="rejected"):
        stream.accept(b"\0" * FRAME, RATE)
    stream.close()
    assert engine.idle == 0


def test_closing_waits_for_a_decode_in_flight() -> None:
    """A call hung up while its audio is being decoded in another worker: the recogniser is reset and handed
    on only after that decode, never while Kaldi is still inside it."""
    gate = threading.Event()
    kaldi = Kaldi(gate=gate)
    engine = pooled(keep=4, reuse_max=10)
    stream = VoskStream(_Recogniser(kaldi), RATE, engine._give_back)
    decoding = threading.Thread(target=stream.accept, args=(b"\0" * FRAME, RATE))
    decoding.start()
    assert kaldi.entered.wait(5)
    closing = threading.Thread(target=stream.close)
    closing.start()
    time.sleep(0.05)
    assert closing.is_alive() and kaldi.finalised == 0 and engine.idle == 0
    gate.set()
    decoding.join(5)
    closing.join(5)
    assert kaldi.finalised == 1 and engine.idle == 1


def test_a_real_engine_keeps_at_most_keep_idle_recognisers() -> None:
    engine = VoskEngine(korean_vosk_model(), keep=2)
    assert engine.rate == RATE
    streams = [engine.stream() for _ in range(3)]
    for s in streams:
        s.close()
    assert (engine.created, engine.idle) == (3, 2)

"""The gateway's worker pools: decoding sized to the cores it may use, synthesis capped, and worker threads
named at the OS level so their CPU can be told apart (``bench/procstat.py``)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.config import ASR_THREADS_MAX, Config, ConfigError, cores, default_asr_threads
from bot.gateway import name_os_thread


def test_the_decoding_pool_is_one_thread_per_core_and_bounded() -> None:
    assert cores() == len(os.sched_getaffinity(0))
    assert default_asr_threads() == min(ASR_THREADS_MAX, cores())
    assert Config.from_env({}).asr.threads == default_asr_threads()
    assert Config.from_env({"ATTENDANT_ASR_THREADS": "3"}).asr.threads == 3
    with pytest.raises(ConfigError):
        Config.from_env({"ATTENDANT_ASR_THREADS": "0"})


def test_synthesis_uses_one_onnx_thread_unless_told() -> None:
    tts = Config.from_env({}).tts
    assert (tts.threads, tts.onnx_threads) == (1, 1)
    assert Config.from_env({"ATTENDANT_TTS_ONNX_THREADS": "2"}).tts.onnx_threads == 2


def test_pool_workers_carry_their_name_at_the_os_level() -> None:
    def comm() -> str:
        return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()

    with ThreadPoolExecutor(1, thread_name_prefix="asr", initializer=name_os_thread) as pool:
        assert pool.submit(comm).result() == "asr_0"
    with ThreadPoolExecutor(1, thread_name_prefix="plain") as pool:
        assert pool.submit(comm).result() != "plain_0"  # what the benchmark could not tell apart before

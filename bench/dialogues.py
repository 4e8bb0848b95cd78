"""``python -m bench.dialogues``: the share of whole conversations completed without a person (issue 12).

Runs the dialogues of ``tests/test_dialogues.py`` (corrections, changes of mind, two facts in one turn,
questions mid-form, closings) through the Attendant channel against a stack of its own: the trained
model (``models/attendant.tar.gz``) on a real Rasa server and action server, the real Redis, and a fresh
SQLite store with the demo data. Prints each dialogue that failed (with its transcript) and the share
completed; ``--json FILE`` also writes them. Exit status 0 when the share reaches the target (90 %), else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
import sys
import tempfile
from pathlib import Path

from actions.backends.seed import main as seed
from actions.shared.paths import REPO_ROOT
from actions.store import SqlStore, open_store
from bot.tools.stack import RasaStack
from tests.test_dialogues import CUSTOMERS, DIALOGUES, SHARE_TARGET, have_dialogue

MODEL = REPO_ROOT / "models" / "attendant.tar.gz"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _clear_checks(url: str) -> None:
    store = open_store(url)
    try:
        assert isinstance(store, SqlStore)
        for customer_id in CUSTOMERS:
            await store.clear_verification_failures(customer_id)
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not MODEL.exists():
        print(f"no trained model at {MODEL}: python -m bot.tools.train", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="attendant-dialogues-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'attendant.db'}"
        if seed(["--url", url]) != 0:
            return 2
        stack = RasaStack(
            rasa_port=_free_port(),
            action_port=_free_port(),
            token=secrets.token_urlsafe(16),
            redis_url=args.redis_url,
            model_path=MODEL,
            log_dir=Path(tmp),
            extra_env={"ATTENDANT_STORE_URL": url},
        )
        results: dict[str, bool] = {}
        with stack:
            stack.wait_ready(timeout=300)
            for dialogue in DIALOGUES:
                outcome = have_dialogue(stack, dialogue)
                asyncio.run(_clear_checks(url))
                results[dialogue.name] = outcome.completed
                if not outcome.completed:
                    print(f"NOT COMPLETED {dialogue.name}: {outcome.why}")
                    print("    " + "\n    ".join(outcome.transcript))
    done = sum(results.values())
    share = done / len(results)
    print(f"dialogues completed without a person: {done}/{len(results)} = {share:.1%}")
    if args.json:
        args.json.write_text(json.dumps({"share": share, "completed": results}, indent=2) + "\n")
    return 0 if share >= SHARE_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

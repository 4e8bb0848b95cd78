"""``python -m bot``: run the gateway (AudioSocket media server and FastAGI call control).

Configuration comes from the environment (see ``bot/config.py`` and the README). Rasa and its action server
are started separately (``make run`` starts everything).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import aiohttp

from bot.config import Config, ConfigError
from bot.console import AgentsFileError, token_lines
from bot.gateway import Gateway
from bot.prompts import PromptsError
from bot.tts import LexiconError
from telephony.agi import AgiServer

log = logging.getLogger("bot")


async def wait_for_rasa(url: str, token: str, timeout_s: float) -> bool:
    """Wait until the Attendant channel answers (Rasa opens its port only once its model is loaded); warm it
    with one parse through the channel's ``/warmup``. False if it never came up.

    Rasa runs without its HTTP API: the channel's routes are the only ones there are."""
    channel = f"{url}/webhooks/attendant"
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with http.get(f"{channel}/") as resp:
                    if resp.status == 200:
                        async with http.post(
                            f"{channel}/warmup", headers={"Authorization": f"Bearer {token}"}, json={}
                        ) as warm:
                            return warm.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.5)
    return False


async def serve(gateway: Gateway, rasa_wait_s: float) -> None:
    """Run until SIGINT/SIGTERM."""
    config = gateway.config
    if rasa_wait_s > 0 and not await wait_for_rasa(config.rasa.url, config.rasa.token, rasa_wait_s):
        log.warning("Rasa at %s is not ready; calls will be handed to a person until it is", config.rasa.url)
    agi = AgiServer(config.agi, gateway.redis)
    await agi.start()
    await gateway.start()
    print(
        f"attendant gateway: audiosocket {config.gateway.host}:{gateway.server.port}  "
        f"fastagi {config.agi.host}:{config.agi.port}  rasa {config.rasa.url}  "
        f"asr {'on' if gateway.asr else 'OFF'}",
        flush=True,
    )
    if gateway.console is not None:
        lines = token_lines(gateway.roster, gateway.agent_tokens, gateway.console.url)
        print("\n".join(lines), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        # FastAGI first: stop taking new sessions, let those in progress tell the dialplan where the caller
        # goes; then the calls.
        await agi.close()
        await gateway.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m bot", description="Attendant gateway")
    parser.add_argument("--rasa-wait", type=float, default=180.0, help="seconds to wait for Rasa (0: don't)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = Config.from_env()
        gateway = Gateway(config)  # loads the models here, before the event loop runs
        asyncio.run(serve(gateway, args.rasa_wait))
    except (ConfigError, PromptsError, LexiconError, AgentsFileError) as exc:
        print(f"attendant: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

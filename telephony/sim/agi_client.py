"""Asterisk's side of the FastAGI ``register`` step, byte for byte: what the dialplan does before AudioSocket.

The sample dialplan (``telephony/asterisk/extensions.conf``) runs ``AGI(agi://host:port/register,<uuid>,<rate>)``
from its ``[attendant]`` (8000 Hz) or ``[attendant-slin16]`` (16000 Hz) context; this client sends the same
``agi_*`` header — argument 1 the call UUID, argument 2 the rate — and answers every command the route sends.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from telephony.sim.errors import GatewayUnreachable


def register_header(host: str, port: int, call_id: uuid.UUID, caller_number: str, rate: int) -> str:
    """The ``agi_*`` lines Asterisk sends for the register step, ending with the blank line."""
    return (
        "agi_network: yes\n"
        "agi_network_script: register\n"
        f"agi_request: agi://{host}:{port}/register\n"
        "agi_channel: PJSIP/simulator-00000001\n"
        "agi_language: en\n"
        "agi_type: PJSIP\n"
        f"agi_uniqueid: {time.time():.6f}\n"
        "agi_version: 22.0.0\n"
        f"agi_callerid: {caller_number}\n"
        "agi_calleridname: unknown\n"
        f"agi_context: {'attendant' if rate == 8000 else 'attendant-slin16'}\n"
        "agi_extension: s\n"
        "agi_priority: 5\n"
        f"agi_arg_1: {call_id}\n"
        f"agi_arg_2: {rate}\n\n"
    )


async def agi_register(
    host: str,
    port: int,
    call_id: uuid.UUID,
    caller_number: str,
    *,
    rate: int = 8000,
    timeout_s: float = 5.0,
) -> dict[str, str]:
    """Play the dialplan's ``AGI(agi://host:port/register,<uuid>,<rate>)`` step as Asterisk does.

    Sends the ``agi_*`` header, answers every command ``200 result=1``, and returns the channel variables the
    route set. Raises :class:`GatewayUnreachable` when the FastAGI server cannot be reached.
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=timeout_s)
    except (OSError, asyncio.TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise GatewayUnreachable(f"cannot reach FastAGI at {host}:{port} ({reason})") from exc
    variables: dict[str, str] = {}
    try:
        writer.write(register_header(host, port, call_id, caller_number, rate).encode())
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=timeout_s)
            if not line:
                break
            command = line.decode(errors="replace").strip()
            if command.startswith("SET VARIABLE "):
                name, _, value = command[len("SET VARIABLE ") :].partition(" ")
                variables[name] = value.strip('"')
            writer.write(b"200 result=1\n")
            await writer.drain()
    except (OSError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()
    return variables

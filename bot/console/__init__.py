"""The agent console: a web page per agent that pops the caller's context when their phone rings, and the
wrap-up after the call. Mounted in the gateway process::

    roster, tokens = roster_with_tokens(load_agents())        # telephony/agents.yml, .run/agent-tokens.json
    console = build_console(roster, redis, call_control)      # call_control: the AMI client (CallControl)
    await console.start("127.0.0.1", 8088)
    ...
    await console.desk.feed(Offered(agent_id, call_id, queue, uniqueid, at))   # from AMI events
    ...
    await console.close()

Modules: ``agents`` (the agents file, penalties, tokens), ``desk`` (events and per-agent state), ``view``
(what a card shows), ``auth`` (login, sessions), ``control`` (the CallControl protocol), ``voicemail``
(after-hours messages: listed by skill, played, marked handled), ``app`` (routes, server-sent events),
``static/`` (HTML, CSS, JS; no build step, nothing from the network).
"""

from bot.console.agents import (
    Agent,
    AgentsFileError,
    Disposition,
    Roster,
    hash_token,
    issue_tokens,
    load_agents,
    penalty,
    roster_with_tokens,
    token_lines,
)
from bot.console.app import Console, ConsoleSettings, build_console
from bot.console.control import CallControl, CallControlError
from bot.console.desk import Answered, Completed, Desk, DeskEvent, Offered, Withdrawn

__all__ = [
    "Agent",
    "AgentsFileError",
    "Answered",
    "CallControl",
    "CallControlError",
    "Completed",
    "Console",
    "ConsoleSettings",
    "Desk",
    "DeskEvent",
    "Disposition",
    "Offered",
    "Roster",
    "Withdrawn",
    "build_console",
    "hash_token",
    "issue_tokens",
    "load_agents",
    "penalty",
    "roster_with_tokens",
    "token_lines",
]

"""The agents file (``telephony/agents.yml``, the supervisor's): who takes calls, on which phone, with which
skills and languages, and the dispositions offered at wrap-up. Read once at start into a :class:`Roster`.

Every mistake is refused with ``file:line: problem`` (all of them at once, not just the first): unknown
skill, proficiency outside 1-5, duplicate id, interface or member name, malformed interface, a token hash
that is not 64 hex digits. Proficiency becomes the queue member penalty with :func:`penalty` (the one
definition, for whoever applies the file with ``QueueAdd``).

Login tokens: an agent's ``token_sha256`` is the hex sha256 of their personal token. Agents without one get a
random token from :func:`issue_tokens`, kept in ``.run/agent-tokens.json`` (mode 0600) so it survives a
restart; the launcher prints them (:func:`token_lines`). Plain tokens never go into a log line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from actions.shared.paths import REPO_ROOT
from actions.shared.yamlfile import YamlFileError, read_yaml
from telephony.callstate import Skill

AGENTS_FILE = REPO_ROOT / "telephony" / "agents.yml"
"""The supervisor's file."""
TOKENS_FILE = REPO_ROOT / ".run" / "agent-tokens.json"
"""Generated tokens of the agents without ``token_sha256`` (owner-only)."""

AGENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
INTERFACE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}/[A-Za-z0-9][A-Za-z0-9_.@+:-]{0,79}")
"""``Tech/resource`` as a queue member interface: PJSIP/1001, SIP/alice, IAX2/..., Local/1001@agents."""
STATE_INTERFACE = re.compile(rf"{INTERFACE.pattern}|Custom:[A-Za-z0-9_.@+-]{{1,80}}")
"""Where a member's device state comes from: an interface, or a custom device state (``Custom:maya``)."""
MEMBER_NAME = re.compile(r"[^|\x00-\x1f\x7f]{1,64}")
"""What Asterisk shows as MemberName and writes into queue_log's agent column: no ``|``, no control chars."""
LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
TOKEN_SHA256 = re.compile(r"[0-9a-f]{64}")
PROFICIENCY_MIN, PROFICIENCY_MAX = 1, 5
DEFAULT_LABELS = ("Resolved", "Follow-up needed", "Transferred", "Callback promised", "Wrong number")
_FIELDS = {
    "id",
    "name",
    "interface",
    "state_interface",
    "member_name",
    "skills",
    "languages",
    "token_sha256",
}


class AgentsFileError(ValueError):
    """The agents file is refused; ``problems`` holds one ``file:line: problem`` per mistake."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


def penalty(proficiency: int) -> int:
    """The queue member penalty for a proficiency: 5 (expert) -> 0 (rung first) ... 1 -> 4."""
    if isinstance(proficiency, bool) or not PROFICIENCY_MIN <= proficiency <= PROFICIENCY_MAX:
        raise ValueError(f"proficiency {proficiency!r} is outside {PROFICIENCY_MIN}..{PROFICIENCY_MAX}")
    return PROFICIENCY_MAX - proficiency


@dataclass(frozen=True, slots=True)
class Disposition:
    """A wrap-up choice: ``code`` goes to queue_log and the call record, ``label`` is shown."""

    code: str
    label: str


def slug(label: str) -> str:
    """``Follow-up needed`` -> ``follow-up-needed``."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:32]


DEFAULT_DISPOSITIONS = tuple(Disposition(slug(label), label) for label in DEFAULT_LABELS)


@dataclass(frozen=True, slots=True)
class Agent:
    """One person who takes calls."""

    id: str
    name: str
    interface: str
    """The queue member interface Asterisk rings (``PJSIP/1001``)."""
    member_name: str
    """``MemberName`` in AMI events; the agent column of queue_log."""
    skills: tuple[tuple[Skill, int], ...]
    """(skill, proficiency 1-5), best first."""
    languages: tuple[str, ...]
    token_sha256: str | None = None
    """Hex sha256 of the login token; None until :meth:`Roster.with_token_hashes` gives one."""
    line: int = 0
    """Where the entry starts in the agents file."""
    state_interface: str | None = None
    """``StateInterface`` of the queue member (device state of a ``Local/`` member's phone, or ``Custom:x``);
    None: Asterisk uses :attr:`interface`."""

    def proficiency(self, skill: Skill) -> int | None:
        """1-5, or None without the skill."""
        return dict(self.skills).get(skill)

    def penalties(self) -> dict[Skill, int]:
        """Skill -> queue member penalty, for ``QueueAdd``."""
        return {skill: penalty(level) for skill, level in self.skills}


@dataclass(frozen=True, slots=True)
class Roster:
    """Everything the agents file says."""

    agents: tuple[Agent, ...]
    dispositions: tuple[Disposition, ...] = ()
    """Wrap-up choices (the file's, else :data:`DEFAULT_DISPOSITIONS`)."""
    source: str = ""

    def __iter__(self) -> Iterator[Agent]:
        return iter(self.agents)

    def get(self, agent_id: str) -> Agent | None:
        return next((a for a in self.agents if a.id == agent_id), None)

    def by_interface(self, interface: str) -> Agent | None:
        """The agent whose phone is ``interface`` (``Interface`` of AgentCalled); the tech is case-blind."""
        tech, _, rest = interface.partition("/")
        for agent in self.agents:
            a_tech, _, a_rest = agent.interface.partition("/")
            if a_tech.lower() == tech.lower() and a_rest == rest:
                return agent
        return None

    def by_member_name(self, member_name: str) -> Agent | None:
        """The agent Asterisk calls ``member_name`` (``MemberName`` of AgentCalled)."""
        return next((a for a in self.agents if a.member_name == member_name), None)

    def disposition(self, code: str) -> Disposition | None:
        return next((d for d in self.dispositions if d.code == code), None)

    def with_token_hashes(self, hashes: Mapping[str, str]) -> Roster:
        """A copy where agents without ``token_sha256`` take the one in ``hashes`` (agent id -> hex)."""
        agents = tuple(
            a if a.token_sha256 or a.id not in hashes else replace(a, token_sha256=hashes[a.id])
            for a in self.agents
        )
        return replace(self, agents=agents)


# --- reading ----------------------------------------------------------------------------------------------


def load_agents(path: Path = AGENTS_FILE) -> Roster:
    """Read and validate the agents file. Raises :class:`AgentsFileError` (every problem, with file:line);
    ``FileNotFoundError`` passes through."""
    try:
        data = read_yaml(path)
    except YamlFileError as exc:
        raise AgentsFileError([str(exc)]) from exc
    return parse_agents(data, _line_map(path.read_text(encoding="utf-8")), str(path))


def parse_agents(data: Any, lines: _Lines | None = None, where: str = "agents.yml") -> Roster:
    """Validate already-parsed YAML (``lines`` says where things are, for the messages)."""
    lines = lines or _Lines()
    problems: list[str] = []

    def problem(line: int, text: str) -> None:
        problems.append(f"{where}:{line}: {text}")

    if not isinstance(data, dict):
        raise AgentsFileError(
            [f"{where}:1: expected a mapping with 'agents:' (and optionally 'dispositions:')"]
        )
    for key in data:
        if key not in ("agents", "dispositions"):
            problem(lines.top.get(str(key), 1), f"unknown section {key!r} (expected agents, dispositions)")
    dispositions = _dispositions(data.get("dispositions"), lines, problem)
    raw_agents = data.get("agents")
    if not isinstance(raw_agents, list) or not raw_agents:
        problem(lines.top.get("agents", 1), "'agents:' must be a list with at least one agent")
        raise AgentsFileError(problems)

    agents: list[Agent] = []
    seen: dict[str, dict[str, int]] = {"id": {}, "interface": {}, "member name": {}, "token": {}}
    for index, entry in enumerate(raw_agents):
        at = lines.item(index)
        agent = _agent(entry, index, lines, problem)
        if agent is None:
            continue
        for kind, value in (
            ("id", agent.id),
            ("interface", agent.interface.lower()),
            ("member name", agent.member_name),
            ("token", agent.token_sha256),
        ):
            if value is None:
                continue
            if value in seen[kind]:
                shown = "token_sha256" if kind == "token" else f"{kind} {value!r}"
                problem(at, f"duplicate {shown} (also on line {seen[kind][value]})")
            else:
                seen[kind][value] = at
        agents.append(agent)
    if problems:
        raise AgentsFileError(problems)
    return Roster(tuple(agents), dispositions or DEFAULT_DISPOSITIONS, where)


def _dispositions(raw: Any, lines: _Lines, problem: Any) -> tuple[Disposition, ...]:
    if raw is None:
        return DEFAULT_DISPOSITIONS
    at = lines.top.get("dispositions", 1)
    if not isinstance(raw, list) or not raw:
        problem(at, "'dispositions:' must be a list of labels")
        return ()
    found: list[Disposition] = []
    for i, label in enumerate(raw):
        line = lines.disposition(i)
        if not isinstance(label, str) or not label.strip() or len(label) > 40 or not slug(label):
            problem(line, f"disposition {label!r} must be a short label (letters or digits, at most 40)")
            continue
        code = slug(label)
        if any(d.code == code for d in found):
            problem(line, f"duplicate disposition {label!r}")
            continue
        found.append(Disposition(code, label.strip()))
    return tuple(found)


def _agent(entry: Any, index: int, lines: _Lines, problem: Any) -> Agent | None:
    at = lines.item(index)
    if not isinstance(entry, dict):
        problem(at, "each agent is a mapping (id, name, interface, skills, languages)")
        return None
    ok = True

    def bad(field: str, text: str) -> None:
        nonlocal ok
        ok = False
        given = entry.get("id")
        label = (
            f"agent {given!r}"
            if isinstance(given, str) and AGENT_ID.fullmatch(given)
            else f"agent #{index + 1}"
        )
        problem(lines.at_field(index, field), f"{label}: {text}")

    for key in entry:
        if key not in _FIELDS:
            bad(str(key), f"unknown field {key!r} (expected {', '.join(sorted(_FIELDS))})")
    agent_id = entry.get("id")
    if not isinstance(agent_id, str) or not AGENT_ID.fullmatch(agent_id):
        bad("id", f"id {agent_id!r} must be 1-32 of a-z, 0-9, '_' or '-' (starting with a letter or digit)")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        bad("name", "name must be given (at most 64 characters)")
    interface = entry.get("interface")
    if not isinstance(interface, str) or not INTERFACE.fullmatch(interface):
        bad("interface", f"interface {interface!r} must look like Tech/resource, e.g. PJSIP/1001")
    state_interface = entry.get("state_interface")
    if state_interface is not None and (
        not isinstance(state_interface, str) or not STATE_INTERFACE.fullmatch(state_interface)
    ):
        bad(
            "state_interface",
            f"state_interface {state_interface!r} must look like Tech/resource (PJSIP/1001) or Custom:name",
        )
    member_name = entry.get("member_name", name)
    if not isinstance(member_name, str) or not MEMBER_NAME.fullmatch(member_name):
        bad("member_name", "member_name must be 1-64 characters without '|' or line breaks")
    skills = _skills(entry.get("skills"), bad)
    languages = entry.get("languages", ["en"])
    if isinstance(languages, str):
        languages = [languages]
    if not isinstance(languages, list) or not languages:
        bad("languages", "languages must be a list such as [en, fr]")
        languages = []
    for lang in languages:
        if not isinstance(lang, str) or not LANGUAGE.fullmatch(lang):
            bad("languages", f"language {lang!r} must be a code such as en, fr or es-MX")
    token = entry.get("token_sha256")
    if token is not None and (not isinstance(token, str) or not TOKEN_SHA256.fullmatch(token.lower())):
        bad("token_sha256", "token_sha256 must be 64 hex digits (the sha256 of the agent's token)")
    if not (
        ok
        and isinstance(agent_id, str)
        and isinstance(name, str)
        and isinstance(interface, str)
        and isinstance(member_name, str)
    ):
        return None
    return Agent(
        id=agent_id,
        name=name.strip(),
        interface=interface,
        member_name=member_name,
        skills=skills,
        languages=tuple(languages),
        token_sha256=token.lower() if token else None,
        line=at,
        state_interface=state_interface if isinstance(state_interface, str) else None,
    )


def _skills(raw: Any, bad: Any) -> tuple[tuple[Skill, int], ...]:
    if not isinstance(raw, dict) or not raw:
        bad("skills", "skills must map each skill to a proficiency 1-5, e.g. {billing: 5, general: 3}")
        return ()
    known = ", ".join(s.value for s in Skill)
    found: list[tuple[Skill, int]] = []
    for name, level in raw.items():
        try:
            skill = Skill(str(name))
        except ValueError:
            bad("skills", f"unknown skill {name!r} (one of {known})")
            continue
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= PROFICIENCY_MAX:
            bad("skills", f"proficiency of {skill.value} is {level!r}: must be a whole number 1-5")
            continue
        found.append((skill, level))
    return tuple(sorted(found, key=lambda pair: -pair[1]))


# --- where things are in the file ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Lines:
    """1-based line numbers of the file's parts, read from the YAML node tree."""

    top: Mapping[str, int] = field(default_factory=dict)
    items: tuple[int, ...] = ()
    fields: tuple[Mapping[str, int], ...] = ()
    disposition_items: tuple[int, ...] = ()

    def item(self, index: int) -> int:
        return self.items[index] if index < len(self.items) else self.top.get("agents", 1)

    def at_field(self, index: int, name: str) -> int:
        if index < len(self.fields) and name in self.fields[index]:
            return self.fields[index][name]
        return self.item(index)

    def disposition(self, index: int) -> int:
        if index < len(self.disposition_items):
            return self.disposition_items[index]
        return self.top.get("dispositions", 1)


def _line_map(text: str) -> _Lines:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return _Lines()
    top: dict[str, int] = {}
    items: list[int] = []
    fields: list[dict[str, int]] = []
    disposition_items: list[int] = []
    for key, value in root.value:
        top[str(key.value)] = key.start_mark.line + 1
        if key.value == "agents" and isinstance(value, yaml.SequenceNode):
            for item in value.value:
                items.append(item.start_mark.line + 1)
                where: dict[str, int] = {}
                if isinstance(item, yaml.MappingNode):
                    for k, v in item.value:
                        # the value's line for scalars (a bad value is where the eye goes), else the key's
                        node = v if isinstance(v, yaml.ScalarNode) else k
                        where[str(k.value)] = node.start_mark.line + 1
                        if k.value == "skills" and isinstance(v, yaml.MappingNode):
                            where.update(_skill_lines(v))
                fields.append(where)
        if key.value == "dispositions" and isinstance(value, yaml.SequenceNode):
            disposition_items = [item.start_mark.line + 1 for item in value.value]
    return _Lines(top, tuple(items), tuple(fields), tuple(disposition_items))


def _skill_lines(node: yaml.MappingNode) -> dict[str, int]:
    """A problem in ``skills`` points at the first bad skill's line (found by value checks)."""
    known = {s.value for s in Skill}
    for k, v in node.value:
        level = v.value if isinstance(v, yaml.ScalarNode) else None
        if k.value not in known or not (isinstance(level, str) and level in {"1", "2", "3", "4", "5"}):
            return {"skills": k.start_mark.line + 1}
    return {}


# --- tokens -------------------------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """The hex sha256 the agents file and the login check compare."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_tokens(roster: Roster, path: Path = TOKENS_FILE) -> dict[str, str]:
    """Tokens for the agents without ``token_sha256`` (agent id -> token): the ones already in ``path`` are
    kept, missing ones made (``secrets.token_urlsafe(24)``); the file is rewritten owner-only (0600)."""
    old: dict[str, str] = {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(raw, dict):
            old = {str(k): v for k, v in raw.items() if isinstance(v, str) and len(v) >= 16}
    except (FileNotFoundError, ValueError):
        pass
    tokens = {a.id: old.get(a.id) or secrets.token_urlsafe(24) for a in roster if not a.token_sha256}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(tokens, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tokens


def roster_with_tokens(roster: Roster, path: Path = TOKENS_FILE) -> tuple[Roster, dict[str, str]]:
    """:func:`issue_tokens`, and the roster every agent of which can now log in."""
    tokens = issue_tokens(roster, path)
    return roster.with_token_hashes({k: hash_token(v) for k, v in tokens.items()}), tokens


def token_lines(roster: Roster, tokens: Mapping[str, str], console_url: str) -> list[str]:
    """What the launcher prints: the console's address and each agent's way in."""
    lines = [f"Agent console: {console_url}"]
    for agent in roster:
        if agent.id in tokens:
            lines.append(f"  {agent.name} ({agent.id}, {agent.interface}): token {tokens[agent.id]}")
        else:
            lines.append(f"  {agent.name} ({agent.id}, {agent.interface}): own token (token_sha256)")
    return lines

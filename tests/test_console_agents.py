"""The agents file: the shipped one is valid, every kind of mistake is refused with file:line, proficiency
maps to the member penalty, and generated login tokens are kept owner-only and reused across restarts."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bot.console.agents import (
    AGENTS_FILE,
    AgentsFileError,
    hash_token,
    issue_tokens,
    load_agents,
    penalty,
    roster_with_tokens,
    slug,
    token_lines,
)
from bot.console.auth import find_agent
from telephony.callstate import Skill

GOOD = """\
dispositions:
  - Resolved
  - Follow-up needed
agents:
  - id: maya
    name: Maya Chen
    interface: PJSIP/1001
    skills: {billing: 5, general: 3}
    languages: [en, es-MX]
  - id: sam
    name: Sam Okafor
    interface: Local/sam@agents
    member_name: Sam O.
    skills:
      orders: 1
    token_sha256: %s
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agents.yml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(AgentsFileError) as caught:
        load_agents(write(tmp_path, text))
    return list(caught.value.problems)


def test_the_shipped_file_has_three_valid_demo_agents() -> None:
    roster = load_agents(AGENTS_FILE)
    assert [a.id for a in roster] == ["maya", "sam", "priya"]
    assert all(a.interface.startswith("PJSIP/") for a in roster)
    covered = {skill for a in roster for skill, _ in a.skills}
    assert covered == set(Skill), "every skill queue has someone"
    assert [d.code for d in roster.dispositions][:5] == [
        "resolved",
        "follow-up-needed",
        "transferred",
        "callback-promised",
        "wrong-number",
    ]


def test_a_good_file_reads_into_agents(tmp_path: Path) -> None:
    digest = hash_token("sam's own token")
    roster = load_agents(write(tmp_path, GOOD % digest))
    maya, sam = roster.agents
    assert maya.member_name == "Maya Chen"  # defaults to the name
    assert maya.skills == ((Skill.BILLING, 5), (Skill.GENERAL, 3))
    assert maya.penalties() == {Skill.BILLING: 0, Skill.GENERAL: 2}
    assert maya.languages == ("en", "es-MX")
    assert maya.line == 5 and sam.line == 10
    assert sam.member_name == "Sam O." and sam.token_sha256 == digest
    assert sam.penalties() == {Skill.ORDERS: 4}
    assert roster.by_interface("pjsip/1001") is maya and roster.by_interface("PJSIP/1002") is None
    assert roster.by_member_name("Sam O.") is sam
    assert [d.label for d in roster.dispositions] == ["Resolved", "Follow-up needed"]


def test_penalty_is_five_minus_proficiency() -> None:
    assert [penalty(p) for p in (5, 4, 3, 2, 1)] == [0, 1, 2, 3, 4]
    for bad in (0, 6, True):
        with pytest.raises(ValueError):
            penalty(bad)


@pytest.mark.parametrize(
    ("entry", "line", "words"),
    [
        ("    skills: {biling: 5}\n", 6, "unknown skill 'biling'"),
        ("    skills: {billing: 7}\n", 6, "proficiency of billing is 7"),
        ("    skills: {billing: 0}\n", 6, "must be a whole number 1-5"),
        ("    skills: {billing: high}\n", 6, "proficiency of billing is 'high'"),
        ("    skills: {}\n", 6, "skills must map each skill"),
    ],
)
def test_skill_mistakes_name_the_line(tmp_path: Path, entry: str, line: int, words: str) -> None:
    text = "agents:\n  - id: a1\n    name: A\n    interface: PJSIP/1001\n    languages: [en]\n" + entry
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'agents.yml'}:{line}: agent 'a1': ")
    assert words in found[0]


def test_duplicates_and_malformed_fields_are_all_reported(tmp_path: Path) -> None:
    text = """\
agents:
  - id: a1
    name: A
    interface: PJSIP/1001
    skills: {general: 3}
  - id: a1
    name: B
    interface: pjsip/1001
    skills: {general: 3}
  - id: Bad Id
    name: C
    interface: "PJSIP 1003"
    member_name: "C|D"
    skills: {general: 3}
    languages: [english]
    token_sha256: abc
    colour: blue
"""
    found = problems(tmp_path, text)
    where = str(tmp_path / "agents.yml")
    assert f"{where}:6: duplicate id 'a1' (also on line 2)" in found
    assert f"{where}:6: duplicate interface 'pjsip/1001' (also on line 2)" in found
    joined = "\n".join(found)
    assert f"{where}:10: agent #3: id 'Bad Id' must be" in joined
    assert f"{where}:12: agent #3: interface 'PJSIP 1003' must look like Tech/resource" in joined
    assert f"{where}:13: agent #3: member_name must be" in joined
    assert f"{where}:15: agent #3: language 'english'" in joined
    assert f"{where}:16: agent #3: token_sha256 must be 64 hex digits" in joined
    assert f"{where}:17: agent #3: unknown field 'colour'" in joined


def test_structure_and_syntax_mistakes(tmp_path: Path) -> None:
    assert problems(tmp_path, "agents: [\n")[0].startswith(f"{tmp_path / 'agents.yml'}:")
    assert "not valid YAML" in problems(tmp_path, "agents: [\n")[0]
    assert "'agents:' must be a list" in problems(tmp_path, "agents: {}\n")[0]
    assert "unknown section 'agent'" in problems(tmp_path, "agent: []\nagents: []\n")[0]
    found = problems(
        tmp_path,
        "dispositions: [Resolved, resolved]\n"
        "agents:\n  - id: a\n    name: A\n    interface: PJSIP/1\n    skills: {general: 1}\n",
    )
    assert found == [f"{tmp_path / 'agents.yml'}:1: duplicate disposition 'resolved'"]


def test_slugs() -> None:
    assert slug("Follow-up needed") == "follow-up-needed"
    assert slug("Callback promised!") == "callback-promised"


def test_tokens_are_made_once_kept_owner_only_and_let_agents_in(tmp_path: Path) -> None:
    roster = load_agents(write(tmp_path, GOOD % hash_token("sam's own token")))
    path = tmp_path / "run" / "agent-tokens.json"
    tokens = issue_tokens(roster, path)
    assert list(tokens) == ["maya"]  # sam has his own
    assert len(tokens["maya"]) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == tokens
    assert issue_tokens(roster, path) == tokens  # a restart keeps them

    with_tokens, again = roster_with_tokens(roster, path)
    assert again == tokens
    maya = with_tokens.get("maya")
    assert maya is not None and maya.token_sha256 == hash_token(tokens["maya"])
    assert find_agent(with_tokens, tokens["maya"]) is maya
    assert find_agent(with_tokens, "sam's own token") is with_tokens.get("sam")
    assert find_agent(with_tokens, "a guess") is None
    assert find_agent(roster, tokens["maya"]) is None  # without the hash nobody is maya

    lines = token_lines(with_tokens, tokens, "http://127.0.0.1:8088/")
    assert lines[0] == "Agent console: http://127.0.0.1:8088/"
    assert tokens["maya"] in lines[1] and "own token" in lines[2]


def test_a_broken_tokens_file_is_replaced(tmp_path: Path) -> None:
    roster = load_agents(write(tmp_path, GOOD % hash_token("x")))
    path = tmp_path / "agent-tokens.json"
    path.write_text("{not json")
    path.chmod(0o644)
    tokens = issue_tokens(roster, path)
    assert json.loads(path.read_text()) == tokens
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

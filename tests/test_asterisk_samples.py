"""The Asterisk samples an administrator pastes must work as pasted: every dialplan application, function and
channel driver they use is provided by a module that ``modules.conf`` loads, and every music-on-hold class the
queues name exists in ``musiconhold.conf``.

The tables below say which Asterisk module provides what, as read in Asterisk 22's sources (``main/
pbx_builtins.c`` and ``main/pbx_variables.c`` for the built-ins, each module's ``ast_register_application``,
``ast_custom_function`` and ``AST_MODULE_INFO(... .requires = ...)``). Something the samples start to use that
is not in a table fails the test until someone looks it up: that is the point.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "telephony" / "asterisk"

BUILTIN_APPS = frozenset(
    "Answer BackGround Busy Congestion ExecIfTime Goto GotoIf GotoIfTime Hangup Incomplete NoOp Proceeding "
    "Progress RaiseException Ringing SayAlpha SayDigits SayNumber Wait WaitDigit WaitExten Set MSet".split()
)
"""Applications of the Asterisk core itself (no module to load)."""

APP_MODULES = {
    "AGI": "res_agi",
    "AudioSocket": "app_audiosocket",
    "Dial": "app_dial",
    "ExecIf": "app_exec",
    "Gosub": "app_stack",
    "MusicOnHold": "res_musiconhold",
    "Originate": "app_originate",
    "PauseQueueMember": "app_queue",
    "Playback": "app_playback",
    "Queue": "app_queue",
    "QueueLog": "app_queue",
    "Record": "app_record",
    "Return": "app_stack",
    "TryExec": "app_exec",
    "UnpauseQueueMember": "app_queue",
    "Verbose": "app_verbose",
    "VoiceMail": "app_voicemail",
}

FUNCTION_MODULES = {
    "CALLERID": "func_callerid",
    "CHANNEL": "func_channel",
    "CUT": "func_cut",
    "FILTER": "func_strings",
    "IF": "func_logic",
    "ISNULL": "func_logic",
    "LEN": "func_strings",
    "QUEUE_EXISTS": "app_queue",
    "QUEUE_MEMBER": "app_queue",
    "UUID": "func_uuid",
}

TECH_MODULES = {"AudioSocket": "chan_audiosocket", "PJSIP": "chan_pjsip", "Local": None}
"""Channel drivers named in ``Dial(Tech/...)``; Local channels are part of the core."""

REQUIRES = {
    "res_agi": {"res_speech"},
    "app_audiosocket": {"res_audiosocket"},
    "chan_audiosocket": {"res_audiosocket"},
    # Not .requires in the source, but without them the feature fails at run time:
    "app_queue": {"bridge_simple"},  # no bridge technology: the agent answers and nobody is connected
    "res_musiconhold": {"res_timing_timerfd"},  # a timing source drives the music on AudioSocket/Local legs
    "app_playback": {"format_gsm", "codec_gsm"},  # the core sounds are GSM files
}

PRIORITY_LINE = re.compile(
    r"^\s*(?:exten\s*=>\s*[^,]+,|same\s*=>\s*)\s*[^,]+,\s*([A-Za-z][A-Za-z0-9_]*)\s*\("
)
FUNCTION_CALL = re.compile(r"(?:\$\{|\bM?Set\(\s*_{0,2})([A-Z][A-Z0-9_]*)\(")
"""A function read (``${FUNC(...)}``) or written (``Set(FUNC(...)=value)``)."""
NESTED_APP = re.compile(r"\b(?:TryExec|ExecIf)\((?:[^?()]*\?)?\s*([A-Za-z][A-Za-z0-9_]*)\(")
"""The application ``TryExec(App(...))`` or ``ExecIf(cond?App(...))`` runs."""
DIAL_TECH = re.compile(r"\bDial\(\s*([A-Za-z][A-Za-z0-9_]*)/")


def _code(path: Path) -> list[str]:
    """The file's lines without ``;`` comments."""
    return [line.split(";", 1)[0] for line in path.read_text().splitlines()]


def loaded_modules() -> set[str]:
    modules = set()
    for line in _code(SAMPLES / "modules.conf"):
        m = re.match(r"\s*load\s*=>?\s*([a-z0-9_]+)\.so\s*$", line)
        if m:
            modules.add(m.group(1))
    return modules


def dialplan_uses() -> tuple[set[str], set[str], set[str]]:
    """Applications, functions and channel technologies ``extensions.conf`` uses."""
    apps: set[str] = set()
    functions: set[str] = set()
    techs: set[str] = set()
    for line in _code(SAMPLES / "extensions.conf"):
        m = PRIORITY_LINE.match(line)
        if m:
            apps.add(m.group(1))
        apps.update(NESTED_APP.findall(line))
        functions.update(FUNCTION_CALL.findall(line))
        techs.update(DIAL_TECH.findall(line))
    return apps, functions, techs


def required_modules() -> dict[str, str]:
    """Module -> what in the samples needs it."""
    apps, functions, techs = dialplan_uses()
    needed: dict[str, str] = {"pbx_config": "extensions.conf"}
    for app in sorted(apps):
        if app in BUILTIN_APPS:
            continue
        assert app in APP_MODULES, f"extensions.conf uses {app}(): add its module to the table in this test"
        needed[APP_MODULES[app]] = f"{app}()"
    for func in sorted(functions):
        assert func in FUNCTION_MODULES, f"extensions.conf uses ${{{func}()}}: add its module to this test"
        needed[FUNCTION_MODULES[func]] = f"${{{func}()}}"
    for tech in sorted(techs):
        assert tech in TECH_MODULES, f"extensions.conf dials {tech}/: add its channel driver to this test"
        module = TECH_MODULES[tech]
        if module is not None:
            needed[module] = f"Dial({tech}/...)"
    if (SAMPLES / "queues.conf").exists():
        needed.setdefault("app_queue", "queues.conf")
    if (SAMPLES / "musiconhold.conf").exists():
        needed["res_musiconhold"] = "musiconhold.conf"
    for module, why in list(needed.items()):
        for dependency in REQUIRES.get(module, ()):
            needed.setdefault(dependency, f"{module} ({why})")
    return needed


def test_the_parser_sees_what_the_dialplan_uses() -> None:
    apps, functions, techs = dialplan_uses()
    assert {"Answer", "AGI", "TryExec", "AudioSocket", "Dial", "Queue", "Playback", "VoiceMail"} <= apps
    assert {"UUID", "CHANNEL", "QUEUE_EXISTS"} <= functions
    assert "AudioSocket" in techs


def test_every_module_the_samples_use_is_loaded() -> None:
    loaded = loaded_modules()
    missing = {module: why for module, why in required_modules().items() if module not in loaded}
    assert not missing, f"modules.conf does not load: {missing}"


def test_a_missing_module_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: drop app_exec (TryExec) from a copy of modules.conf and it does."""
    for name in ("extensions.conf", "queues.conf", "musiconhold.conf"):
        (tmp_path / name).write_text((SAMPLES / name).read_text())
    text = (SAMPLES / "modules.conf").read_text()
    (tmp_path / "modules.conf").write_text(re.sub(r"(?m)^load = app_exec\.so.*$", "", text))
    monkeypatch.setattr(sys.modules[__name__], "SAMPLES", tmp_path)
    assert "app_exec" in required_modules()
    assert "app_exec" not in loaded_modules()


def _sections(path: Path) -> set[str]:
    return {m.group(1) for line in _code(path) if (m := re.match(r"\s*\[([^\]]+)\]", line))}


def test_every_music_class_the_queues_name_exists() -> None:
    classes = set()
    for line in _code(SAMPLES / "queues.conf"):
        m = re.match(r"\s*musicclass\s*=\s*(\S+)", line)
        if m:
            classes.add(m.group(1))
    assert classes, "queues.conf names no music class: queued callers would hear silence"
    defined = _sections(SAMPLES / "musiconhold.conf")
    assert classes <= defined, f"music classes {classes - defined} are not in musiconhold.conf"
    for line in _code(SAMPLES / "musiconhold.conf"):
        m = re.match(r"\s*mode\s*=\s*(\S+)", line)
        if m:
            assert m.group(1) in {"files", "playlist", "custom", "mp3", "quietmp3"}


def test_register_passes_each_contexts_rate() -> None:
    """The gateway knows the call's rate from the first frame: each context tells it on ``register``."""
    text = (SAMPLES / "extensions.conf").read_text()
    contexts = re.split(r"(?m)^\[", text)
    rates = {}
    for block in contexts:
        name = block.split("]", 1)[0]
        register = r"AGI\(\$\{ATTENDANT_AGI\}/register,\$\{ATTENDANT_UUID\},(\d+),\$\{ATTENDANT_LINE\}\)"
        m = re.search(register, block)
        if m:
            rates[name] = int(m.group(1))
    assert rates == {"attendant": 8000, "attendant-slin16": 16000}
    slin16 = next(b for b in contexts if b.startswith("attendant-slin16]"))
    assert "c(slin16)" in slin16


def test_the_queue_call_names_what_exists() -> None:
    """``Queue(queue,options,URL,announceoverride,timeout,AGI,gosub,rule)``: the whisper gosub is a context of
    the dialplan, the rule is in queuerules.conf, and so is every queue's defaultrule."""
    text = (SAMPLES / "extensions.conf").read_text()
    contexts = _sections(SAMPLES / "extensions.conf")
    rules = _sections(SAMPLES / "queuerules.conf")
    calls = re.findall(r"\bQueue\(([^)]*)\)", text)
    with_gosub = [c.split(",") for c in calls if len(c.split(",")) >= 7]
    assert with_gosub, "no Queue() call runs the whisper gosub"
    for args in with_gosub:
        assert args[6] in contexts, f"Queue() gosub context {args[6]!r} is not in extensions.conf"
    for line in _code(SAMPLES / "queues.conf"):
        m = re.match(r"\s*defaultrule\s*=\s*(\S+)", line)
        if m:
            assert m.group(1) in rules
    assert "attendant-widen" in rules  # the rule telephony.callstate.Route names
    for line in _code(SAMPLES / "queuerules.conf"):
        m = re.match(r"\s*penaltychange\s*=>\s*(\d+),([+-]?\d+)\s*$", line)
        assert m or not line.strip().startswith("penaltychange"), line


def test_the_ami_user_is_least_privilege_and_sees_the_call_uuid() -> None:
    lines = _code(SAMPLES / "manager.conf")
    section = None
    privileges: dict[str, set[str]] = {}
    channelvars = set()
    for line in lines:
        if m := re.match(r"\s*\[([^\]]+)\]", line):
            section = m.group(1)
        elif m := re.match(r"\s*(read|write)\s*=\s*(.+)", line):
            privileges.setdefault(f"{section}.{m.group(1)}", set()).update(
                p.strip() for p in m.group(2).split(",")
            )
        elif m := re.match(r"\s*channelvars\s*=\s*(.+)", line):
            channelvars.update(v.strip() for v in m.group(1).split(","))
    assert privileges["attendant.read"] == {"call", "agent"}
    assert privileges["attendant.write"] <= {"call", "agent", "originate"}
    assert not ({"system", "command", "config", "all"} & set().union(*privileges.values()))
    assert channelvars == {"ATTENDANT_UUID"}


def test_callback_voicemail_and_oncall_results_are_routed() -> None:
    """The outcome route's results for callbacks and after hours each have their branch: a callback hangs up
    (nobody queued), a voicemail is recorded with Record() (beep, '#' ends it, ATTENDANT_VM_MAX seconds, kept
    on hangup) into a file named by the call id and reported by the FastAGI ``voicemail`` route from the
    hangup handler, and the on-call branch dials ATTENDANT_ONCALL or goes to a person when none is set."""
    text = (SAMPLES / "extensions.conf").read_text()
    for result in ("callback", "voicemail", "oncall"):
        assert f'GotoIf($["${{ATTENDANT_RESULT}}" = "{result}"]?{result},1)' in text
    callback = text.split("exten => callback,1,")[1].split("\n\n")[0]
    assert "Hangup(16)" in callback and "Queue(" not in callback
    voicemail = text.split("exten => voicemail,1,")[1].split("\n\n")[0]
    assert "Set(ATTENDANT_VM_FILE=${ATTENDANT_VM_DIR}/${ATTENDANT_UUID}.wav)" in voicemail
    assert "Set(CHANNEL(hangup_handler_push)=attendant-voicemail-saved,s,1)" in voicemail
    assert "Record(${ATTENDANT_VM_FILE},0,${ATTENDANT_VM_MAX},k)" in voicemail
    saved = text.split("[attendant-voicemail-saved]")[1]
    assert "AGI(${ATTENDANT_AGI}/voicemail,${ATTENDANT_UUID},${ATTENDANT_VM_FILE},${RECORD_STATUS})" in saved
    oncall = text.split("exten => oncall,1,")[1].split("\n\n")[0]
    assert 'GotoIf($["${ATTENDANT_ONCALL}" = ""]?to-person,1)' in oncall
    assert "Dial(${ATTENDANT_ONCALL},45,t)" in oncall and "Goto(to-person,1)" in oncall

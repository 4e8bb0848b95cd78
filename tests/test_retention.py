"""Retention on the real Redis and a fake clock: calls older than the window lose every key (record,
transcript, disposition, Rasa tracker), younger ones keep theirs, and the purge is logged as a count.
Voicemails older than their own window lose their stream entry, their mark hash and their WAV file — a file
only when it is inside the voicemail directory, never through ``../`` or a link."""

from __future__ import annotations

import logging
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.config import Config, ConfigError
from bot.retention import Purge, call_keys
from telephony.callstate import voicemail_key

NOW = 2_000_000_000.0


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
    yield client
    await client.close()


async def _call(redis: aioredis.Redis, ended: float | None, started: float) -> str:
    call_id = str(uuid.uuid4())
    record, transcript, disposition, tracker = call_keys(call_id)
    fields = {"started_at": str(started)}
    if ended is not None:
        fields["ended_at"] = str(ended)
    await redis.hset(record, mapping=fields)
    await redis.xadd(transcript, {"who": "caller", "text": "[redacted]", "t": str(started)})
    await redis.hset(disposition, "maya", "{}")
    await redis.set(tracker, "{}")
    return call_id


async def test_old_calls_are_purged_with_every_key_and_logged(
    redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    old = await _call(redis, ended=NOW - 90_000, started=NOW - 90_100)
    never_ended = await _call(redis, ended=None, started=NOW - 100_000)
    young = await _call(redis, ended=NOW - 3_600, started=NOW - 3_700)
    try:
        purge = Purge(redis, window_s=86_400, clock=lambda: NOW)
        with caplog.at_level(logging.INFO, logger="bot.retention"):
            assert await purge.once() >= 2
        for call_id in (old, never_ended):
            assert await redis.exists(*call_keys(call_id)) == 0
        assert await redis.exists(*call_keys(young)) == 4
        assert any("retention: purged" in r.getMessage() for r in caplog.records)
        assert not any(old in r.getMessage() for r in caplog.records)  # a count, no ids or content
        assert await redis.exists(*call_keys(old)) == 0
    finally:
        for call_id in (old, never_ended, young):
            await redis.delete(*call_keys(call_id))


# --- voicemails: their own window, their files confined to the voicemail directory -------------------------

DAY = 86_400.0
VM_WINDOW = 30 * DAY


@pytest.fixture
async def vm_redis() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """db 13 and a stream of this test's own (the entry ids carry the fake clock's times)."""
    client = aioredis.from_url("redis://127.0.0.1:6379/13", decode_responses=True)
    key = f"attendant:test:voicemails:{uuid.uuid4()}"
    yield client, key
    ids = [i for i, _ in await client.xrange(key)]
    if ids:
        await client.delete(*(voicemail_key(i) for i in ids))
    await client.delete(key)
    await client.close()


async def _voicemail(redis: aioredis.Redis, key: str, at: float, file: str, *, marked: bool = True) -> str:
    """An entry as the FastAGI ``voicemail`` route writes it, added at ``at`` (its id's time), and a mark."""
    entry_id = await redis.xadd(
        key,
        {
            "call": str(uuid.uuid4()),
            "file": file,
            "status": "dtmf",
            "caller_number": "+15550100077",
            "line": "default",
            "skill": "general",
            "reason": "after-hours",
            "context": "{}",
            "at": f"{at:.3f}",
        },
        id=f"{int(at * 1000)}-{secrets.randbelow(10**9)}",
    )
    if marked:
        await redis.hset(voicemail_key(entry_id), mapping={"heard_by": "maya", "heard_at": f"{at + 60:.3f}"})
    return str(entry_id)


def _wav(root: Path, name: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF....WAVEfmt ")  # the purge never reads it
    return path


async def _ids(redis: aioredis.Redis, key: str) -> set[str]:
    return {i for i, _ in await redis.xrange(key)}


async def test_old_voicemails_go_with_their_files_and_marks_recent_ones_stay(
    vm_redis: tuple[aioredis.Redis, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis, key = vm_redis
    vm_dir = tmp_path / "spool"
    old_file = _wav(vm_dir, f"{uuid.uuid4()}.wav")
    sub_file = _wav(vm_dir, f"sub/{uuid.uuid4()}.wav")
    new_file = _wav(vm_dir, f"{uuid.uuid4()}.wav")
    missing = str(vm_dir / f"{uuid.uuid4()}.wav")  # a file already deleted
    gone = await _voicemail(redis, key, NOW - 40 * DAY, missing)
    old = await _voicemail(redis, key, NOW - 31 * DAY, str(old_file))
    old_sub = await _voicemail(redis, key, NOW - 30 * DAY - 5, str(sub_file))
    recent = await _voicemail(redis, key, NOW - 29 * DAY, str(new_file))
    purge = Purge(
        redis,
        window_s=DAY,
        voicemail_window_s=VM_WINDOW,
        voicemail_dir=vm_dir,
        clock=lambda: NOW,
        voicemails_key=key,
        batch=2,  # more than one batch
    )
    with caplog.at_level(logging.INFO, logger="bot.retention"):
        done = await purge.voicemails()
    assert (done.entries, done.files, done.gone, done.refused, done.failed) == (3, 2, 1, 0, 0)
    assert await _ids(redis, key) == {recent}
    assert not old_file.exists() and not sub_file.exists() and new_file.exists()
    for entry_id in (old, old_sub, gone):
        assert await redis.exists(voicemail_key(entry_id)) == 0
    assert await redis.hget(voicemail_key(recent), "heard_by") == "maya"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "purged 3 voicemail(s)" in logged and "2 file(s) deleted" in logged
    assert "+1555" not in logged and str(vm_dir) not in logged  # counts, no caller numbers or paths
    assert (await purge.voicemails()).entries == 0  # a second pass finds nothing


async def test_the_periodic_pass_purges_voicemails_too(
    vm_redis: tuple[aioredis.Redis, str], tmp_path: Path
) -> None:
    redis, key = vm_redis
    clock = [NOW]
    wav = _wav(tmp_path, f"{uuid.uuid4()}.wav")
    entry = await _voicemail(redis, key, NOW, str(wav))
    purge = Purge(
        redis,
        window_s=DAY,
        voicemail_window_s=VM_WINDOW,
        voicemail_dir=tmp_path,
        clock=lambda: clock[0],
        voicemails_key=key,
    )
    await purge.once()
    assert await _ids(redis, key) == {entry} and wav.exists()  # on the day: kept
    clock[0] = NOW + VM_WINDOW + 1  # a fake clock: thirty days and a second later
    await purge.once()
    assert await _ids(redis, key) == set() and not wav.exists()
    assert await redis.exists(voicemail_key(entry)) == 0


async def test_a_path_outside_the_voicemail_directory_is_never_deleted(
    vm_redis: tuple[aioredis.Redis, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis, key = vm_redis
    vm_dir = tmp_path / "spool"
    vm_dir.mkdir()
    outside = _wav(tmp_path / "elsewhere", "precious.wav")
    not_wav = tmp_path / "spool" / "notes.txt"
    not_wav.write_text("keep")
    (vm_dir / "link.wav").symlink_to(outside)  # a link inside pointing out
    (vm_dir / "inner-link.wav").symlink_to(_wav(vm_dir, "target.wav"))  # a link, even to inside: not followed
    (tmp_path / "spool-out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (vm_dir / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # a directory link out
    named = [
        str(vm_dir / ".." / "elsewhere" / "precious.wav"),  # ../ out of the directory
        str(vm_dir / "link.wav"),
        str(vm_dir / "sub" / "precious.wav"),
        str(tmp_path / "spool-out" / "precious.wav"),
        str(outside),
        str(not_wav),
        str(vm_dir / "inner-link.wav"),
        "spool/relative.wav",
    ]
    ids = [await _voicemail(redis, key, NOW - 60 * DAY + n, path) for n, path in enumerate(named)]
    purge = Purge(
        redis,
        window_s=DAY,
        voicemail_window_s=VM_WINDOW,
        voicemail_dir=vm_dir,
        clock=lambda: NOW,
        voicemails_key=key,
    )
    with caplog.at_level(logging.INFO, logger="bot.retention"):
        done = await purge.voicemails()
    assert (done.entries, done.files, done.refused) == (8, 0, 8)  # a relative path is refused too
    assert outside.read_bytes().startswith(b"RIFF") and not_wav.read_text() == "keep"
    assert (vm_dir / "link.wav").is_symlink() and (vm_dir / "target.wav").exists()
    assert await _ids(redis, key) == set()  # the entries go all the same (the data is past its time)
    assert await redis.exists(*(voicemail_key(i) for i in ids)) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 8 and all(str(tmp_path) not in w for w in warnings)


async def test_a_file_that_cannot_be_deleted_keeps_its_entry_for_the_next_pass(
    vm_redis: tuple[aioredis.Redis, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis, key = vm_redis
    vm_dir = tmp_path / "spool"
    wav = _wav(vm_dir, f"{uuid.uuid4()}.wav")
    entry = await _voicemail(redis, key, NOW - 60 * DAY, str(wav))
    purge = Purge(
        redis,
        window_s=DAY,
        voicemail_window_s=VM_WINDOW,
        voicemail_dir=vm_dir,
        clock=lambda: NOW,
        voicemails_key=key,
    )

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:  # refused as without write permission (the tests may run as root)
        patch.setattr(os, "unlink", refuse)
        done = await purge.voicemails()
    assert (done.failed, done.entries) == (1, 0)
    assert await _ids(redis, key) == {entry} and wav.exists()
    done = await purge.voicemails()
    assert (done.entries, done.files) == (1, 1) and not wav.exists()


@pytest.mark.parametrize("value", ["0", "-5", "0.0", "forever", "nan", "inf", "30"])
def test_a_voicemail_retention_that_is_not_a_positive_window_is_refused_at_start(value: str) -> None:
    with pytest.raises(ConfigError, match="ATTENDANT_VOICEMAIL_RETENTION_S"):
        Config.from_env({"ATTENDANT_VOICEMAIL_RETENTION_S": value})


def test_the_voicemail_retention_setting() -> None:
    assert Config.from_env({}).voicemail_retention_s == 2_592_000  # thirty days
    assert Config.from_env({"ATTENDANT_VOICEMAIL_RETENTION_S": "604800"}).voicemail_retention_s == 604_800
    with pytest.raises(ValueError):
        Purge(None, window_s=DAY, voicemail_window_s=0)

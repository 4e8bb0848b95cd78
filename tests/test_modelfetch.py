"""Tests for ``bot.tools.modelfetch``: a real HTTP server on 127.0.0.1 serves a small fake model archive."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.tools import modelfetch
from bot.tools.modelfetch import ModelCorrupt, ModelFetchError, ModelUnavailable, ensure_model, is_vosk_model

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "vosk-model-test-0.1"
# Incompressible payload so the archive is big enough to be split and streamed in several chunks.
AM_BYTES = random.Random(1234).randbytes(300_000)
CONF_TEXT = "--sample-frequency=16000\n--endpoint.rule2.min-trailing-silence=0.5\n"


def build_zip(entries: dict[str, bytes]) -> bytes:
    """A zip archive (stored, not deflated) holding ``entries``; names ending in '/' are folders."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            if name.endswith("/"):
                zf.writestr(zipfile.ZipInfo(name), b"")
            else:
                zf.writestr(name, data)
    return buf.getvalue()


def model_entries(top: str = MODEL_NAME) -> dict[str, bytes]:
    """A fake Vosk model tree the way upstream zips are laid out: one top-level folder."""
    return {
        f"{top}/": b"",
        f"{top}/am/final.mdl": AM_BYTES,
        f"{top}/conf/model.conf": CONF_TEXT.encode(),
        f"{top}/conf/mfcc.conf": b"--use-energy=false\n",
        f"{top}/graph/HCLr.fst": b"graph-bytes",
        f"{top}/README": b"fake model for tests\n",
    }


MODEL_ZIP = build_zip(model_entries())
MODEL_SHA = hashlib.sha256(MODEL_ZIP).hexdigest()


@dataclass
class Served:
    """What the test server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    cut_after: int | None = None  # send only this many body bytes, then hang up
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(http.server.BaseHTTPRequestHandler):
    served: Served  # set on a per-server subclass

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        served = self.served
        range_header = self.headers.get("Range")
        with served.lock:
            served.requests.append((self.path, range_header))
        data = served.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        status = 200
        if range_header and served.honour_range:
            match = re.fullmatch(r"bytes=(\d+)-", range_header)
            assert match, range_header
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if served.honour_range else "none")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if served.cut_after is not None:
            body = body[: served.cut_after]
            self.close_connection = True
        self.wfile.write(body)
        with served.lock:
            served.bytes_sent += len(body)


@pytest.fixture
def server() -> Iterator[tuple[str, Served]]:
    """An HTTP server on 127.0.0.1 in a thread; yields (base URL, state)."""
    served = Served(files={f"/{MODEL_NAME}.zip": MODEL_ZIP})
    handler = type("Handler", (_Handler,), {"served": served})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback requests must never be sent through a proxy from the environment."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def assert_model_ok(folder: Path, dest: Path) -> None:
    assert folder == (dest / MODEL_NAME).resolve()
    assert is_vosk_model(folder)
    assert (folder / "am" / "final.mdl").read_bytes() == AM_BYTES
    assert (folder / "conf" / "model.conf").read_text() == CONF_TEXT
    assert (folder / "graph" / "HCLr.fst").read_bytes() == b"graph-bytes"
    # Nothing else left behind: no part file, no temp extraction folder.
    assert sorted(p.name for p in dest.iterdir()) == [MODEL_NAME]


def test_full_download_checks_and_extracts(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    dest = tmp_path / "models"
    folder = ensure_model(f"{base}/{MODEL_NAME}.zip", MODEL_SHA, dest, progress=False)
    assert_model_ok(folder, dest)
    assert served.requests == [(f"/{MODEL_NAME}.zip", None)]
    assert served.bytes_sent == len(MODEL_ZIP)


def test_progress_bar_goes_to_stderr(
    server: tuple[str, Served], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = server
    ensure_model(f"{base}/{MODEL_NAME}.zip", MODEL_SHA, tmp_path, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert MODEL_NAME in err  # the tqdm bar is labelled with the model name


def test_resume_sends_range_and_appends(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    dest = tmp_path / "models"
    dest.mkdir()
    half = len(MODEL_ZIP) // 2
    (dest / f"{MODEL_NAME}.zip.part").write_bytes(MODEL_ZIP[:half])

    folder = ensure_model(f"{base}/{MODEL_NAME}.zip", MODEL_SHA, dest, progress=False)

    assert served.requests == [(f"/{MODEL_NAME}.zip", f"bytes={half}-")]
    assert served.bytes_sent == len(MODEL_ZIP) - half  # only the second half travelled
    assert_model_ok(folder, dest)


def test_dropped_connection_keeps_part_and_next_run_resumes(
    server: tuple[str, Served], tmp_path: Path
) -> None:
    base, served = server
    served.cut_after = 100_000
    part = tmp_path / f"{MODEL_NAME}.zip.part"
    with pytest.raises(ModelUnavailable, match="resume"):
        ensure_model(f"{base}/{MODEL_NAME}.zip", MODEL_SHA, tmp_path, progress=False)
    assert part.read_bytes() == MODEL_ZIP[:100_000]
    assert not (tmp_path / MODEL_NAME).exists()

    served.cut_after = None
    folder = ensure_model(f"{base}/{MODEL_NAME}.zip", MODEL_SHA, tmp_path, progress=False)
    assert served.requests[-1] == (f"/{MODEL_NAME}.zip", "bytes=100000-")
    assert served.bytes_sent == len(MODEL_ZIP)  # 100 000 the first time, the rest the second
    assert_model_ok(folder, tmp_path)


def test_resume_of_complete_part_uses_it(server: tuple[str, Served], tmp_path: Path) -> None:
    """A crash after the download but before extraction: the server says 416, the complete part is used."""
    base, served = server
    (tmp_path / f"{MODEL_NAME}.zip.part").write_bytes(MODEL_ZIP)
    folder = ensure_model(f"{base}/{MODEL_NAME}.zip", MODEL_SHA, tmp_path, progress=False)
    assert served.requests == [(f"/{MODEL_NAME}.zip", f"bytes={len(MODEL_ZIP)}-")]
    assert served.bytes_sent == 0
    assert_model_ok(folder, tmp_path)


def test_server_ignoring_range_restarts_cleanly(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    served.honour_range = False
    dest = tmp_path / "models"
    dest.mkdir()
    # Garbage in the part: if it were kept and appended to, the checksum would fail.
    (dest / f"{MODEL_NAME}.zip.part").write_bytes(b"\xff" * 1000)

    folder = ensure_model(f"{base}/{MODEL_NAME}.zip", MODEL_SHA, dest, progress=False)

    assert served.requests == [(f"/{MODEL_NAME}.zip", "bytes=1000-")]  # it asked, the server said 200
    assert served.bytes_sent == len(MODEL_ZIP)
    assert_model_ok(folder, dest)


def test_checksum_mismatch_is_corrupt_and_leaves_nothing(server: tuple[str, Served], tmp_path: Path) -> None:
    base, _ = server
    dest = tmp_path / "models"
    wrong = "0" * 64
    with pytest.raises(ModelCorrupt, match="SHA-256") as info:
        ensure_model(f"{base}/{MODEL_NAME}.zip", wrong, dest, progress=False)
    assert wrong in str(info.value) and MODEL_SHA in str(info.value)
    assert isinstance(info.value, ModelFetchError)
    assert list(dest.iterdir()) == []  # no part file, no model, no temp folder


def test_corrupt_resumed_part_is_deleted(server: tuple[str, Served], tmp_path: Path) -> None:
    """A part with wrong bytes, resumed by a Range-honouring server, fails the check and is removed."""
    base, _ = server
    part = tmp_path / f"{MODEL_NAME}.zip.part"
    part.write_bytes(b"\x00" * 1000)
    with pytest.raises(ModelCorrupt):
        ensure_model(f"{base}/{MODEL_NAME}.zip", MODEL_SHA, tmp_path, progress=False)
    assert not part.exists()
    assert not (tmp_path / MODEL_NAME).exists()
    # And the next run starts afresh and succeeds.
    folder = ensure_model(f"{base}/{MODEL_NAME}.zip", MODEL_SHA, tmp_path, progress=False)
    assert_model_ok(folder, tmp_path)


def test_unreachable_is_unavailable_and_fast(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/{MODEL_NAME}.zip"
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="refused"):
        ensure_model(url, MODEL_SHA, tmp_path, progress=False)
    assert time.monotonic() - started < 5
    assert not (tmp_path / MODEL_NAME).exists()


def test_http_404_is_unavailable(server: tuple[str, Served], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(ModelUnavailable, match="404"):
        ensure_model(f"{base}/missing.zip", MODEL_SHA, tmp_path, progress=False)


def test_timeout_is_unavailable(tmp_path: Path) -> None:
    """A server that accepts but never answers: the short timeout turns it into ModelUnavailable."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/{MODEL_NAME}.zip"
        started = time.monotonic()
        with pytest.raises(ModelUnavailable, match="did not answer in time"):
            ensure_model(url, MODEL_SHA, tmp_path, progress=False, timeout=0.5)
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/evil-abs.txt", f"{MODEL_NAME}/../../evil.txt"])
def test_zip_slip_entry_is_rejected(server: tuple[str, Served], tmp_path: Path, evil: str) -> None:
    base, served = server
    entries = model_entries()
    entries[evil] = b"pwned"
    archive = build_zip(entries)
    served.files[f"/{MODEL_NAME}.zip"] = archive
    dest = tmp_path / "dest" / "models"
    with pytest.raises(ModelCorrupt, match="unsafe entry"):
        ensure_model(f"{base}/{MODEL_NAME}.zip", hashlib.sha256(archive).hexdigest(), dest, progress=False)
    assert not (tmp_path / "dest" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert list(dest.iterdir()) == []  # no model, no part, no temp folder


def test_archive_without_model_is_corrupt(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    archive = build_zip({"something/readme.txt": b"not a model"})
    served.files[f"/{MODEL_NAME}.zip"] = archive
    with pytest.raises(ModelCorrupt, match="does not contain a Vosk model"):
        ensure_model(
            f"{base}/{MODEL_NAME}.zip", hashlib.sha256(archive).hexdigest(), tmp_path, progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_archive_with_files_at_root(server: tuple[str, Served], tmp_path: Path) -> None:
    """Some archives have no top-level folder; the model still lands in <dest>/<name>/."""
    base, served = server
    archive = build_zip(
        {"am/final.mdl": AM_BYTES, "conf/model.conf": CONF_TEXT.encode(), "graph/HCLr.fst": b"graph-bytes"}
    )
    served.files[f"/{MODEL_NAME}.zip"] = archive
    folder = ensure_model(
        f"{base}/{MODEL_NAME}.zip", hashlib.sha256(archive).hexdigest(), tmp_path, progress=False
    )
    assert_model_ok(folder, tmp_path)


def test_not_a_zip_is_corrupt(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    served.files[f"/{MODEL_NAME}.zip"] = b"<html>not a zip</html>"
    with pytest.raises(ModelCorrupt, match="not a readable zip"):
        ensure_model(
            f"{base}/{MODEL_NAME}.zip",
            hashlib.sha256(b"<html>not a zip</html>").hexdigest(),
            tmp_path,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_present_model_makes_no_request(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    conf = tmp_path / MODEL_NAME / "conf"
    conf.mkdir(parents=True)
    (conf / "model.conf").write_text(CONF_TEXT)
    folder = ensure_model(f"{base}/{MODEL_NAME}.zip", MODEL_SHA, tmp_path, progress=False)
    assert folder == (tmp_path / MODEL_NAME).resolve()
    assert served.requests == []


def test_non_model_folder_in_the_way_is_refused(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    (tmp_path / MODEL_NAME).mkdir()
    (tmp_path / MODEL_NAME / "keep.txt").write_text("user data")
    with pytest.raises(ModelFetchError, match="not a Vosk model"):
        ensure_model(f"{base}/{MODEL_NAME}.zip", MODEL_SHA, tmp_path, progress=False)
    assert served.requests == []
    assert (tmp_path / MODEL_NAME / "keep.txt").read_text() == "user data"


def test_bad_checksum_argument_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match="not a SHA-256"):
        ensure_model(f"http://127.0.0.1:1/{MODEL_NAME}.zip", "abc", tmp_path, progress=False)


def test_is_vosk_model(tmp_path: Path) -> None:
    assert not is_vosk_model(tmp_path)
    assert not is_vosk_model(tmp_path / "missing")
    (tmp_path / "a" / "am").mkdir(parents=True)
    (tmp_path / "a" / "am" / "final.mdl").write_bytes(b"x")
    assert is_vosk_model(tmp_path / "a")
    assert is_vosk_model(str(tmp_path / "a"))
    (tmp_path / "b" / "conf").mkdir(parents=True)
    (tmp_path / "b" / "conf" / "model.conf").write_text("x")
    assert is_vosk_model(tmp_path / "b")
    (tmp_path / "c" / "conf" / "model.conf").mkdir(parents=True)  # a folder, not a file
    assert not is_vosk_model(tmp_path / "c")


def test_defaults_point_at_the_official_model() -> None:
    assert (
        modelfetch.DEFAULT_MODEL_URL == "https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip"
    )
    assert modelfetch.model_name_from_url(modelfetch.DEFAULT_MODEL_URL) == "vosk-model-small-en-us-0.15"
    assert re.fullmatch(r"[0-9a-f]{64}", modelfetch.DEFAULT_MODEL_SHA256)
    assert modelfetch.DEFAULT_DEST == REPO_ROOT / "models" / "vosk"


# --- command line ------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(
        [sys.executable, "-m", "bot.tools.modelfetch", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_success_prints_only_the_path(server: tuple[str, Served], tmp_path: Path) -> None:
    base, _ = server
    result = run_cli("--dest", str(tmp_path), "--url", f"{base}/{MODEL_NAME}.zip", "--sha256", MODEL_SHA)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{(tmp_path / MODEL_NAME).resolve()}\n"
    assert_model_ok(tmp_path / MODEL_NAME, tmp_path)
    # Second run: already present, same single line.
    again = run_cli("--dest", str(tmp_path), "--url", f"{base}/{MODEL_NAME}.zip", "--sha256", MODEL_SHA)
    assert again.returncode == 0 and again.stdout == result.stdout


def test_cli_corrupt_exits_2(server: tuple[str, Served], tmp_path: Path) -> None:
    base, _ = server
    result = run_cli("--dest", str(tmp_path), "--url", f"{base}/{MODEL_NAME}.zip", "--sha256", "1" * 64)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "SHA-256" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_unavailable_exits_3_with_advice(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/{MODEL_NAME}.zip"
    started = time.monotonic()
    result = run_cli("--dest", str(tmp_path), "--url", url, "--sha256", MODEL_SHA)
    assert time.monotonic() - started < 30
    assert result.returncode == 3
    assert result.stdout == ""
    err = result.stderr
    assert "could not be downloaded" in err
    assert "refused" in err
    assert "VOSK_MODEL=/path/to/model make run" in err
    assert "python -m bot.tools.modelfetch --local" in err
    assert "speech recognition OFF" in err
    assert "Traceback" not in err


def test_cli_local_valid_and_invalid(tmp_path: Path) -> None:
    model = tmp_path / "mine"
    (model / "conf").mkdir(parents=True)
    (model / "conf" / "model.conf").write_text(CONF_TEXT)
    ok = run_cli("--local", str(model))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == f"{model.resolve()}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # nothing copied

    bad = run_cli("--local", str(tmp_path))
    assert bad.returncode == 3
    assert bad.stdout == ""
    assert "is not a Vosk model" in bad.stderr

    missing = run_cli("--local", str(tmp_path / "nope"))
    assert missing.returncode == 3
    assert "does not exist" in missing.stderr


def test_cli_usage_errors_exit_1(tmp_path: Path) -> None:
    no_sum = run_cli("--dest", str(tmp_path), "--url", f"http://127.0.0.1:1/{MODEL_NAME}.zip")
    assert no_sum.returncode == 1
    assert "--sha256" in no_sum.stderr
    mixed = run_cli("--local", str(tmp_path), "--sha256", MODEL_SHA)
    assert mixed.returncode == 1
    bad_sum = run_cli(
        "--dest", str(tmp_path), "--url", f"http://127.0.0.1:1/{MODEL_NAME}.zip", "--sha256", "xyz"
    )
    assert bad_sum.returncode == 1
    assert "not a SHA-256" in bad_sum.stderr
    assert list(tmp_path.iterdir()) == []

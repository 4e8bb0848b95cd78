"""Fetch the Vosk English speech model, or check one the user already has.

``make run``'s launcher (:mod:`bot.tools.launch`) calls :func:`ensure_model`. On the command line,
``python -m bot.tools.modelfetch`` prints only the model folder's path on stdout when it succeeds, so a
script can capture it; everything for people (progress bar, errors, advice) goes to stderr.

The download is resumable (an interrupted run leaves ``<dest>/<name>.zip.part`` and the next run asks the
server for the rest with a ``Range`` header), checked against a pinned SHA-256, and unpacked safely: every
archive entry must stay inside the destination (no zip slip), extraction happens in a temporary folder
beside the target, and the model folder appears by one atomic rename, so a crash never leaves a
half-extracted model that looks complete.

Exit codes of the command line:

* ``0`` — the model folder is ready; its path is on stdout.
* ``1`` — bad arguments or a local problem (disk full, a non-model folder in the way).
* ``2`` — corrupt: the download failed its SHA-256 check, or the archive is unsafe or unreadable.
  The partial download is deleted, so running again starts afresh.
* ``3`` — unavailable: no network, the server refused, or ``--local`` does not point at a Vosk model.
  Attendant then starts with speech recognition off (keypad and text injection still work).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import http.client
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

from actions.shared.paths import REPO_ROOT

logger = logging.getLogger(__name__)

#: The official small US-English model (Apache-2.0), about 40 MB, 16 kHz.
DEFAULT_MODEL_NAME = "vosk-model-small-en-us-0.15"
DEFAULT_MODEL_URL = f"https://alphacephei.com/vosk/models/{DEFAULT_MODEL_NAME}.zip"
#: SHA-256 of ``vosk-model-small-en-us-0.15.zip`` (41,205,931 bytes). alphacephei does not publish one; this
#: is the value pinned independently by several packagers of this exact archive (a Yocto recipe, an Arch
#: AUR PKGBUILD, a Homebrew-formula resource). If upstream re-publishes the zip, override with ``--sha256``.
DEFAULT_MODEL_SHA256 = "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498"
DEFAULT_DEST = REPO_ROOT / "models" / "vosk"

#: Seconds to wait for the connection and for each read; short, so an offline machine fails fast.
DEFAULT_TIMEOUT = 10.0
CHUNK_SIZE = 64 * 1024
USER_AGENT = "Attendant-modelfetch/1.0 (+python-urllib)"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CORRUPT = 2
EXIT_UNAVAILABLE = 3

_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")


class ModelFetchError(Exception):
    """The model could not be made ready; the message says why in plain words."""


class ModelUnavailable(ModelFetchError):
    """The model cannot be had now: no network, the server said no, or the folder given is not a model."""


class ModelCorrupt(ModelFetchError):
    """The download failed its checksum, or the archive is unreadable or tries to write outside its folder."""


class _Progress(Protocol):
    """The part of a tqdm bar this module uses."""

    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


class _NoProgress:
    """A progress bar that shows nothing (``progress=False``, or tqdm is missing)."""

    def update(self, n: int) -> object:
        return None

    def close(self) -> None:
        return None


def is_vosk_model(path: Path | str) -> bool:
    """Tell whether ``path`` is a folder that looks like an unpacked Vosk model.

    Every Vosk model has ``conf/model.conf`` or (older layouts) ``am/final.mdl``.
    """
    folder = Path(path)
    return folder.is_dir() and (
        (folder / "conf" / "model.conf").is_file() or (folder / "am" / "final.mdl").is_file()
    )


def model_name_from_url(url: str) -> str:
    """Derive the model folder name from an archive URL: ``…/vosk-model-x-1.0.zip`` → ``vosk-model-x-1.0``."""
    base = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    name = base[: -len(".zip")] if base.lower().endswith(".zip") else base
    if not name or name in {".", ".."} or "/" in name or "\\" in name:
        raise ModelFetchError(f"cannot tell the model name from the URL {url!r}; it should end in <name>.zip")
    return name


def ensure_model(
    url: str = DEFAULT_MODEL_URL,
    sha256: str = DEFAULT_MODEL_SHA256,
    dest: Path | str = DEFAULT_DEST,
    *,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Make sure the model from ``url`` is unpacked under ``dest`` and return its folder.

    If ``<dest>/<name>/`` already holds a Vosk model nothing is fetched. Otherwise the archive is
    downloaded (resuming ``<dest>/<name>.zip.part`` if one is there), checked against ``sha256``, unpacked
    safely and moved into place atomically. Concurrent callers on the same ``dest`` wait for each other.
    Only ``http``/``https`` URLs are accepted.

    Raises:
        ModelUnavailable: the server could not be reached or refused; a partial download is kept.
        ModelCorrupt: checksum mismatch or unsafe/unreadable archive; the partial download is deleted.
        ModelFetchError: anything else that stops the model being ready (bad arguments, a folder in the way).
    """
    if not _SHA256_RE.match(sha256):
        raise ModelFetchError(f"{sha256!r} is not a SHA-256 checksum (64 hexadecimal digits)")
    if urllib.parse.urlsplit(url).scheme.lower() not in {"http", "https"}:
        raise ModelFetchError(f"only http and https URLs can be downloaded, not {url!r}")
    name = model_name_from_url(url)
    dest_dir = Path(dest).expanduser().resolve()
    final = dest_dir / name
    if is_vosk_model(final):
        logger.info("Vosk model already present at %s", final)
        return final
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFetchError(f"cannot create the model folder {dest_dir}: {exc.strerror or exc}") from exc

    with _dest_lock(dest_dir):
        if is_vosk_model(final):  # another process finished while we waited for the lock
            return final
        if final.exists():
            raise ModelFetchError(
                f"{final} exists but is not a Vosk model (no conf/model.conf or am/final.mdl); "
                "remove it or choose another --dest"
            )
        part = dest_dir / f"{name}.zip.part"
        _download(url, part, sha256.lower(), name=name, progress=progress, timeout=timeout)
        try:
            _extract(part, final)
        except ModelCorrupt:
            part.unlink(missing_ok=True)
            raise
        part.unlink(missing_ok=True)
    logger.info("Vosk model ready at %s", final)
    return final


@contextmanager
def _dest_lock(dest_dir: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``dest_dir`` (POSIX ``flock`` on the folder; no lock file)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: no locking, single-user use only
        yield
        return
    fd = os.open(dest_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _download(url: str, part: Path, sha256: str, *, name: str, progress: bool, timeout: float) -> None:
    """Download ``url`` into ``part`` (resuming it if present) and check the SHA-256 of the whole file."""
    for _attempt in range(2):  # a second pass only when a resume had to be abandoned
        offset = part.stat().st_size if part.exists() else 0
        hasher = hashlib.sha256()
        if offset:
            _hash_file(part, hasher)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked: http(s) only
        logger.info("downloading %s%s", url, f" from byte {offset}" if offset else "")
        try:
            response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) only
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset:
                # The part may already be complete (a crash after the download, before extraction).
                if hasher.hexdigest() == sha256:
                    return
                logger.warning("server refused to resume %s (HTTP 416); starting again", part.name)
                part.unlink()
                continue
            raise ModelUnavailable(f"the server answered HTTP {exc.code} {exc.reason} for {url}") from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise ModelUnavailable(f"{_describe_network_error(exc)} ({url})") from exc

        with response:
            status = response.status
            if status == 206 and offset:
                start, total = _parse_content_range(response.headers.get("Content-Range"))
                if start != offset:
                    logger.warning(
                        "server resumed %s at byte %s, not %s; starting again", part.name, start, offset
                    )
                    part.unlink()
                    continue
                mode = "ab"
            elif status == 200:
                if offset:
                    logger.info("server does not support resuming; downloading %s from the start", name)
                    hasher = hashlib.sha256()
                offset = 0
                total = _content_length(response)
                mode = "wb"
            else:
                raise ModelUnavailable(f"unexpected HTTP {status} from {url}")
            received = _stream(
                response,
                part,
                mode,
                hasher,
                offset=offset,
                total=total,
                name=name,
                progress=progress,
                url=url,
            )
        if total is not None and received != total:
            raise ModelUnavailable(
                f"the connection ended after {received} of {total} bytes ({url}); run again to resume"
            )
        digest = hasher.hexdigest()
        if digest != sha256:
            part.unlink(missing_ok=True)
            raise ModelCorrupt(
                f"{name}.zip failed its SHA-256 check: expected {sha256}, got {digest}. "
                "The download was deleted; run again to retry, or pass --sha256 if upstream changed the file."
            )
        return
    raise ModelUnavailable(f"the server at {url} could not resume the download consistently")


def _stream(
    response: http.client.HTTPResponse,
    part: Path,
    mode: str,
    hasher: hashlib._Hash,
    *,
    offset: int,
    total: int | None,
    name: str,
    progress: bool,
    url: str,
) -> int:
    """Copy the response body into ``part`` (mode ``ab``/``wb``), feeding ``hasher``; return the file size."""
    bar = _progress_bar(total, offset, name) if progress else _NoProgress()
    received = offset
    try:
        with open(part, mode) as out:
            while True:
                try:
                    chunk = response.read(CHUNK_SIZE)
                except (OSError, http.client.HTTPException) as exc:
                    raise ModelUnavailable(
                        f"{_describe_network_error(exc)} after {received} bytes ({url}); run again to resume"
                    ) from exc
                if not chunk:
                    break
                out.write(chunk)
                hasher.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    finally:
        bar.close()
    return received


def _progress_bar(total: int | None, initial: int, name: str) -> _Progress:
    """A tqdm byte counter on stderr, or a silent one if tqdm is not installed."""
    try:
        from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]
    except ImportError:  # pragma: no cover - tqdm is a dependency; degrade rather than fail
        return _NoProgress()
    bar: _Progress = tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=name,
        file=sys.stderr,
        mininterval=0.5,
        leave=False,
    )
    return bar


def _hash_file(path: Path, hasher: hashlib._Hash) -> None:
    """Feed the whole content of ``path`` into ``hasher``."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            hasher.update(block)


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The body length the server announced, if any."""
    raw = response.headers.get("Content-Length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _parse_content_range(value: str | None) -> tuple[int, int | None]:
    """Parse ``Content-Range: bytes START-END/TOTAL``; return ``(START, TOTAL or None)``."""
    match = _CONTENT_RANGE_RE.match((value or "").strip())
    if not match:
        raise ModelUnavailable(f"the server answered 206 with a malformed Content-Range {value!r}")
    total = match.group(3)
    return int(match.group(1)), (None if total == "*" else int(total))


def _describe_network_error(exc: BaseException) -> str:
    """Say in plain words why a network operation failed."""
    reason: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return "the server did not answer in time"
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(reason, OSError) and reason.errno in {errno.ENETUNREACH, errno.EHOSTUNREACH}:
        return "the network is unreachable"
    text = str(getattr(reason, "strerror", None) or reason) or type(reason).__name__
    if "name or service not known" in text.lower() or "name resolution" in text.lower():
        return f"the server's name could not be resolved ({text})"
    return text


def _safe_member_path(member: str) -> PurePosixPath:
    """Check one archive entry name; reject absolute paths, drive letters and ``..`` (zip slip)."""
    normalised = member.replace("\\", "/")
    path = PurePosixPath(normalised)
    if (
        not normalised
        or normalised.startswith("/")
        or re.match(r"^[A-Za-z]:", normalised)
        or any(part == ".." for part in path.parts)
        or "\x00" in normalised
    ):
        raise ModelCorrupt(
            f"the archive has an unsafe entry {member!r} (it would land outside the model folder)"
        )
    return path


def _extract(archive: Path, final: Path) -> None:
    """Unpack ``archive`` next to ``final`` and rename the model folder into place in one step."""
    parent = final.parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.extract-", dir=parent))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                root = tmp.resolve()
                for info in members:  # check everything before writing anything
                    rel = _safe_member_path(info.filename)
                    target = (root / rel).resolve()
                    if target != root and root not in target.parents:
                        raise ModelCorrupt(f"the archive has an unsafe entry {info.filename!r}")
                for info in members:
                    _extract_member(zf, info, root)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise ModelCorrupt(f"{archive.name} is not a readable zip archive: {exc}") from exc

        model_root = _find_model_root(tmp)
        if model_root is None:
            raise ModelCorrupt(
                f"{archive.name} does not contain a Vosk model (no conf/model.conf or am/final.mdl)"
            )
        try:
            os.rename(model_root, final)
        except OSError as exc:
            if is_vosk_model(final):
                logger.info("another process installed %s first", final)
                return
            raise ModelFetchError(f"cannot move the model into {final}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    """Write one checked entry under ``root`` (directories and regular files only; no links, no modes)."""
    target = root / _safe_member_path(info.filename)
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, open(target, "wb") as dst:
        _copy(src, dst)


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    """Copy a stream in blocks."""
    shutil.copyfileobj(src, dst, CHUNK_SIZE)


def _find_model_root(tmp: Path) -> Path | None:
    """The model folder inside an extracted archive: the archive's root or its single top-level folder."""
    if is_vosk_model(tmp):
        # Files at the archive root: move the whole temp folder into place.
        return tmp
    children = [child for child in tmp.iterdir() if not child.name.startswith("__MACOSX")]
    if len(children) == 1 and is_vosk_model(children[0]):
        return children[0]
    return None


def _advice_footer() -> str:
    return (
        "  To use a Vosk model you already have, point at its folder:\n"
        "      VOSK_MODEL=/path/to/model make run\n"
        "  or check that a folder is usable with:\n"
        "      python -m bot.tools.modelfetch --local /path/to/model\n"
        "  Attendant will start with speech recognition OFF; keypad (DTMF) and text injection still "
        "work.\n"
    )


class _ArgumentParser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors; 2 means "corrupt" here, so usage errors exit 1 instead."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="python -m bot.tools.modelfetch",
        description=(
            "Download (resumably, with a SHA-256 check) and unpack the Vosk English model, or validate a "
            "local model folder. On success prints only the model folder's path on stdout."
        ),
        epilog="Exit codes: 0 ready, 1 usage/local error, 2 corrupt download, 3 model unavailable.",
    )
    parser.add_argument(
        "--dest", type=Path, default=None, help=f"folder that holds models (default: {DEFAULT_DEST})"
    )
    parser.add_argument(
        "--url", default=None, help=f"model archive URL (default: {DEFAULT_MODEL_URL}); requires --sha256"
    )
    parser.add_argument(
        "--sha256", default=None, help="expected SHA-256 of the archive (default: the pinned one)"
    )
    parser.add_argument(
        "--local",
        type=Path,
        default=None,
        metavar="DIR",
        help="use an existing model folder: check it and print its path (nothing is copied)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"network timeout in seconds (default: {DEFAULT_TIMEOUT:g})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")

    if args.local is not None:
        if args.url is not None or args.sha256 is not None or args.dest is not None:
            parser.error("--local cannot be combined with --url, --sha256 or --dest")
        local = args.local.expanduser().resolve()
        if not is_vosk_model(local):
            if local.exists():
                why = "is not a Vosk model (no conf/model.conf or am/final.mdl)"
            else:
                why = "does not exist"
            sys.stderr.write(
                f"Attendant: {local} {why}.\n"
                "  A Vosk model folder holds am/, conf/, graph/ (unpack the model's .zip and point at the "
                "folder inside).\n"
                "  Attendant will start with speech recognition OFF; keypad (DTMF) and text injection "
                "still work.\n"
            )
            return EXIT_UNAVAILABLE
        print(local)
        return EXIT_OK

    if args.url is not None and args.sha256 is None:
        parser.error("--url needs --sha256 (a download that cannot be checked is not used)")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    url: str = args.url if args.url is not None else DEFAULT_MODEL_URL
    sha256: str = args.sha256 if args.sha256 is not None else DEFAULT_MODEL_SHA256
    dest: Path = args.dest if args.dest is not None else DEFAULT_DEST

    try:
        folder = ensure_model(url, sha256, dest, progress=not args.quiet, timeout=args.timeout)
    except ModelUnavailable as exc:
        name = _safe_name(url)
        part = Path(dest).expanduser() / f"{name}.zip.part"
        kept = ""
        if part.exists():
            kept = f"  The part downloaded so far is kept in {part}; running again resumes it.\n"
        sys.stderr.write(
            f"Attendant: the Vosk speech model {name} could not be downloaded.\n"
            f"  Why: {exc}\n{kept}{_advice_footer()}"
        )
        return EXIT_UNAVAILABLE
    except ModelCorrupt as exc:
        sys.stderr.write(
            f"Attendant: the Vosk speech model download is corrupt.\n  Why: {exc}\n{_advice_footer()}"
        )
        return EXIT_CORRUPT
    except ModelFetchError as exc:
        sys.stderr.write(f"Attendant: the Vosk speech model could not be set up: {exc}\n")
        return EXIT_ERROR
    except OSError as exc:
        sys.stderr.write(f"Attendant: the Vosk speech model could not be set up: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("\nAttendant: model download interrupted; running again resumes it.\n")
        return 130
    print(folder)
    return EXIT_OK


def _safe_name(url: str) -> str:
    """The model name for messages, never raising."""
    try:
        return model_name_from_url(url)
    except ModelFetchError:
        return "model"


if __name__ == "__main__":
    sys.exit(main())

#   Copyright 2026 - present The PyMC Developers
#
#   Licensed under the Apache License, Version 2.0 (the "License");
#   you may not use this file except in compliance with the License.
#   You may obtain a copy of the License at
#
#       http://www.apache.org/licenses/LICENSE-2.0
#
#   Unless required by applicable law or agreed to in writing, software
#   distributed under the License is distributed on an "AS IS" BASIS,
#   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
#   See the License for the specific language governing permissions and
#   limitations under the License.
"""Finding files through fsspec, naming them safely, and translating read errors.

Paths may be local files, directories, globs or any fsspec URL (``s3://``, ``hf://``,
``http://``...). Everything shown to a user or stored (errors, warnings, shard names,
fingerprints) goes through :func:`redact`, so that no password, token or signed query
string ever leaves the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import zlib

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import fsspec

__all__ = [
    "display_path",
    "file_version",
    "http_status",
    "ignores_range",
    "is_fork_safe",
    "is_hub",
    "is_local",
    "is_own_error",
    "is_transient",
    "pin_revisions",
    "read_error",
    "redact",
    "register_secrets",
    "resolve_files",
    "retry_after",
]

_GLOB_CHARS = ("*", "?", "[")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
# storage_options keys whose values are credentials, e.g. token, password, secret, key.
_SECRET_KEY = re.compile(
    r"token|secret|password|passwd|key|credential|auth|session|signature", re.I
)
# Environment variables that fsspec back ends read credentials from.
_SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_MIN_SECRET_CHARS = 6  # shorter values would redact ordinary words
_secrets: set[str] = set()
# Loggers of the I/O libraries under the sources, which log URLs as given (fsspec's HTTP
# filesystem at DEBUG level): their records are redacted too.
_IO_LOGGERS = (
    "fsspec",
    "fsspec.http",
    "fsspec.spec",
    "fsspec.caching",
    "huggingface_hub",
    "aiohttp.client",
)


class _RedactingFilter(logging.Filter):
    """Rewrites a log record's message with :func:`redact` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_filter = _RedactingFilter()


def register_secrets(storage_options: Mapping | None) -> None:
    """Remember the credential values of ``storage_options`` (and of the usual environment
    variables) so that :func:`redact` blanks them wherever they appear."""
    values = [os.environ.get(name) for name in _SECRET_ENV]

    def collect(options) -> None:
        for key, value in (options or {}).items():
            if isinstance(value, Mapping):
                collect(value)
            elif isinstance(value, str) and _SECRET_KEY.search(str(key)):
                values.append(value)

    collect(storage_options)
    _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_CHARS)
    for name in _IO_LOGGERS:
        if _filter not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_filter)


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" not in netloc and not parts.query:
        return url  # nothing to hide; keep the URL exactly as written
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}:***@{host}" if ":" in user else f"***@{host}"
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """``text`` with URL passwords, query strings and known credentials replaced by ``***``."""
    text = _URL.sub(lambda m: _redact_url(m.group(0)), str(text))
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is the local filesystem."""
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def is_fork_safe(fs: fsspec.AbstractFileSystem) -> bool:
    """fsspec's async filesystems (HTTP, S3, GCS, ...) refuse to run in a forked child."""
    return not getattr(fs, "async_impl", False)


#: Keys of fsspec's file details that change when a file is rewritten in place: local
#: and object-store stamps, HTTP's headers (as fsspec's ``info`` names them), ``memory://``.
_VERSION_KEYS = (
    "ETag",
    "etag",
    "VersionId",
    "version_id",
    "mtime",
    "LastModified",
    "last_modified",
    "Last-Modified",
    "created",
)


def _stamp(details: Any) -> str | None:
    for key in _VERSION_KEYS:
        value = details.get(key) if isinstance(details, Mapping) else None
        if isinstance(value, str | int | float) or hasattr(value, "isoformat"):
            return f"{key}={value}"
    return None


def file_version(
    fs: fsspec.AbstractFileSystem, path: str, fh: Any = None, ask: bool = True
) -> str | None:
    """A stamp of the stored file that changes when it is rewritten in place: the
    modification time of a local file, the ETag or modification time a remote store
    reports; None when there is none.

    A remote file's stamp comes from the open file's details when they hold one (S3, GCS),
    else, with ``ask``, from the filesystem's ``info`` (over HTTP a HEAD request, whose
    ETag and Last-Modified headers the open file does not keep). The Hub needs none: its
    paths are pinned to a commit.
    """
    try:
        if is_local(fs):
            return _stamp(fs.info(path))
        stamp = _stamp(getattr(fh, "details", None))
        if stamp is not None or not ask or is_hub(fs):
            return stamp
    except OSError:
        return None
    try:
        return _stamp(fs.info(path))
    except Exception:  # a store that cannot say reads as one without stamps
        return None


def display_path(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The path as the user would write it (with its protocol when remote), redacted."""
    return redact(path if is_local(fs) else fs.unstrip_protocol(path))


def http_status(error: BaseException) -> int | None:
    """The HTTP status an error carries: aiohttp's ``status``, or a response's ``status_code``
    (requests, httpx, huggingface_hub)."""
    for holder in (error, getattr(error, "response", None)):
        for name in ("status", "status_code"):
            status = getattr(holder, name, None)
            if isinstance(status, int) and not isinstance(status, bool):
                return status
    return None


# Raised by aiohttp (fsspec's HTTP filesystem) for dropped or truncated connections; named
# rather than imported, since aiohttp is optional.
_TRANSIENT_NAMES = {
    "ClientConnectionError",
    "ClientConnectorError",
    "ClientOSError",
    "ClientPayloadError",
    "ContentLengthError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "TransferEncodingError",
}


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _chain_status(error: BaseException) -> tuple[int | None, BaseException]:
    """The first HTTP status in the chain of causes of ``error``, and the error carrying
    it (``error`` itself when there is none).

    An error whose type says "not found" reads as a 404, whatever the status: the Hub
    answers 401 for a private repository asked for without a token, which
    huggingface_hub reads as RepositoryNotFoundError.
    """
    for e in _chain(error):
        status = http_status(e)
        if status is not None:
            return (404 if type(e).__name__.endswith("NotFoundError") else status), e
    return None, error


def is_transient(error: BaseException) -> bool:
    """Whether an error is worth retrying: it says "try again", not "this is wrong".

    An error that says so itself (a ``transient`` attribute) decides. Otherwise an HTTP
    status anywhere in the chain of causes decides: server errors (5xx, 408, 429) are
    transient, any other status is not. fsspec's HTTP filesystem reports any failure to
    open a file as a missing file, with the server's answer as its cause, so a 503 under
    a FileNotFoundError is a moment's failure. Without a status, missing files and
    refused permissions are permanent; dropped or truncated connections and timeouts
    are transient.
    """
    chain = list(_chain(error))
    for e in chain:
        known = getattr(e, "transient", None)
        if isinstance(known, bool):  # decided when the error was translated
            return known
    status, _ = _chain_status(error)
    if status is not None:
        return status >= 500 or status in (408, 429)
    for e in chain:
        if isinstance(
            e, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError
        ):
            return False
        if isinstance(e, ConnectionError | TimeoutError | asyncio.TimeoutError):
            return True
        if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(e).__mro__):
            return True
    return False


def retry_after(error: BaseException) -> float | None:
    """Seconds a server asked to wait (``Retry-After``, in seconds), or None."""
    for e in _chain(error):
        known = getattr(e, "retry_after", None)
        if isinstance(known, int | float) and not isinstance(known, bool):
            return float(known)
        for holder in (e, getattr(e, "response", None)):
            headers = getattr(holder, "headers", None)
            value = headers.get("Retry-After") if isinstance(headers, Mapping) else None
            if value is None:  # the header may be on a cause: fsspec wraps the response's error
                continue
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):  # an HTTP date: not worth parsing here
                return None
    return None


def read_error(err: BaseException, where: str) -> Exception:
    """A read failure as the error a user can act on, naming what failed.

    The message is redacted, and the error keeps only what retrying needs (``status`` and
    whether it is ``transient``): raise it outside the ``except`` block, so that the
    original, which may hold credentials (huggingface_hub keeps the request's headers on
    its errors), is not chained to it.
    """
    # fsspec's HTTP filesystem raises FileNotFoundError for any failed HEAD and GET, the
    # server's answer being its cause: the status says what really happened.
    status, answer = _chain_status(err)
    if (isinstance(err, FileNotFoundError) and status in (None, 404)) or (
        isinstance(err, PermissionError) and status in (None, 401, 403)
    ):
        error = type(err)(redact(f"{where}: {err}"))
    elif status in (401, 403):
        error = PermissionError(
            redact(
                f"{where}: access refused (HTTP {status}); check the credentials in storage_options"
            )
        )
    elif status == 404:
        error = FileNotFoundError(redact(f"{where}: not found (HTTP 404)"))
    elif isinstance(err, EOFError | zlib.error):
        error = OSError(
            redact(
                f"{where} is truncated or its compression is corrupt ({type(err).__name__}: {err})"
            )
        )
    elif ignores_range(err):
        # fsspec's advice (block_size=0, a streaming file) does not fit a reader that seeks.
        error = OSError(
            redact(
                f"reading {where} failed: the HTTP server ignores Range requests (it sends "
                "the whole file), and reading a file in parts needs them; use a server that "
                "supports HTTP Range requests, or download the file first"
            )
        )
    else:
        # A "missing" file whose cause is a server error is described by that error.
        shown = answer if isinstance(err, FileNotFoundError | PermissionError) else err
        error = OSError(redact(f"reading {where} failed: {type(shown).__name__}: {shown}"))
    error.status = status
    error.transient = is_transient(err)
    error.retry_after = retry_after(err)
    return error


def ignores_range(error: BaseException) -> bool:
    """Whether ``error`` is fsspec's HTTP file refusing a read at an offset, because the
    server answered a Range request with the whole file."""
    return isinstance(error, ValueError) and "support range requests" in str(error)


_PACKAGE = __name__.rpartition(".")[0]


def is_own_error(error: BaseException) -> bool:
    """Whether ``error`` was raised by this package (its innermost frame is here), and so
    names its file already, rather than by a library it calls (fsspec, Arrow, numpy)."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "")
    return module == _PACKAGE or module.startswith(f"{_PACKAGE}.")


def is_hub(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is the Hugging Face Hub's filesystem (``hf://``)."""
    return "hf" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def pin_revisions(
    fs: fsspec.AbstractFileSystem, files: list[str]
) -> tuple[list[str], dict[str, str]]:
    """On the Hugging Face Hub, each file's path at the commit its revision names now.

    ``HfFileSystem`` sends the revision's name ("main") with every request, so a branch
    that moves while a fit runs would mix two commits. The commit is resolved once here;
    returns the pinned paths and ``{repository@revision: commit}``.
    """
    if not is_hub(fs):
        return files, {}
    from huggingface_hub import HfApi
    from huggingface_hub.hf_file_system import HfFileSystemResolvedRepositoryPath

    api = HfApi(endpoint=fs.endpoint, token=fs.token)
    commits: dict[tuple[str, str, str], str] = {}
    pinned = []
    for f in files:
        where = fs.resolve_path(f)
        key = (where.repo_type, where.repo_id, where.revision)
        if key not in commits:
            commits[key] = api.repo_info(
                where.repo_id, revision=where.revision, repo_type=where.repo_type
            ).sha
        at_commit = HfFileSystemResolvedRepositoryPath(
            where.repo_type, where.repo_id, commits[key], where.path_in_repo
        )
        pinned.append(at_commit.unresolve())
    prefixes = {"dataset": "datasets/", "space": "spaces/"}  # as hf:// URLs write them
    return pinned, {
        f"{prefixes.get(kind, '')}{repo}@{revision}": sha
        for (kind, repo, revision), sha in commits.items()
    }


def _register_url_secrets(path: str) -> None:
    """A URL's password and query values are credentials (signed URLs): never show them."""
    try:
        parts = urlsplit(path)
    except ValueError:
        return
    values = [parts.password] + [v for _, v in parse_qsl(parts.query)]
    _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_CHARS)


def resolve_files(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    storage_options: dict | None,
    suffixes: tuple[str, ...],
    kind: str,
) -> tuple[fsspec.AbstractFileSystem, list[str], dict[str, str]]:
    """Expand a file, directory, glob, list of those, or fsspec URL into sorted file paths.

    Returns the filesystem, the paths (on the Hugging Face Hub, pinned to the commits their
    revisions name now) and ``{repository@revision: commit}`` for the pinned ones.

    Parameters
    ----------
    path : str, path-like or list of those
    storage_options : dict, optional
        Passed to :func:`fsspec.core.url_to_fs`.
    suffixes : tuple of str
        File endings that a directory is searched for; empty for any file.
    kind : str
        ``"parquet"`` or ``"csv"``, for error messages.
    """
    register_secrets(storage_options)
    if isinstance(path, str | os.PathLike):
        paths = [path]
    elif isinstance(path, Iterable) and not isinstance(path, bytes | bytearray):
        paths = list(path)
    else:
        paths = None
    if paths is None or not all(isinstance(p, str | os.PathLike) for p in paths):
        raise TypeError(
            f"{kind}_source takes a path (str or pathlib.Path), a URL, a glob or a list of "
            f"those, got {redact(repr(path))}"
        )
    if not paths:
        raise ValueError(f"{kind}_source got an empty list of paths")
    fs = None
    files: list[str] = []
    for p in paths:
        p = os.fspath(p)
        _register_url_secrets(p)
        shown = redact(p)
        p_fs, root = fsspec.core.url_to_fs(p, **(storage_options or {}))
        if fs is None:
            fs = p_fs
        elif type(p_fs) is not type(fs):
            raise ValueError(
                f"{kind}_source: all paths must be on one filesystem; {shown!r} is not"
            )
        failure = None
        try:
            files.extend(_expand(fs, root, shown, suffixes, kind))
        except (FileNotFoundError, ValueError) as err:
            if _chain_status(err)[0] in (None, 404):  # ours, or truly missing
                raise
            failure = read_error(err, f"{kind}_source path {shown!r}")  # a 503 or 401
        except Exception as err:  # e.g. an HTTP 403 from a listing: name the path
            failure = read_error(err, f"{kind}_source path {shown!r}")
        if failure is not None:
            raise failure
    failure = None
    try:
        files, commits = pin_revisions(fs, files)
    except Exception as err:
        failure = read_error(err, f"{kind}_source path {redact(os.fspath(paths[0]))!r}")
    if failure is not None:
        raise failure
    return fs, files, commits


def _expand(
    fs: fsspec.AbstractFileSystem, root: str, shown: str, suffixes: tuple[str, ...], kind: str
) -> list[str]:
    """The files that one path stands for."""
    pattern = root
    if {"http", "https"} & set(fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        pattern = urlsplit(root).path  # "?" starts a query (a signed URL), not a glob
    if any(c in pattern for c in _GLOB_CHARS):
        found = sorted(fs.glob(root))
        if not found:
            raise FileNotFoundError(f"{kind}_source: the pattern {shown!r} matches no file")
        # A pattern of directories ("data/year=*") stands for the files in them.
        files = []
        for f in found:
            files.extend(_data_files(fs, f, suffixes) if fs.isdir(f) else [f])
        if not files:
            raise FileNotFoundError(
                f"{kind}_source: the pattern {shown!r} matches only directories, which hold "
                f"no {_kinds(suffixes)} file"
            )
        return files
    if fs.isdir(root):
        found = _data_files(fs, root, suffixes)
        if not found:
            raise FileNotFoundError(
                f"{kind}_source: the directory {shown!r} holds no {_kinds(suffixes)} file"
            )
        return found
    try:  # not fs.exists(), which answers False to a server error as to a missing file
        fs.info(root)
        return [root]
    except FileNotFoundError as err:
        if _chain_status(err)[0] not in (None, 404):
            raise  # fsspec's "not found" for a server that failed otherwise (503, 401)
        # else raised below, unchained: the original may hold the URL's password
    raise FileNotFoundError(f"{kind}_source: no such file or directory: {shown!r}")


def _kinds(suffixes: tuple[str, ...]) -> str:
    """The file endings searched for, in words: ".csv or .tsv (compressed or not)"."""
    plain = [s for s in suffixes if s.count(".") == 1]
    packed = " (compressed or not)" if len(plain) < len(suffixes) else ""
    return (" or ".join(plain) + packed) or "data"


def _data_files(
    fs: fsspec.AbstractFileSystem, directory: str, suffixes: tuple[str, ...]
) -> list[str]:
    """The files under ``directory`` with one of ``suffixes``, sorted. As pyarrow's datasets
    and Spark do, a file or directory whose name starts with "." or "_" is not data: Spark's
    ``_SUCCESS`` and ``_temporary/``, Jupyter's ``.ipynb_checkpoints/``."""
    base = directory.rstrip("/")
    files = []
    for f in fs.find(directory):
        relative = f[len(base) :].lstrip("/") if f.startswith(base) else os.path.basename(f)
        if any(part.startswith((".", "_")) for part in relative.split("/")):
            continue
        if not suffixes or f.lower().endswith(suffixes):
            files.append(f)
    return sorted(files)

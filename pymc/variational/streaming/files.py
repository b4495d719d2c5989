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
"""Finding files through fsspec: paths, directories, globs and URLs to a sorted list of
files, Hub revisions pinned to their commit, and the version stamp of a file.

Paths may be local files, directories, globs or any fsspec URL (``s3://``, ``hf://``,
``http://``...). Every path shown goes through
:func:`~pymc.variational.streaming.redaction.redact`.
"""

from __future__ import annotations

import os

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import fsspec

from pymc.variational.streaming.read_errors import chain_status, read_error
from pymc.variational.streaming.redaction import (
    redact,
    register_secrets,
    register_url_secrets,
)

__all__ = [
    "display_path",
    "file_version",
    "is_fork_safe",
    "is_hub",
    "is_index_page",
    "is_local",
    "pin_revisions",
    "resolve_files",
]

_GLOB_CHARS = ("*", "?", "[")


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is the local filesystem."""
    return "file" in _protocols(fs)


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


def is_hub(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is the Hugging Face Hub's filesystem (``hf://``)."""
    return "hf" in _protocols(fs)


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
        register_url_secrets(p)
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
            if chain_status(err)[0] in (None, 404):  # ours, or truly missing
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
    if _is_http(fs):
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
        if chain_status(err)[0] not in (None, 404):
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
        if f.rstrip("/") == base:  # a page that lists itself: no way down from there
            continue
        relative = f[len(base) :].lstrip("/") if f.startswith(base) else os.path.basename(f)
        if any(part.startswith((".", "_")) for part in relative.split("/")):
            continue
        if not suffixes or f.lower().endswith(suffixes):
            files.append(f)
        elif is_index_page(fs, f):
            files.extend(_data_files(fs, f"{f}/", suffixes))
    return sorted(files)


def is_index_page(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """Whether ``path`` is an HTTP server's index page of a directory. fsspec takes a link
    in a listing for a directory only when it ends with "/", and some servers (aiohttp's)
    link subdirectories without one (``v1.2``, ``2024.01``, ``out.parquet`` too): their
    files would be left out silently. One HEAD request per entry asked about."""
    if not _is_http(fs) or path.lower().endswith((".html", ".htm")):  # a page, not a listing
        return False
    return str(fs.info(path).get("mimetype", "")).startswith("text/html")


def _is_http(fs: fsspec.AbstractFileSystem) -> bool:
    return bool({"http", "https"} & set(_protocols(fs)))


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    """The protocols of ``fs``: fsspec gives one name or a tuple of them."""
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)

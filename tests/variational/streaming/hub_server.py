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
"""A loopback stand-in for the Hugging Face Hub HTTP API, for tests.

Built against huggingface_hub 2.4.0, from reading its client code (hf_file_system.py,
hf_api.py, file_download.py, utils/_http.py); see the endpoint list below.

It answers the requests that ``huggingface_hub.HfFileSystem`` (the ``hf://`` protocol of
fsspec) makes to read files from model, dataset and space repositories, serving them
from a local directory tree. Point the client at it with the ``HF_ENDPOINT`` environment
variable (read when ``huggingface_hub.constants`` is imported) or with
``storage_options={"endpoint": url}``.

Only the standard library is used. Run it as a separate process::

    python hub_server.py --root DIR [--port 0]   # first line of stdout: its URL

or in-process::

    url, hub = start_hub(DIR)      # serves on a background thread
    ...
    hub.stop()

Directory layout
----------------
::

    <root>/<datasets|models|spaces>/<org>/<name>/_repo.json      (optional)
    <root>/<datasets|models|spaces>/<org>/<name>/<revision>/<files...>

Every sub-directory of a repository is a revision: one named by 40 hex digits is a
commit with that sha; any other name is a branch (``%2F`` in the directory name stands
for ``/``), whose head commit is ``_repo.json["heads"][branch]`` or else a sha derived
from the files it holds (so it changes when they do). ``_repo.json`` may also hold::

    {"private": true, "tokens": ["hf_abc"],     # tokens allowed to read a private repo
     "refs": {"v1.0": "<sha or revision dir>"}, # further names: tags, branches
     "heads": {"main": "<40 hex>"}}

Endpoints (what ``HfFileSystem`` of huggingface_hub 2.4.0 calls)
---------------------------------------------------------------
``{t}`` is ``models``, ``datasets`` or ``spaces``; ``{rev}`` is quoted with ``safe=""``.

- ``GET /api/{t}/{org}/{name}``, ``GET /api/{t}/{org}/{name}/revision/{rev}``: repository
  info (``id``, ``sha`` of the resolved commit, ``private``, ``siblings``...).
  ``HfFileSystem.resolve_path`` calls it once per (repo, revision) to check existence.
- ``GET /api/{t}/{org}/{name}/tree/{rev}[/{path}]?recursive=&expand=[&cursor=]``: a JSON
  list of entries; pages of ``page_size`` entries (``expand_page_size`` with
  ``expand=true``), the next one named by a ``Link: <...>; rel="next"`` header.
- ``POST /api/{t}/{org}/{name}/paths-info/{rev}`` (form: ``paths=...&expand=``): entries of
  the paths that exist.
- ``GET|HEAD /[datasets/|spaces/]{org}/{name}/resolve/{rev}/{path}``: the file, with
  ``Range`` (single range) support, ``ETag``, ``X-Repo-Commit``, ``Content-Length``,
  ``Content-Range``, ``Accept-Ranges``, and ``X-Linked-Etag``/``X-Linked-Size`` for files
  stored as if in LFS. No ``X-Xet-*`` header and no ``xetHash`` is ever sent, so the client
  never tries Xet (``hf_xet``) transfers.
- ``GET /api/agent-harnesses``: an empty registry (the client's user-agent code fetches it
  unless ``HF_HUB_DISABLE_TELEMETRY`` is set).

Errors carry the ``X-Error-Code`` header the client maps to exceptions:
``RepoNotFound`` (404, or 401 for a private repository requested without a token),
``RevisionNotFound`` and ``EntryNotFound`` (404). A token that no repository knows gets
401 "Invalid credentials in Authorization header"; a known token without access to the
repository gets 403.

Control endpoints (never counted in the statistics)
---------------------------------------------------
- ``GET /_hub/stats``: requests and body bytes per path, served byte ranges, a log.
- ``POST /_hub/reset``: clear the statistics.
- ``GET /_hub/faults``; ``POST /_hub/faults`` (JSON list: replace the rules);
  ``POST /_hub/faults/add`` (JSON rule or list: append).
- ``POST /_hub/shutdown``.

A fault rule is a dict (see :class:`Fault`), e.g. fail the first two range requests of
one file with 503, or drop the connection halfway through its body once::

    {"path": "*/resolve/*/data/a.parquet", "action": "status", "status": 503, "times": 2}
    {"path": "*/a.parquet", "action": "cut", "cut_fraction": 0.5}

``--faults FILE`` loads rules from a JSON file, re-read whenever it changes.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["Fault", "HubControl", "HubProcess", "duplicate_bytes", "main", "start_hub"]

# Entries per page of a tree listing, as the Hub does (1000, or 50 when expanded).
DEFAULT_PAGE_SIZE = 1000
DEFAULT_EXPAND_PAGE_SIZE = 50
# Files that the Hub would keep in LFS (its default .gitattributes has these, and more):
# the tree gives them an "lfs" block and resolve answers X-Linked-Etag / X-Linked-Size.
LFS_PATTERNS = ("*.parquet", "*.arrow", "*.bin", "*.safetensors", "*.gz", "*.zip", "*.npy")
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
# Prefix of the resolve URLs of each repository type (models have none).
RESOLVE_PREFIXES = {"datasets": "datasets", "spaces": "spaces"}
DEFAULT_BRANCH = "main"
CONTROL_PREFIX = "/_hub/"
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
COPY_CHUNK = 1 << 16
# A fixed date for every commit: nothing in the client depends on it.
COMMIT_DATE = "2026-01-01T00:00:00.000Z"
MAX_LOG = 20_000


class HubError(Exception):
    """An error answer: status, optional X-Error-Code, message."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


# ------------------------------------------------------------------------- repositories


@dataclass
class Repo:
    kind: str  # "datasets", "models" or "spaces"
    repo_id: str  # "org/name"
    path: str  # its directory
    private: bool = False
    tokens: tuple[str, ...] = ()
    refs: dict[str, str] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)


@dataclass
class Revision:
    name: str  # as requested
    directory: str  # the revision's directory
    sha: str  # its commit


def _git_blob_oid(path: str, size: int) -> str:
    """The sha1 git gives the file's content ("blob <size>\\0<bytes>")."""
    h = hashlib.sha1(b"blob %d\0" % size)
    _hash_file(path, h)
    return h.hexdigest()


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    _hash_file(path, h)
    return h.hexdigest()


def _hash_file(path: str, h) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)


class Store:
    """Reads repositories, revisions and file metadata from the directory tree."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self._hashes: dict[tuple, tuple[str, str]] = {}  # (path, size, mtime) -> (oid, sha256)
        self._lock = threading.Lock()

    # --- repositories and revisions
    def repo(self, kind: str, repo_id: str) -> Repo:
        org, _, name = repo_id.partition("/")
        if (
            kind not in REPO_TYPES
            or not org
            or not name
            or "/" in name
            or org.startswith((".", "_"))
            or name.startswith((".", "_"))
        ):
            raise HubError(404, "Repository not found", "RepoNotFound")
        path = os.path.join(self.root, kind, org, name)
        if not os.path.isdir(path):
            raise HubError(404, "Repository not found", "RepoNotFound")
        repo = Repo(kind, repo_id, path)
        meta_path = os.path.join(path, "_repo.json")
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            repo.private = bool(meta.get("private", False))
            repo.tokens = tuple(meta.get("tokens", ()))
            repo.refs = dict(meta.get("refs", {}))
            repo.heads = dict(meta.get("heads", {}))
        return repo

    def known_tokens(self) -> set[str]:
        """Every token some repository grants (to tell "unknown" from "not allowed")."""
        tokens: set[str] = set()
        for kind in REPO_TYPES:
            base = os.path.join(self.root, kind)
            for dirpath, dirnames, filenames in os.walk(base):
                if dirpath.count(os.sep) - base.count(os.sep) >= 2:
                    dirnames[:] = []  # <kind>/<org>/<name>: no deeper
                if "_repo.json" in filenames:
                    try:
                        with open(os.path.join(dirpath, "_repo.json")) as f:
                            tokens.update(json.load(f).get("tokens", ()))
                    except (OSError, ValueError):
                        pass
        return tokens

    def branches(self, repo: Repo) -> dict[str, str]:
        """``{branch name: directory}`` of the revision directories not named by a sha."""
        out = {}
        for d in sorted(os.listdir(repo.path)):
            if (
                os.path.isdir(os.path.join(repo.path, d))
                and not d.startswith((".", "_"))
                and not SHA_RE.match(d)
            ):
                out[unquote(d)] = os.path.join(repo.path, d)
        return out

    def revision(self, repo: Repo, name: str) -> Revision:
        """Resolve a branch, tag (``refs``) or commit sha to a directory and commit sha."""
        branches = self.branches(repo)
        target = name
        for _ in range(8):  # refs may point to refs
            if target in branches:
                return Revision(
                    name,
                    branches[target],
                    repo.heads.get(target) or self.tree_sha(branches[target]),
                )
            if target in repo.refs:
                target = repo.refs[target]
                continue
            break
        if SHA_RE.match(target):
            direct = os.path.join(repo.path, target)
            if os.path.isdir(direct):
                return Revision(name, direct, target)
            for branch, directory in branches.items():
                if (repo.heads.get(branch) or self.tree_sha(directory)) == target:
                    return Revision(name, directory, target)
        raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")

    def tree_sha(self, directory: str) -> str:
        """A commit sha for a branch: derived from the paths and contents it holds."""
        h = hashlib.sha1(b"commit")
        for rel, full in self.walk(directory):
            h.update(rel.encode() + b"\0" + self.hashes(full)[0].encode())
        return h.hexdigest()

    # --- files
    @staticmethod
    def walk(directory: str):
        """``(relative posix path, full path)`` of every file below a directory, sorted."""
        out = []
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames.sort()
            for f in filenames:
                full = os.path.join(dirpath, f)
                out.append((os.path.relpath(full, directory).replace(os.sep, "/"), full))
        return sorted(out)

    def hashes(self, full: str) -> tuple[str, str]:
        """``(git blob oid, sha256)`` of a file, cached while its size and mtime hold."""
        st = os.stat(full)
        key = (full, st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._hashes:
                return self._hashes[key]
        value = (_git_blob_oid(full, st.st_size), _sha256(full))
        with self._lock:
            self._hashes[key] = value
        return value

    @staticmethod
    def is_lfs(rel: str) -> bool:
        return any(fnmatch.fnmatch(rel.rsplit("/", 1)[-1], p) for p in LFS_PATTERNS)

    def entry(self, rev: Revision, rel: str, expand: bool) -> dict:
        """The tree / paths-info entry of a file or folder, as the Hub writes it."""
        full = os.path.join(rev.directory, *rel.split("/"))
        if os.path.isdir(full):
            h = hashlib.sha1(b"tree")
            for sub, sub_full in self.walk(full):
                h.update(sub.encode() + b"\0" + self.hashes(sub_full)[0].encode())
            out = {"type": "directory", "oid": h.hexdigest(), "size": 0, "path": rel}
        else:
            oid, sha256 = self.hashes(full)
            size = os.path.getsize(full)
            out = {"type": "file", "oid": oid, "size": size, "path": rel}
            if self.is_lfs(rel):
                out["lfs"] = {"oid": sha256, "size": size, "pointerSize": 134}
        if expand:
            out["lastCommit"] = {"id": rev.sha, "title": "Upload", "date": COMMIT_DATE}
        return out

    def listing(self, rev: Revision, rel: str, recursive: bool) -> list[str]:
        """Relative paths listed by ``tree/{rev}/{rel}``: folders first, then files."""
        base = os.path.join(rev.directory, *rel.split("/")) if rel else rev.directory
        if not os.path.exists(base) or not _inside(base, rev.directory):
            raise HubError(404, f"Entry not found: {rel}", "EntryNotFound")
        if os.path.isfile(base):  # the Hub lists a file as itself
            return [rel]
        prefix = rel + "/" if rel else ""
        if not recursive:
            names = sorted(os.listdir(base))
            dirs = [prefix + n for n in names if os.path.isdir(os.path.join(base, n))]
            files = [prefix + n for n in names if not os.path.isdir(os.path.join(base, n))]
            return dirs + files
        dirs, files = [], []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            here = os.path.relpath(dirpath, rev.directory).replace(os.sep, "/")
            here = "" if here == "." else here + "/"
            dirs.extend(here + d for d in dirnames)
            files.extend(here + f for f in sorted(filenames))
        return sorted(dirs) + sorted(files)

    def file(self, rev: Revision, rel: str) -> str:
        full = os.path.join(rev.directory, *rel.split("/"))
        if not rel or not os.path.isfile(full) or not _inside(full, rev.directory):
            raise HubError(404, "Entry not found", "EntryNotFound")
        return full


def _inside(path: str, directory: str) -> bool:
    """Whether ``path`` lies in ``directory`` (no escaping the tree with ``..`` or links)."""
    directory = os.path.realpath(directory)
    return os.path.commonpath([os.path.realpath(path), directory]) == directory


# ------------------------------------------------------------------------- faults


@dataclass
class Fault:
    """A failure injected into the requests that match.

    Parameters
    ----------
    path : str
        fnmatch pattern on the decoded request path (no query), e.g. ``"*/data/a.parquet"``.
    method : str, optional
        Only requests of this method (GET, HEAD, POST).
    action : str
        ``"status"``: answer ``status`` (with ``Retry-After: retry_after`` when given, and
        ``X-Error-Code: error_code``); ``"cut"``: send the headers and ``cut_fraction`` of
        the body, then drop the connection; ``"reset"``: drop the connection before any
        answer; ``"pass"``: answer normally (with ``delay``, to slow a request down).
    skip : int
        Matching requests let through before the rule fires.
    times : int or None
        How often it fires; None for every matching request after ``skip``.
    delay : float
        Seconds to wait before acting.
    throttle : int
        With ``"pass"`` or ``"cut"``: send file bodies at about this many bytes per second
        (0: as fast as possible), a slow network on which a reader is always mid-transfer.
    """

    path: str = "*"
    method: str | None = None
    action: str = "status"
    status: int = 503
    retry_after: int | None = None
    error_code: str | None = None
    message: str = "injected fault"
    cut_fraction: float = 0.5
    skip: int = 0
    times: int | None = 1
    delay: float = 0.0
    throttle: int = 0
    # counters
    seen: int = 0
    fired: int = 0

    ACTIONS = ("status", "cut", "reset", "pass")

    @classmethod
    def from_dict(cls, d: dict) -> Fault:
        known = {
            k: v
            for k, v in d.items()
            if k in cls.__dataclass_fields__ and k not in ("seen", "fired")
        }
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault field(s): {sorted(unknown)}")
        fault = cls(**known)
        if fault.action not in cls.ACTIONS:
            raise ValueError(f"fault action must be one of {cls.ACTIONS}, got {fault.action!r}")
        return fault

    def take(self, method: str, path: str) -> bool:
        """Whether this rule fires for the request (counts it). Call under the lock."""
        if self.method and self.method.upper() != method:
            return False
        if not fnmatch.fnmatchcase(path, self.path):
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


# ------------------------------------------------------------------------- statistics


def duplicate_bytes(ranges: list[list[int]]) -> int:
    """Bytes covered more than once by a list of ``[start, end)`` ranges."""
    events = sorted([(a, 1) for a, b in ranges if b > a] + [(b, -1) for a, b in ranges if b > a])
    depth, last, dup = 0, None, 0
    for pos, step in events:
        if last is not None and depth > 1:
            dup += (pos - last) * (depth - 1)
        depth += step
        last = pos
    return dup


class Stats:
    """Requests, body bytes sent and byte ranges served, per decoded path."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.paths: dict[str, dict] = {}
        self.log: list[dict] = []

    def record(self, method, path, query, status, sent, byte_range, auth, fault) -> None:
        with self.lock:
            p = self.paths.setdefault(
                path, {"requests": 0, "bytes": 0, "statuses": {}, "ranges": []}
            )
            p["requests"] += 1
            p["bytes"] += sent
            p["statuses"][str(status)] = p["statuses"].get(str(status), 0) + 1
            if byte_range is not None and sent:
                p["ranges"].append([byte_range[0], byte_range[0] + sent])
            if len(self.log) < MAX_LOG:
                self.log.append(
                    {
                        "method": method,
                        "path": path,
                        "query": query,
                        "status": status,
                        "bytes": sent,
                        "range": list(byte_range) if byte_range else None,
                        "auth": auth,
                        "fault": fault,
                    }
                )

    def snapshot(self) -> dict:
        with self.lock:
            paths = json.loads(json.dumps(self.paths))
            for p in paths.values():
                p["duplicate_bytes"] = duplicate_bytes(p["ranges"])
            return {
                "paths": paths,
                "total_requests": sum(p["requests"] for p in paths.values()),
                "total_bytes": sum(p["bytes"] for p in paths.values()),
                "log": list(self.log),
            }


# ------------------------------------------------------------------------- HTTP


class HubServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address,
        root,
        page_size=DEFAULT_PAGE_SIZE,
        expand_page_size=DEFAULT_EXPAND_PAGE_SIZE,
        faults_file=None,
        verbose=False,
    ):
        super().__init__(address, HubHandler)
        self.store = Store(root)
        self.stats = Stats()
        self.faults: list[Fault] = []
        self.page_size = page_size
        self.expand_page_size = expand_page_size
        self.faults_file = faults_file
        self._faults_mtime = None
        self.verbose = verbose

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    # --- faults
    def set_faults(self, rules: list[dict]) -> None:
        faults = [Fault.from_dict(r) for r in rules]
        with self.stats.lock:
            self.faults = faults

    def add_faults(self, rules: list[dict]) -> None:
        faults = [Fault.from_dict(r) for r in rules]
        with self.stats.lock:
            self.faults.extend(faults)

    def fault_for(self, method: str, path: str) -> Fault | None:
        self._reload_faults_file()
        with self.stats.lock:
            for fault in self.faults:
                if fault.take(method, path):
                    return fault
        return None

    def _reload_faults_file(self) -> None:
        if not self.faults_file:
            return
        try:
            mtime = os.stat(self.faults_file).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._faults_mtime:
            self._faults_mtime = mtime
            rules = []
            if mtime is not None:
                with open(self.faults_file) as f:
                    rules = json.load(f)
            self.set_faults(rules if isinstance(rules, list) else [rules])


class _Dropped(Exception):
    """The connection was dropped on purpose (a fault): nothing more to send."""


class HubHandler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the Hub; every answer has a length
    server_version = "hub-stand-in/1"
    timeout = 60  # idle keep-alive connections end after this

    # --- plumbing
    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write(f"[hub] {self.address_string()} {fmt % args}\n")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        raw_segments = split.path.split("/")[1:]
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        body = (
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if method == "POST"
            else b""
        )
        if split.path.startswith(CONTROL_PREFIX):
            return self._control(method, split.path[len(CONTROL_PREFIX) :], body)
        # State of this request: what the statistics record, and how a fault shapes the body.
        self._sent = 0  # body bytes written
        self._range = None  # [start, end) of the file served
        self._status = None
        self._fault_name = None
        self._cut = None  # fraction of the body sent before dropping the connection
        self._throttle = 0  # bytes per second, 0 for as fast as possible
        try:
            fault = self.server.fault_for(method, path)
            if fault is not None:
                self._fault_name = fault.action
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.action == "reset":
                    self._status = 0
                    self._drop()
                if fault.action == "status":
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = str(fault.retry_after)
                    raise _InjectedStatus(fault, headers)
            self._cut = fault.cut_fraction if fault is not None and fault.action == "cut" else None
            self._throttle = fault.throttle if fault is not None else 0
            self._route(method, raw_segments, query, body)
        except _InjectedStatus as inj:
            f = inj.fault
            self._send_error(HubError(f.status, f.message, f.error_code), inj.headers)
        except HubError as err:
            self._send_error(err)
        except _Dropped:
            pass
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.server.stats.record(
                method,
                path,
                split.query,
                self._status,
                self._sent,
                self._range,
                "Authorization" in self.headers,
                self._fault_name,
            )

    def _drop(self):
        """Drop the connection now, without finishing the answer."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Dropped

    def _send(self, status: int, headers: dict, body: bytes = b"", head: bool = False) -> None:
        self._status = status
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(body)))  # (send_response adds Date, Server)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head and body:
            if self._cut is not None:  # a "cut" fault: part of the body, then drop
                self._write(body[: int(len(body) * self._cut)])
                self._drop()
            self._write(body)

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self._sent += len(data)

    def _send_json(
        self, obj, status: int = 200, headers: dict | None = None, head: bool = False
    ) -> None:
        body = json.dumps(obj).encode()
        self._send(
            status,
            {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
            body,
            head,
        )

    def _send_error(self, err: HubError, headers: dict | None = None) -> None:
        headers = dict(headers or {})
        if err.code:
            headers["X-Error-Code"] = err.code
        headers["X-Error-Message"] = err.message
        self._send_json({"error": err.message}, err.status, headers, head=self.command == "HEAD")

    # --- authorization
    def _check_access(self, repo: Repo) -> None:
        """Public repositories are open; private ones need a Bearer token they list."""
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        if not repo.private:
            return
        if token is None:
            # What the Hub answers: 401, and the client reads RepoNotFound.
            raise HubError(401, "Invalid username or password.", "RepoNotFound")
        if token in repo.tokens:
            return
        if token not in self.server.store.known_tokens():
            raise HubError(401, "Invalid credentials in Authorization header")
        raise HubError(403, "Your token has no access to this repository")

    def _repo_and_revision(
        self, kind: str, repo_id: str, revision: str | None
    ) -> tuple[Repo, Revision]:
        repo = self.server.store.repo(kind, repo_id)
        self._check_access(repo)
        return repo, self.server.store.revision(repo, revision or DEFAULT_BRANCH)

    # --- routes
    def _route(self, method: str, segs: list[str], query: dict, body: bytes) -> None:
        head = method == "HEAD"
        if segs[:2] == ["api", "agent-harnesses"] and len(segs) == 2:
            return self._send_json({"standardEnvVars": [], "harnesses": {}}, head=head)
        if len(segs) >= 4 and segs[0] == "api" and segs[1] in REPO_TYPES:
            kind, repo_id, rest = segs[1], unquote(segs[2]) + "/" + unquote(segs[3]), segs[4:]
            if not rest and method in ("GET", "HEAD"):
                return self._repo_info(kind, repo_id, None, head)
            if len(rest) == 2 and rest[0] == "revision" and method in ("GET", "HEAD"):
                return self._repo_info(kind, repo_id, unquote(rest[1]), head)
            if len(rest) >= 2 and rest[0] == "tree" and method in ("GET", "HEAD"):
                path_in_repo = "/".join(unquote(s) for s in rest[2:]).strip("/")
                return self._tree(kind, repo_id, unquote(rest[1]), path_in_repo, query, head)
            if len(rest) == 2 and rest[0] == "paths-info" and method == "POST":
                return self._paths_info(kind, repo_id, unquote(rest[1]), body)
            raise HubError(404, "Not found")
        # /[datasets/|spaces/]{org}/{name}/resolve/{rev}/{path}
        kind, s = "models", segs
        if s and s[0] in RESOLVE_PREFIXES:
            kind, s = s[0], s[1:]
        if len(s) >= 5 and s[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = unquote(s[0]) + "/" + unquote(s[1])
            return self._resolve(
                kind, repo_id, unquote(s[3]), "/".join(unquote(x) for x in s[4:]), head
            )
        raise HubError(404, "Not found")

    def _repo_info(self, kind: str, repo_id: str, revision: str | None, head: bool) -> None:
        repo, rev = self._repo_and_revision(kind, repo_id, revision)
        siblings = [{"rfilename": rel} for rel, _ in self.server.store.walk(rev.directory)]
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": rev.sha,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": COMMIT_DATE,
            "lastModified": COMMIT_DATE,
            "siblings": siblings,
        }
        if kind == "models":
            info["modelId"] = repo_id
        self._send_json(info, head=head)

    def _tree(self, kind, repo_id, revision, path_in_repo, query, head) -> None:
        _, rev = self._repo_and_revision(kind, repo_id, revision)
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        expand = query.get("expand", ["false"])[0].lower() == "true"
        paths = self.server.store.listing(rev, path_in_repo, recursive)
        size = self.server.expand_page_size if expand else self.server.page_size
        start = int(query.get("cursor", ["0"])[0] or 0)
        page = [self.server.store.entry(rev, p, expand) for p in paths[start : start + size]]
        headers = {}
        if start + size < len(paths):
            # The next page: same path and query, with the cursor moved on.
            split = urlsplit(self.path)
            q = {k: v[0] for k, v in query.items() if k != "cursor"}
            q["cursor"] = str(start + size)
            next_url = f"{self.server.url}{split.path}?" + "&".join(
                f"{k}={quote(v)}" for k, v in q.items()
            )
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._send_json(page, headers=headers, head=head)

    def _paths_info(self, kind, repo_id, revision, body: bytes) -> None:
        _, rev = self._repo_and_revision(kind, repo_id, revision)
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            form = json.loads(body or b"{}")
            paths, expand = form.get("paths", []), bool(form.get("expand", False))
        else:
            form = parse_qs(body.decode(), keep_blank_values=True)
            paths, expand = (
                form.get("paths", []),
                form.get("expand", ["false"])[0].lower() == "true",
            )
        out = []
        for p in paths:
            p = p.strip("/")
            full = os.path.join(rev.directory, *p.split("/"))
            if p and os.path.exists(full) and _inside(full, rev.directory):
                out.append(self.server.store.entry(rev, p, expand))
        self._send_json(out)

    def _resolve(self, kind, repo_id, revision, path_in_repo, head) -> None:
        _, rev = self._repo_and_revision(kind, repo_id, revision)
        store = self.server.store
        full = store.file(rev, path_in_repo)
        size = os.path.getsize(full)
        oid, sha256 = store.hashes(full)
        etag = sha256 if store.is_lfs(path_in_repo) else oid
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{etag}"',
            "X-Repo-Commit": rev.sha,
            "Content-Disposition": f'inline; filename="{path_in_repo.rsplit("/", 1)[-1]}"',
        }
        if store.is_lfs(path_in_repo):
            headers["X-Linked-Etag"] = f'"{sha256}"'
            headers["X-Linked-Size"] = str(size)
        start, end, status = 0, size, 200
        range_header = self.headers.get("Range")
        if range_header:
            parsed = _parse_range(range_header, size)
            if parsed is None:
                headers["Content-Range"] = f"bytes */{size}"
                return self._send_error_with(416, "Range Not Satisfiable", headers)
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        self._status = status
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        self._range = (start, end)
        # A "cut" fault sends only part of the body, then drops the connection.
        stop = end if self._cut is None else start + int((end - start) * self._cut)
        # A throttled body goes out in chunks of about 20 ms worth of bytes.
        chunk_size = (
            COPY_CHUNK if not self._throttle else max(1, min(COPY_CHUNK, self._throttle // 50))
        )
        with open(full, "rb") as f:
            f.seek(start)
            pos = start
            while pos < stop:
                chunk = f.read(min(chunk_size, stop - pos))
                if not chunk:
                    break
                self._write(chunk)
                self.wfile.flush()
                pos += len(chunk)
                if self._throttle:
                    time.sleep(len(chunk) / self._throttle)
        if self._cut is not None:
            self._drop()

    def _send_error_with(self, status: int, message: str, headers: dict) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(
            status,
            {"Content-Type": "application/json", **headers},
            body,
            head=self.command == "HEAD",
        )

    # --- control
    def _control(self, method: str, what: str, body: bytes) -> None:
        self._sent, self._cut = 0, None
        server = self.server
        try:
            if what == "stats" and method == "GET":
                return self._send_json(server.stats.snapshot())
            if what == "reset" and method == "POST":
                with server.stats.lock:
                    server.stats.reset()
                return self._send_json({"ok": True})
            if what == "faults" and method == "GET":
                with server.stats.lock:
                    return self._send_json([asdict(f) for f in server.faults])
            if what in ("faults", "faults/add") and method == "POST":
                rules = json.loads(body or b"[]")
                rules = rules if isinstance(rules, list) else [rules]
                (server.set_faults if what == "faults" else server.add_faults)(rules)
                return self._send_json({"ok": True, "rules": len(server.faults)})
            if what == "shutdown" and method == "POST":
                self._send_json({"ok": True})
                threading.Thread(target=server.shutdown, daemon=True).start()
                return
            raise HubError(404, f"no control endpoint {method} {what}")
        except (ValueError, TypeError) as err:
            self._send_error(HubError(400, str(err)))
        except HubError as err:
            self._send_error(err)


class _InjectedStatus(Exception):
    def __init__(self, fault: Fault, headers: dict):
        self.fault, self.headers = fault, headers


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``bytes=a-b`` / ``a-`` / ``-n`` range; None if unsatisfiable."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value, re.IGNORECASE)
    if not m or (not m[1] and not m[2]):
        return None
    if not m[1]:  # the last n bytes
        n = int(m[2])
        return (max(size - n, 0), size) if n > 0 and size > 0 else None
    start = int(m[1])
    end = min(int(m[2]) + 1, size) if m[2] else size
    if start >= size or end <= start:
        return None
    return start, end


# ------------------------------------------------------------------------- in-process use


class HubControl:
    """Control of a hub served on a thread of this process (see :func:`start_hub`)."""

    def __init__(self, server: HubServer, thread: threading.Thread):
        self.server, self.thread = server, thread
        self.url = server.url

    def stats(self) -> dict:
        return self.server.stats.snapshot()

    def reset_stats(self) -> None:
        with self.server.stats.lock:
            self.server.stats.reset()

    def set_faults(self, *rules: dict) -> None:
        self.server.set_faults(list(rules))

    def add_fault(self, **rule) -> None:
        self.server.add_faults([rule])

    def clear_faults(self) -> None:
        self.server.set_faults([])

    def faults(self) -> list[dict]:
        with self.server.stats.lock:
            return [asdict(f) for f in self.server.faults]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> HubControl:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_hub(
    root: str, host: str = "127.0.0.1", port: int = 0, **options
) -> tuple[str, HubControl]:
    """Serve ``root`` on a background thread; return its URL and a :class:`HubControl`.

    ``options``: ``page_size``, ``expand_page_size``, ``faults_file``, ``verbose``.
    """
    server = HubServer((host, port), root, **options)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="hub-server", daemon=True
    )
    thread.start()
    return server.url, HubControl(server, thread)


# ------------------------------------------------------------------------- as a process


class HubProcess:
    """A hub in a child process (as the real Hub is remote), controlled over HTTP.

    Example::

        with HubProcess(root) as hub:
            env = {**os.environ, "HF_ENDPOINT": hub.url}
            ...
            assert hub.stats()["total_requests"] > 0
    """

    def __init__(
        self, root: str, *args: str, python: str = sys.executable, startup_timeout: float = 30
    ):
        cmd = [python, os.path.abspath(__file__), "--root", root, "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + startup_timeout
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://") or time.monotonic() > deadline:
            self.proc.kill()
            raise RuntimeError(f"hub_server did not start (first line: {line!r})")
        self.url = line

    def _call(self, method: str, what: str, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            self.url + CONTROL_PREFIX + what,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stats(self) -> dict:
        return self._call("GET", "stats")

    def reset_stats(self) -> None:
        self._call("POST", "reset", {})

    def set_faults(self, *rules: dict) -> None:
        self._call("POST", "faults", list(rules))

    def add_fault(self, **rule) -> None:
        self._call("POST", "faults/add", rule)

    def clear_faults(self) -> None:
        self._call("POST", "faults", [])

    def faults(self) -> list[dict]:
        return self._call("GET", "faults")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self) -> HubProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", required=True, help="directory of <type>/<org>/<name>/<revision>/ trees"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--expand-page-size", type=int, default=DEFAULT_EXPAND_PAGE_SIZE)
    parser.add_argument("--faults", help="JSON file of fault rules, re-read when it changes")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = HubServer(
        (args.host, args.port),
        args.root,
        page_size=args.page_size,
        expand_page_size=args.expand_page_size,
        faults_file=args.faults,
        verbose=args.verbose,
    )

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(server.url, flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

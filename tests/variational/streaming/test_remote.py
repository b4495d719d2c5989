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
"""Remote reads for real: an HTTP server on 127.0.0.1 that injects faults, and memory://."""

import asyncio
import functools
import gzip
import logging
import socket
import threading
import time
import uuid

from collections import Counter
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pymc.variational.streaming import DataLoader, RetryPolicy, csv_source, parquet_source
from pymc.variational.streaming.retry import is_transient

pytest.importorskip("aiohttp")


class FaultyFiles(BaseHTTPRequestHandler):
    """Serves ``server.files`` with Range support; ``server.faults`` says what goes wrong.

    Faults, per path: ``"503-first"`` answers the first data request 503; ``"cut"`` sends
    half the body of the first request that reads data (not the footer) and drops the
    connection; ``"429-for-1s"`` answers every data request 429 with ``Retry-After: 1``
    for a second from the first one; ``"503-second"`` answers the second GET of the path,
    whatever it reads, 503, and ``"503-from-third"`` every GET from the third on;
    ``"503-next-2"`` answers the next two requests, HEAD or GET, 503 (a blip while a
    file is opened again, when set after the source is built); ``"no-range"`` ignores
    the Range header and sends the whole file, as a plain server does;
    ``"503-always"``, ``"401"``, ``"403"`` and missing files speak for
    themselves. A query string (a signed URL's) is ignored.
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body: bool):
        server = self.server
        path = self.path.split("?")[0]
        with server.lock:
            server.requests[(self.command, path)] += 1
            count = server.requests[("GET", path)]
        fault = server.faults.get(path)
        data = server.files.get(path)
        if data is None:
            return self.status_only(404)
        if fault in ("401", "403"):
            return self.status_only(int(fault))
        if fault == "503-next-2":
            with server.lock:
                server.blips[path] += 1
                blip = server.blips[path] <= 2
            if blip:
                return self.status_only(503)
        start, end = 0, len(data) - 1
        ranged = "Range" in self.headers and fault != "no-range"
        if ranged:
            first, last = self.headers["Range"].split("=")[1].split("-")
            start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
        chunk = data[start : end + 1]
        if body and fault == "503-always":
            return self.status_only(503)
        if body and fault == "503-first" and count == 1:
            return self.status_only(503)
        if body and fault == "503-second" and count == 2:
            return self.status_only(503)
        if body and fault == "503-from-third" and count >= 3:
            return self.status_only(503)
        if body and fault == "429-for-1s":
            first = server.first_seen.setdefault(path, time.monotonic())
            if time.monotonic() - first < 1.0:
                return self.status_only(429, {"Retry-After": "1"})
        reads_data = start < len(data) - 8192  # not the footer at the end of the file
        if body and fault == "cut" and reads_data and not server.cut_done.get(path):
            server.cut_done[path] = True
            self.send_response(206 if ranged else 200)
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.write(chunk[: len(chunk) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_response(206 if ranged else 200)
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(chunk)))
        if fault != "no-range":
            self.send_header("Accept-Ranges", "bytes")
        for name, value in server.stamps.get(path, {}).items():  # ETag, Last-Modified
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(chunk)

    def status_only(self, code: int, headers=None):
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FaultyFiles)
    httpd.files, httpd.faults, httpd.cut_done, httpd.first_seen = {}, {}, {}, {}
    httpd.stamps = {}
    httpd.requests, httpd.blips = Counter(), Counter()
    httpd.lock = threading.Lock()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def parquet_bytes(ids: np.ndarray) -> bytes:
    """Rows whose first column is a unique id; several row groups of plain floats."""
    table = pa.table({"id": ids.astype(np.float64), "x": np.sin(ids).astype(np.float64)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=2500, use_dictionary=False, compression="none")
    return sink.getvalue().to_pybytes()


def serve_parts(server, n_files=3, rows=10_000, faults=()):
    urls = []
    for k in range(n_files):
        path = f"/part-{k}.parquet"
        server.files[path] = parquet_bytes(np.arange(k * rows, (k + 1) * rows))
        if k < len(faults) and faults[k]:
            server.faults[path] = faults[k]
        urls.append(server.url + path)
    return urls, n_files * rows


FAST_RETRY = RetryPolicy(tries=5, wait=0.01)


def assert_every_row_once(batches, n):
    rows = np.concatenate(batches)
    ids = rows[:, 0].astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(n))
    np.testing.assert_array_equal(rows[:, 1], np.sin(ids.astype(np.float64)))


def test_faulty_server_epoch_has_every_row_once(server):
    urls, n = serve_parts(server, faults=("503-first", "cut", None))
    loader = DataLoader(parquet_source(urls, retry=FAST_RETRY), batch_size=1000, seed=0)
    assert len(loader) == n
    assert_every_row_once(list(loader.iter_epoch(0)), n)
    # The faults did happen, and were retried: a 503 and a cut-off body.
    assert server.requests[("GET", "/part-0.parquet")] >= 2
    assert server.cut_done.get("/part-1.parquet")


def test_faulty_server_endless_iteration(server):
    urls, n = serve_parts(server, faults=("cut", "503-first", "cut"))
    loader = DataLoader(parquet_source(urls, retry=FAST_RETRY), batch_size=1000, seed=1)
    with loader.iterate() as it:
        batches = [next(it) for _ in range(n // 1000)]
    assert_every_row_once(batches, n)


def test_async_filesystems_stay_in_this_process(server):
    # fsspec's HTTP filesystem refuses to run in a forked child ("not fork-safe"): the
    # Trainer then produces on a thread, and asking for a worker process is an error.
    urls, _ = serve_parts(server, n_files=1)
    source = parquet_source(urls)
    assert source.fork_safe is False
    assert DataLoader(source, batch_size=100).trainer_workers == 0
    with pytest.raises(
        ValueError, match="ParquetSource cannot be read from a forked worker process; use workers=0"
    ):
        DataLoader(source, batch_size=100, workers=1)


def test_missing_url_fails_fast_naming_it(server):
    urls, _ = serve_parts(server, n_files=1)
    missing = server.url + "/nope.parquet"
    t = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet"):
        parquet_source([urls[0], missing], retry=RetryPolicy(tries=5, wait=1.0))
    assert time.perf_counter() - t < 1.0  # no retry of a 404


def test_forbidden_url_fails_fast_naming_it(server):
    urls, _ = serve_parts(server, n_files=2, faults=(None, "403"))
    t = time.perf_counter()
    with pytest.raises(PermissionError, match=r"part-1.parquet.*access refused \(HTTP 403\)"):
        list(
            DataLoader(
                parquet_source(urls, retry=RetryPolicy(tries=5, wait=1.0)), batch_size=100
            ).iter_epoch(0)
        )
    assert time.perf_counter() - t < 1.0


def test_retries_are_bounded(server, caplog):
    urls, _ = serve_parts(server, n_files=1)
    source = parquet_source(urls, retry=RetryPolicy(tries=3, wait=0.01))  # footers are read now
    server.faults["/part-0.parquet"] = "503-always"
    with caplog.at_level(logging.WARNING, logger="pymc"):
        with pytest.raises(OSError, match=r"part-0\.parquet"):
            list(DataLoader(source, batch_size=1000).iter_epoch(0))
    # Three tries in all: the first and exactly two retries, each announced once.
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2, retries
    assert "retry 1 of 2" in retries[0] and "retry 2 of 2" in retries[1]
    assert all("part-0.parquet (row group " in r and "503" in r for r in retries)


def test_a_server_asking_to_wait_is_waited_for(server):
    # 429 with Retry-After: 1 for a second. Backing off by 0.01 s, 0.02 s, ... would give
    # up after 0.07 s; the waits follow the header instead.
    urls, n = serve_parts(server, n_files=1, faults=("429-for-1s",))
    source = parquet_source(urls, retry=RetryPolicy(tries=4, wait=0.01))
    assert_every_row_once(list(DataLoader(source, batch_size=1000).iter_epoch(0)), n)
    assert server.requests[("GET", "/part-0.parquet")] >= 2


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_server_error_while_a_file_is_opened_again_is_retried(server, kind):
    # Each shard opens its file again, and fsspec reports a failed HEAD and GET there as
    # a missing file, with the 503 as its cause: still a moment's failure.
    ids = np.arange(10_000)
    path = f"/blip.{kind}"
    if kind == "parquet":
        server.files[path] = parquet_bytes(ids)
        build = parquet_source
    else:
        text = "id,x\n" + "".join(f"{i},{float(np.sin(i))!r}\n" for i in ids)
        server.files[path] = text.encode()
        build = csv_source
    loader = DataLoader(build(server.url + path, retry=FAST_RETRY), batch_size=1000, cache=None)
    server.faults[path] = "503-next-2"
    assert_every_row_once(list(loader.iter_epoch(0)), len(ids))
    assert server.blips[path] > 2  # both 503s were answered, and the file read after them


def test_access_refused_while_a_file_is_opened_again_names_it(server):
    urls, _ = serve_parts(server, n_files=2)
    loader = DataLoader(parquet_source(urls, retry=RetryPolicy(tries=5, wait=1.0)), batch_size=100)
    server.faults["/part-1.parquet"] = "401"
    t = time.perf_counter()
    with pytest.raises(PermissionError, match=r"part-1\.parquet.*access refused \(HTTP 401\)"):
        list(loader.iter_epoch(0))
    assert time.perf_counter() - t < 1.0  # not retried


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_server_without_range_requests_is_named(server, kind):
    # fsspec reads a file's start from a plain answer, then refuses a read at an offset
    # with a ValueError naming no file, and advice (block_size=0) that does not apply.
    path = f"/whole.{kind}"
    if kind == "parquet":
        # Under 64 kB, whose footer pyarrow reads from the start: the source is built,
        # and reading a row group, at its offset, fails.
        server.files[path] = parquet_bytes(np.arange(3000))
        assert len(server.files[path]) < 64 << 10
        build, failing = parquet_source, r"whole\.parquet \(row group \d\)"
    else:
        # 13 MB: past fsspec's first read (4 MB, and 5 MB ahead) while the rows are counted
        text = "id,x\n" + "".join(f"{i},{i / 7!r}\n" for i in range(550_000))
        server.files[path] = text.encode()
        build, failing = csv_source, r"whole\.csv'"
    server.faults[path] = "no-range"
    with pytest.raises(
        OSError, match=rf"{failing} failed: the HTTP server ignores Range requests.*download"
    ) as info:
        source = build(server.url + path)
        list(DataLoader(source, batch_size=1000, shuffle=False, cache=None).iter_epoch(0))
    assert "block_size" not in str(info.value)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_server_error_while_building_the_source_is_retried(server, kind):
    # The second GET is whichever read the source makes while it is built (existence,
    # footer, header or row count): a 503 there is a moment's failure, not a missing file.
    path = f"/d.{kind}"
    ids = np.arange(3000)
    if kind == "parquet":
        server.files[path] = parquet_bytes(ids)
    else:
        text = "id,x\n" + "".join(f"{i},{float(np.sin(i))!r}\n" for i in ids)
        server.files[path] = text.encode()
    server.faults[path] = "503-second"
    build = parquet_source if kind == "parquet" else csv_source
    source = build(server.url + path, retry=FAST_RETRY)
    assert_every_row_once(list(DataLoader(source, batch_size=1000).iter_epoch(0)), 3000)
    assert server.requests[("GET", path)] >= 3


@pytest.mark.parametrize("kind", ["csv", "parquet-categorical"])
def test_errors_while_building_a_source_name_the_file_and_keep_secrets(server, kind):
    text = "g,x\n" + "".join(f"{'ab'[i % 2]},{i}.0\n" for i in range(100))
    if kind == "csv":
        server.files["/d.csv"] = text.encode()
        build = lambda url: csv_source(url, retry=RetryPolicy(tries=2, wait=0.0))  # noqa: E731
    else:
        table = pa.table({"g": ["a", "b"] * 50, "x": np.arange(100.0)})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        server.files["/d.parquet"] = sink.getvalue().to_pybytes()
        build = lambda url: parquet_source(  # noqa: E731
            url, categorical=["g"], retry=RetryPolicy(tries=2, wait=0.0)
        )
    path = "/d.csv" if kind == "csv" else "/d.parquet"
    # The path is found and its first bytes read: what fails is a later read of the build
    # (the header or row count of the CSV, the level scan of the parquet file).
    server.faults[path] = "503-from-third"
    with pytest.raises(OSError, match=rf"{path[1:]}\?\*\*\*.*503") as info:
        build(server.url + path + "?sig=SUPERSECRET123")
    assert "SUPERSECRET123" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_a_truncated_gzip_csv_names_the_file():
    fs = fsspec.filesystem("memory")
    root = f"/truncated-{uuid.uuid4().hex}"
    packed = gzip.compress(("a,b\n" + "1,2\n" * 5000).encode())
    fs.pipe(f"{root}/d.csv.gz", packed[: len(packed) // 2])
    with pytest.raises(OSError, match=r"d\.csv\.gz' is truncated or its compression is corrupt"):
        csv_source(f"memory://{root}/d.csv.gz")


def test_csv_over_http(server):
    ids = np.arange(5000)
    text = "id,x\n" + "".join(f"{i},{float(np.sin(i))!r}\n" for i in ids)
    server.files["/data.csv"] = text.encode()
    server.faults["/data.csv"] = "503-first"
    source = csv_source(server.url + "/data.csv", retry=FAST_RETRY)
    assert source.num_rows == 5000
    assert_every_row_once(list(DataLoader(source, batch_size=512, seed=0).iter_epoch(0)), 5000)


def same_footer_parquet(seed: int) -> tuple[np.ndarray, bytes]:
    """The same values in another order, uncompressed: sizes, row groups and statistics
    are equal for every seed, so the footer cannot tell two of these files apart."""
    ids = np.random.default_rng(seed).permutation(1000).astype(np.float64)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"id": ids}), sink, compression="none", use_dictionary=False)
    return ids, sink.getvalue().to_pybytes()


@pytest.mark.parametrize("stamp", ["ETag", "Last-Modified", "memory"])
def test_a_remote_file_rewritten_with_the_same_footer_is_not_read_from_the_cache(
    server, tmp_path, stamp
):
    # Over HTTP the open file keeps only its size: the ETag or Last-Modified of a HEAD
    # request is the stamp. On memory:// it is the file's creation time.
    first_ids, first = same_footer_parquet(1)
    second_ids, second = same_footer_parquet(2)
    if stamp == "memory":
        fs = fsspec.filesystem("memory")
        url = "memory://rewritten/a.parquet"
        fs.pipe(url, first)
        rewrite = lambda: fs.pipe(url, second)  # noqa: E731
    else:
        url = f"{server.url}/a.parquet"
        values = (
            ['"v1"', '"v2"']
            if stamp == "ETag"
            else ["Tue, 01 Dec 2026 10:00:00 GMT", "Tue, 01 Dec 2026 10:05:00 GMT"]
        )
        server.files["/a.parquet"], server.stamps["/a.parquet"] = first, {stamp: values[0]}

        def rewrite():
            server.files["/a.parquet"], server.stamps["/a.parquet"] = second, {stamp: values[1]}

    def read():
        loader = DataLoader(parquet_source(url), batch_size=100, shuffle=False, cache=tmp_path)
        return np.concatenate(list(loader))[:, 0]

    np.testing.assert_array_equal(read(), first_ids)
    footer = parquet_source(url).fingerprint()["files"]
    time.sleep(0.01)  # a rewrite comes later than the first read
    rewrite()
    assert parquet_source(url).fingerprint()["files"] == footer  # the footer cannot tell
    np.testing.assert_array_equal(read(), second_ids)


@pytest.mark.parametrize("where", ["local", "http", "memory"])
def test_a_file_rewritten_between_epochs_is_named(server, tmp_path, where):
    # The source's row counts and footer describe the old file: reading the new one with
    # them failed deep in the decoder ("Couldn't deserialize thrift") or read other rows.
    old = parquet_bytes(np.arange(10_000))
    new = parquet_bytes(np.arange(6_000))
    if where == "local":
        url = str(tmp_path / "a.parquet")
        (tmp_path / "a.parquet").write_bytes(old)
        rewrite = lambda: (tmp_path / "a.parquet").write_bytes(new)  # noqa: E731
    elif where == "http":
        url, server.files["/a.parquet"] = f"{server.url}/a.parquet", old
        rewrite = lambda: server.files.__setitem__("/a.parquet", new)  # noqa: E731
    else:
        url = "memory://between-epochs/a.parquet"
        fsspec.filesystem("memory").pipe(url, old)
        rewrite = lambda: fsspec.filesystem("memory").pipe(url, new)  # noqa: E731
    loader = DataLoader(parquet_source(url), batch_size=1000, cache=None)
    assert len(np.concatenate(list(loader))) == 10_000
    rewrite()
    with pytest.raises(
        ValueError,
        match=r"parquet file '.*a\.parquet' changed since the source was built "
        r"\([\d,]+ bytes then, [\d,]+ now\): build the source again",
    ):
        list(loader)


def test_memory_filesystem_end_to_end():
    fs = fsspec.filesystem("memory")
    root = f"/streaming-{uuid.uuid4().hex}"
    try:
        for k in range(2):
            with fs.open(f"{root}/part-{k}.parquet", "wb") as f:
                f.write(parquet_bytes(np.arange(k * 3000, (k + 1) * 3000)))
        loader = DataLoader(parquet_source(f"memory://{root}/"), batch_size=700, seed=2)
        assert len(loader) == 6000
        assert_every_row_once(list(loader.iter_epoch(0)), 6000)
    finally:
        fs.rm(root, recursive=True)


def serve_directory(root, kind):
    """A real static file server over ``root`` on 127.0.0.1: Python's ``http.server``,
    whose index pages link subdirectories with a trailing "/", or aiohttp's, which links
    them without one. Returns the URL and a function that stops it."""
    if kind == "http.server":
        handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
        handler.log_message = lambda *args: None
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{httpd.server_address[1]}", httpd.shutdown
    from aiohttp import web

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_static("/", str(root), show_index=True)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    sock = socket.create_server(("127.0.0.1", 0))
    loop.run_until_complete(web.SockSite(runner, sock).start())
    port = sock.getsockname()[1]
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def stop():
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)

    return f"http://127.0.0.1:{port}", stop


def write_parts(root, names, rows=10_000):
    for k, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(parquet_bytes(np.arange(k * rows, (k + 1) * rows)))


def test_an_http_directory_is_read_with_its_subdirectories(tmp_path):
    # aiohttp's index links "sub" for sub/: fsspec took it for a file, and the rows in
    # subdirectories were left out without a word (10,000 rows of 30,000 here).
    # A dot in a directory's name ("v1.2") does not make it a file.
    names = ["a.parquet", "sub/b.parquet", "sub/deeper/c.parquet", "v1.2/d.parquet"]
    write_parts(tmp_path, names)
    (tmp_path / "README").write_text("not data")  # files without a data ending stay out
    (tmp_path / "notes.txt").write_text("not data")
    # HTML pages are not listings (about.html/ served itself again: a URL of ever more "/")
    (tmp_path / "about.html").write_text("<html><a href='/about.html/x'>x</a></html>")
    (tmp_path / "page").write_text("<html><body>no links</body></html>")
    url, stop = serve_directory(tmp_path, "aiohttp")
    try:
        source = parquet_source(f"{url}/")
        assert [s.split("/", 3)[-1] for s in source.files] == names
        assert_every_row_once(list(DataLoader(source, batch_size=4096).iter_epoch(0)), 40_000)
    finally:
        stop()


def test_an_http_directory_named_like_a_file_is_named_as_a_directory(tmp_path):
    # Spark writes df.write.parquet("out.parquet") as a directory; linked without its "/",
    # it failed with "Parquet magic bytes not found" and no word of a directory.
    write_parts(tmp_path, ["out.parquet/part-0.parquet"])
    url, stop = serve_directory(tmp_path, "aiohttp")
    try:
        message = r"out.parquet' is not a readable parquet file: .*it is a directory, whose URL"
        with pytest.raises(ValueError, match=message):
            parquet_source(f"{url}/", retry=1)  # the listing's entry for it
        assert parquet_source(f"{url}/out.parquet").num_rows == 10_000  # asked for by name
    finally:
        stop()


def test_python_http_server_missing_range_support_is_named(tmp_path):
    # ``python -m http.server``, the first server people try: its listing is read, and
    # since it ignores Range requests the error names the first file and what to do.
    write_parts(tmp_path, ["a.parquet", "sub/b.parquet"])
    url, stop = serve_directory(tmp_path, "http.server")
    try:
        with pytest.raises(OSError, match=r"a.parquet' failed: the HTTP server ignores Range"):
            parquet_source(f"{url}/", retry=1)  # its footer is read at the end of the file
    finally:
        stop()


class Status(Exception):
    def __init__(self, status):
        self.status = status


@pytest.mark.parametrize(
    "error, transient",
    [
        (Status(503), True),
        (Status(429), True),
        (Status(404), False),
        (Status(403), False),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (FileNotFoundError("x"), False),
        (PermissionError("x"), False),
        (ValueError("bad data"), False),
    ],
)
def test_is_transient(error, transient):
    assert is_transient(error) is transient
    wrapped = OSError("reading failed")
    wrapped.__cause__ = error
    assert is_transient(wrapped) is transient


def test_backoff_doubles_up_to_the_cap():
    policy = RetryPolicy(tries=6, wait=0.5, max_wait=3.0)
    assert [policy.delay(k) for k in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError, match="tries must be an integer >= 1"):
        RetryPolicy(tries=0)

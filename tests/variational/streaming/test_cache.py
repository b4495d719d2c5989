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
"""The row cache: hits, misses, invalidation, interrupted and concurrent writers, disk space,
bit-identical batches, resuming, and remote sources read once."""

import errno
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tracemalloc

from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pymc as pm

from pymc.variational.streaming import (
    DataLoader,
    RowCache,
    Trainer,
    array_source,
    csv_source,
    parquet_source,
)
from pymc.variational.streaming.cache import default_cache_dir
from pymc.variational.streaming.rowfile import HEADER_BYTES, RowFileWriter

FILES, ROWS, GROUP = 3, 2500, 1000  # 3 files of row groups of 1000, 1000 and 500 rows
SHARDS = FILES * 3
COLUMNS = ["id", "x", "y"]


def table(k: int, scale: float = 1.0) -> pa.Table:
    ids = np.arange(k * ROWS, (k + 1) * ROWS)
    return pa.table(
        {
            "id": ids.astype(np.float32),
            "x": (scale * np.sin(ids)).astype(np.float32),
            "y": np.cos(ids).astype(np.float32),
        }
    )


def write_parts(root, scale=1.0):
    root.mkdir(parents=True, exist_ok=True)
    for k in range(FILES):  # as users write them: snappy, dictionary, float32
        pq.write_table(table(k, scale), root / f"part-{k}.parquet", row_group_size=GROUP)
    return root


@pytest.fixture
def data(tmp_path):
    return write_parts(tmp_path / "data")


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


def loader_of(path, cache, **kwargs):
    kwargs = {"batch_size": 256, "seed": 7, "buffer_size": 1024} | kwargs
    source = kwargs.pop("source", None) or parquet_source(path, columns=kwargs.pop("columns", None))
    return DataLoader(source, cache=cache, **kwargs)


def epoch(loader, e=0, **kwargs):
    kwargs = {"prefetch": 0, "workers": 0} | kwargs
    with loader.iterate((e, 0), epochs=1, **kwargs) as batches:
        return np.concatenate(list(batches))


def entries(cache_dir):
    return sorted(d for d in cache_dir.iterdir() if d.is_dir()) if cache_dir.exists() else []


def files(cache_dir, pattern):
    return sorted(p.name for p in cache_dir.rglob(pattern))


def count_reads(source) -> Counter:
    """Count the shards the source decodes (inline and thread producers only)."""
    reads: Counter = Counter()
    read_shard = source.read_shard

    def counted(shard, dtype=np.float64):
        reads[shard.name] += 1
        yield from read_shard(shard, dtype)

    source.read_shard = counted
    return reads


# ----------------------------------------------------------------------------- hit and miss
def test_later_epochs_read_the_cache_not_the_source(data, cache_dir):
    loader = loader_of(data, cache_dir)
    reference = loader_of(data, None)
    reads = count_reads(loader.source)
    np.testing.assert_array_equal(epoch(loader, 0), epoch(reference, 0))
    assert sum(reads.values()) == SHARDS
    (entry,) = entries(cache_dir)
    assert files(entry, "*.rows") == [f"{i:06d}.rows" for i in range(SHARDS)]
    assert files(entry, "*.tmp") == []
    sizes = [HEADER_BYTES + n * 3 * 4 for n in [GROUP, GROUP, ROWS - 2 * GROUP] * FILES]
    assert sorted(p.stat().st_size for p in entry.glob("*.rows")) == sorted(sizes)
    for e in (1, 2):  # float32 rows read back, shuffled exactly as decoded ones
        np.testing.assert_array_equal(epoch(loader, e), epoch(reference, e))
    assert sum(reads.values()) == SHARDS
    # Resuming inside an epoch reads from the middle of a cached shard.
    with (
        loader.iterate((2, 5), epochs=1, prefetch=0) as it,
        reference.iterate((2, 5), epochs=1) as ref,
    ):
        np.testing.assert_array_equal(np.concatenate(list(it)), np.concatenate(list(ref)))
    assert sum(reads.values()) == SHARDS


def test_a_new_loader_reads_what_another_cached(data, cache_dir):
    np.testing.assert_array_equal(
        epoch(loader_of(data, cache_dir), 0), epoch(loader_of(data, None), 0)
    )
    loader = loader_of(data, cache_dir)
    reads = count_reads(loader.source)
    np.testing.assert_array_equal(epoch(loader, 3), epoch(loader_of(data, None), 3))
    assert not reads


@pytest.mark.parametrize(
    "options",
    [
        {"prefetch": 0, "workers": 0},
        {"prefetch": 2, "workers": 0},
        {"prefetch": 2, "workers": 0, "overlap": False},
        {"prefetch": 2, "workers": 1},
    ],
    ids=["inline", "thread", "thread-no-overlap", "process"],
)
@pytest.mark.parametrize(
    "dtype, transform",
    [(np.float64, None), (np.float32, None), (np.float64, lambda x: x[:, :2] * 2.0)],
    ids=["float64", "float32", "transform"],
)
def test_batches_are_bit_identical_with_and_without_the_cache(
    data, cache_dir, options, dtype, transform
):
    cached = loader_of(data, cache_dir, transform=transform)
    plain = loader_of(data, None, transform=transform)
    for e in (0, 1, 2):  # cold, warm, warm
        got = epoch(cached, e, dtype=dtype, **options)
        want = epoch(plain, e, dtype=dtype, prefetch=0)
        assert got.dtype == want.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)
        ids = np.sort(got[:, 0] / (2.0 if transform else 1.0))
        np.testing.assert_array_equal(ids, np.arange(FILES * ROWS))
    assert len(files(cache_dir, "*.rows")) == SHARDS


def test_memory_with_the_cache_is_bounded_by_the_buffer_not_by_n(tmp_path, cache_dir):
    # numpy reports its buffers to tracemalloc: the peak covers every cached block read,
    # every window and every batch, over a cold epoch and a warm one.
    W = 20_000
    peaks = {}
    for n in (80_000, 320_000):
        root = tmp_path / str(n)
        root.mkdir()
        rows = np.arange(n * 14, dtype=np.float64).reshape(n, 14)
        pq.write_table(pa.table({f"c{j}": rows[:, j] for j in range(14)}), root / "p.parquet")
        loader = loader_of(root, cache_dir, batch_size=1000, buffer_size=W)
        tracemalloc.start()
        try:
            with loader.iterate(prefetch=0, overlap=False) as it:
                for _ in range(2 * n // 1000):
                    next(it)
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    window_bytes = W * 14 * 8
    assert peaks[320_000] < 6 * window_bytes
    assert peaks[320_000] < 1.1 * peaks[80_000]


def test_csv_rows_are_cached_in_float64(tmp_path, cache_dir):
    root = tmp_path / "csv"
    root.mkdir()
    for k in range(2):
        ids = np.arange(k * 1500, (k + 1) * 1500)
        lines = "".join(f"{i},{float(np.sin(i))!r}\n" for i in ids)
        (root / f"part-{k}.csv").write_text("id,x\n" + lines)
    cached = loader_of(None, cache_dir, source=csv_source(root))
    plain = loader_of(None, None, source=csv_source(root))
    reads = count_reads(cached.source)
    for e in (0, 1):
        got = epoch(cached, e)
        np.testing.assert_array_equal(got, epoch(plain, e))
        np.testing.assert_array_equal(got[:, 1], np.sin(got[:, 0]))  # every digit kept
    assert sum(reads.values()) == 2
    sizes = sorted(p.stat().st_size for p in cache_dir.rglob("*.rows"))
    assert sizes == [HEADER_BYTES + 1500 * 2 * 8] * 2


# ----------------------------------------------------------------------------- invalidation
def changed_file(root):
    pq.write_table(table(1, scale=-3.0), root / "part-1.parquet", row_group_size=GROUP)
    return {}


def changed_file_same_stamp(root):
    # A rewrite that keeps the modification time (a copy with cp -p, a coarse clock):
    # the footer's digest still tells the files apart.
    path = root / "part-1.parquet"
    stamp = path.stat()
    changed_file(root)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    return {}


def other_columns(root):
    return {"columns": ["id", "y"]}


def other_dtype(root):
    # A transform makes the loader decode float64: float32 rows are not read for it.
    return {"transform": lambda x: x + 0.0}


@pytest.mark.parametrize(
    "change",
    [changed_file, changed_file_same_stamp, other_columns, other_dtype],
    ids=["file", "file-same-stamp", "columns", "dtype"],
)
def test_stale_rows_are_never_read(data, cache_dir, change):
    first = epoch(loader_of(data, cache_dir), 0)
    kwargs = change(data)
    cached = loader_of(data, cache_dir, **kwargs)
    reads = count_reads(cached.source)
    np.testing.assert_array_equal(epoch(cached, 0), epoch(loader_of(data, None, **kwargs), 0))
    assert sum(reads.values()) == SHARDS  # a miss: every shard decoded again
    assert len(entries(cache_dir)) == 2
    if change in (changed_file, changed_file_same_stamp):
        assert not np.array_equal(epoch(cached, 0), first)


def test_a_file_rewritten_with_the_same_footer_is_not_read_from_the_cache(tmp_path, cache_dir):
    # Uncompressed pages holding the same values in another order: sizes, row groups and
    # statistics are equal, so only the file's modification stamp tells them apart.
    root = tmp_path / "same-footer"
    root.mkdir()
    path = root / "part-0.parquet"

    def write(seed):
        ids = np.random.default_rng(seed).permutation(1000).astype(np.float64)
        pq.write_table(pa.table({"id": ids}), path, compression="none", use_dictionary=False)
        return ids

    first = write(1)
    before = parquet_source(root).fingerprint()
    np.testing.assert_array_equal(epoch(loader_of(root, cache_dir, shuffle=False))[:, 0], first)
    time.sleep(0.05)  # a rewrite comes later than the first read
    second = write(2)
    assert parquet_source(root).fingerprint() == before  # the footer cannot tell
    got = epoch(loader_of(root, cache_dir, shuffle=False))[:, 0]
    np.testing.assert_array_equal(got, second)
    assert len(entries(cache_dir)) == 2


def test_csv_columns_named_otherwise_are_another_cache(tmp_path, cache_dir):
    # The same bytes read with other column names are other data: "a" is another field.
    path = tmp_path / "two.csv"
    path.write_text("1,100\n2,200\n3,300\n")

    def read(names, cache):
        source = csv_source(path, header=False, column_names=names, columns=["a"])
        return epoch(loader_of(None, cache, source=source, shuffle=False))[:, 0]

    np.testing.assert_array_equal(read(["a", "b"], cache_dir), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(read(["b", "a"], cache_dir), [100.0, 200.0, 300.0])
    np.testing.assert_array_equal(read(["b", "a"], None), [100.0, 200.0, 300.0])
    assert len(entries(cache_dir)) == 2


def test_other_categorical_levels_are_another_cache(tmp_path, cache_dir):
    root = tmp_path / "groups"
    root.mkdir()
    labels = np.array(["a", "b", "c"])[np.arange(3000) % 3]
    pq.write_table(pa.table({"g": labels, "v": np.arange(3000.0)}), root / "part.parquet")
    codes = {}
    for levels in (["a", "b", "c"], ["c", "b", "a"]):
        source = parquet_source(root, categorical={"g": levels})
        rows = epoch(loader_of(root, cache_dir, source=source, shuffle=False), 0)
        codes[levels[0]] = rows[:, 0]
        np.testing.assert_array_equal(rows[:, 1], np.arange(3000.0))
    np.testing.assert_array_equal(codes["a"], np.arange(3000) % 3)
    np.testing.assert_array_equal(codes["c"], 2 - np.arange(3000) % 3)
    assert len(entries(cache_dir)) == 2


def test_rows_cached_before_a_transform_are_still_checked(tmp_path, cache_dir):
    # NaN cached from a loader whose transform filled it: a loader without that transform
    # reading the same rows must still refuse them, naming the file and the column.
    root = tmp_path / "gaps"
    root.mkdir()
    x = np.arange(3000.0)
    x[1234] = np.nan  # float64 columns: decoded in float64 with a transform and without
    pq.write_table(pa.table({"id": np.arange(3000.0), "x": x}), root / "p.parquet")
    filled = loader_of(root, cache_dir, transform=lambda b: np.nan_to_num(b, nan=-1.0))
    assert (epoch(filled, 0)[:, 1] == -1.0).sum() == 1
    assert len(files(cache_dir, "*.rows")) == 1
    plain = loader_of(root, cache_dir)
    reads = count_reads(plain.source)
    with pytest.raises(ValueError, match=r"p.parquet \(row group 0\): column 'x' holds 1 NaN"):
        epoch(plain, 0)
    assert not reads  # read from the cache, and checked


# ----------------------------------------------------------------------------- interrupted writes
def test_an_epoch_stopped_midway_leaves_no_partial_file(data, cache_dir):
    loader = loader_of(data, cache_dir, buffer_size=256)
    with loader.iterate(prefetch=0, workers=0, overlap=False) as it:
        next(it)  # 256 rows of the first shard (one block of 500 or 1000 rows, all written)
    (entry,) = entries(cache_dir)
    assert files(entry, "*.rows") == files(entry, "*.tmp") == []
    reference = loader_of(data, None, buffer_size=256)
    np.testing.assert_array_equal(epoch(loader, 0), epoch(reference, 0))
    assert len(files(entry, "*.rows")) == SHARDS


def test_a_closed_worker_has_removed_its_partial_file_when_close_returns(tmp_path, cache_dir):
    # The worker is in the middle of the one large shard, waiting for a free slot. Its
    # exit is not waited for, but its cleanup is.
    root = tmp_path / "big"
    root.mkdir()
    y = np.arange(1_000_000.0)
    pq.write_table(pa.table({"y": y}), root / "y.parquet", row_group_size=1_000_000)
    loader = loader_of(root, cache_dir, batch_size=1000, buffer_size=4000, sample_shape=())
    it = loader.iterate(workers=1, prefetch=1)
    first = next(it)
    (entry,) = entries(cache_dir)
    assert len(files(entry, "*.tmp")) == 1
    it.close()
    assert files(entry, "*.tmp") == files(entry, "*.rows") == []
    assert set(first) <= set(y[:4000])


def _write_until_killed(path, cache, started):
    source = parquet_source(path)
    read_shard = source.read_shard

    def stalls(shard, dtype=np.float64):
        for block in read_shard(shard, dtype):
            yield block
            started.set()  # the block is written to the temporary file by now
            time.sleep(60)

    source.read_shard = stalls
    epoch(loader_of(path, cache, source=source))


def test_a_killed_writer_leaves_nothing_that_is_read(data, cache_dir):
    context = multiprocessing.get_context("fork")
    started = context.Event()
    writer = context.Process(target=_write_until_killed, args=(data, cache_dir, started))
    writer.start()
    assert started.wait(60)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    (entry,) = entries(cache_dir)
    (tmp,) = entry.glob("*.tmp")
    assert tmp.stat().st_size > HEADER_BYTES  # rows were written...
    assert files(entry, "*.rows") == []  # ...and are not read: the file was never renamed
    loader = loader_of(data, cache_dir)
    np.testing.assert_array_equal(epoch(loader, 0), epoch(loader_of(data, None), 0))
    assert files(entry, "*.tmp") == []  # removed by the next writer of that shard
    assert len(files(entry, "*.rows")) == SHARDS


EXIT_SCRIPT = """
import numpy as np
import pymc as pm
from pymc.variational.streaming import DataLoader, Trainer, parquet_source

loader = DataLoader(parquet_source({data!r}), batch_size=128, sample_shape=(), seed=1,
                    cache={cache!r}, workers=1, persistent_workers=True)
with pm.Model() as model:
    mu = pm.Normal("mu", 0.0, 10.0)
    rows = pm.Data("batch", np.zeros(128))
    pm.Normal("y", mu, 1.0, observed=rows, total_size=len(loader))
trainer = Trainer(dataloader=loader, model=model, progressbar=False, convergence=None)
trainer.fit(50)
print("fitted")
"""


def test_a_script_that_exits_without_closing_leaves_no_partial_file(tmp_path, cache_dir):
    # The kept worker is in the middle of the one large shard when the script ends.
    root = tmp_path / "big"
    root.mkdir()
    y = np.random.default_rng(0).normal(size=1_000_000)
    pq.write_table(pa.table({"y": y}), root / "y.parquet", row_group_size=1_000_000)
    script = EXIT_SCRIPT.format(data=str(root), cache=str(cache_dir))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "fitted"
    (entry,) = entries(cache_dir)
    assert files(entry, "*.tmp") == []


def test_damaged_cache_files_are_not_read(data, cache_dir):
    loader = loader_of(data, cache_dir)
    epoch(loader, 0)
    (entry,) = entries(cache_dir)
    truncated, foreign = sorted(entry.glob("*.rows"))[:2]
    size = truncated.stat().st_size
    with open(truncated, "r+b") as f:
        f.truncate(size - 12)  # the last row cut short
    foreign.write_bytes(b"not rows" * 100)
    reads = count_reads(loader.source)
    np.testing.assert_array_equal(epoch(loader, 1), epoch(loader_of(data, None), 1))
    assert sum(reads.values()) == 2  # those two shards decoded again, and rewritten
    assert truncated.stat().st_size == size
    assert len(files(entry, "*.rows")) == SHARDS


# ----------------------------------------------------------------------------- concurrency
def test_loaders_in_threads_share_a_cache(data, cache_dir):
    loaders = [loader_of(data, cache_dir) for _ in range(4)]
    results: list = [None] * 4
    barrier = threading.Barrier(4)

    def run(k):
        barrier.wait()
        results[k] = [epoch(loaders[k], e) for e in (0, 1)]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reference = loader_of(data, None)
    for got in results:
        for e in (0, 1):
            np.testing.assert_array_equal(got[e], epoch(reference, e))
    assert len(files(cache_dir, "*.rows")) == SHARDS
    assert files(cache_dir, "*.tmp") == []


def _epochs_to_file(path, cache, out, go):
    go.wait(60)
    loader = loader_of(path, cache)
    np.save(out, np.stack([epoch(loader, e, prefetch=2) for e in (0, 1)]))


def test_processes_share_a_cache(tmp_path, data, cache_dir):
    context = multiprocessing.get_context("fork")
    go = context.Event()
    outs = [tmp_path / f"out-{k}.npy" for k in range(3)]
    procs = [
        context.Process(target=_epochs_to_file, args=(data, cache_dir, out, go)) for out in outs
    ]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    reference = loader_of(data, None)
    for out in outs:
        got = np.load(out)
        for e in (0, 1):
            np.testing.assert_array_equal(got[e], epoch(reference, e))
    assert len(files(cache_dir, "*.rows")) == SHARDS
    assert files(cache_dir, "*.tmp") == []


# ----------------------------------------------------------------------------- disk space
NEEDED = SHARDS * HEADER_BYTES + FILES * ROWS * 3 * 4  # bytes of the decoded rows


def test_not_enough_space_is_an_error_naming_the_sizes(data, cache_dir):
    # min_free is a real option: the space that must stay free on the cache's disk.
    cache = RowCache(cache_dir, min_free=1 << 62)
    loader = loader_of(data, cache)
    pattern = (
        f"not enough free space in '{cache_dir}' to cache the decoded rows: they need "
        rf"{NEEDED / 1000:.1f} kB, [0-9.]+ [kMGT]?B are free, and 4611686.0 TB must stay free "
        r"\(min_free\)\. Free some space, pass cache=<another directory>"
    )
    with pytest.raises(OSError, match=pattern) as raised:
        loader.iterate()
    assert raised.value.errno == errno.ENOSPC
    assert list(cache_dir.iterdir()) == []  # not even the dataset's directory


def reads_around_the_cache(data, cache_dir, warning, cache=None):
    """One epoch through a cache that fails to take the rows: it warns with ``warning``,
    gives the rows a loader without a cache gives, and leaves no row file behind."""
    loader = loader_of(data, cache or cache_dir)
    with pytest.warns(RuntimeWarning, match=warning):
        got = epoch(loader, 0)
    np.testing.assert_array_equal(got, epoch(loader_of(data, None), 0))
    assert files(cache_dir, "*.rows") == files(cache_dir, "*.tmp") == []


def test_not_enough_space_reads_without_a_cache_when_not_strict(data, cache_dir):
    cache = RowCache(cache_dir, min_free=1 << 62, strict=False)
    reads_around_the_cache(
        data, cache_dir, "reading without a row cache: not enough free space", cache
    )


def test_a_disk_full_while_writing_leaves_nothing_behind(data, cache_dir, monkeypatch):
    def full(self, block):
        self.abort()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RowFileWriter, "write", full)
    reads_around_the_cache(data, cache_dir, "the row cache stops writing: writing .* No space")


def test_a_disk_full_in_the_background_writer_leaves_nothing_behind(data, cache_dir, monkeypatch):
    # The writing thread meets the full disk; the reader learns it at its next block.
    from pymc.variational.streaming import rowfile

    writers = []

    def pwrite_all(fd, block, offset):
        writers.append(threading.current_thread().name)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rowfile, "_pwrite_all", pwrite_all)
    reads_around_the_cache(data, cache_dir, "the row cache stops writing: .* No space")
    assert writers == ["pymc-cache-write"]  # then writing stopped


def test_a_transform_that_changes_its_block_does_not_change_the_cache(tmp_path, cache_dir):
    # float64 columns: decoded in float64 with a transform and without, so one cache.
    root = tmp_path / "wide"
    root.mkdir()
    for k in range(FILES):
        pq.write_table(
            table(k).cast(pa.schema([(c, pa.float64()) for c in COLUMNS])), root / f"{k}.parquet"
        )

    def double_x(block):  # in place, as users write them
        block[:, 1] *= 2
        return block

    doubled = epoch(loader_of(root, cache_dir, transform=double_x), 0)
    plain = loader_of(root, cache_dir)
    reads = count_reads(plain.source)
    got = epoch(plain, 0)
    assert not reads  # read from the cache
    np.testing.assert_array_equal(got, epoch(loader_of(root, None), 0))
    np.testing.assert_array_equal(doubled[:, 1], 2 * got[:, 1])


def test_data_that_can_never_fit_removes_nothing(data, cache_dir):
    # max_bytes holds one column of the data but not three: the first dataset stays.
    one_column = NEEDED - FILES * ROWS * 2 * 4
    cache = RowCache(cache_dir, max_bytes=one_column + 5000, strict=False)
    epoch(loader_of(data, cache, columns=["x"]), 0)
    (kept,) = entries(cache_dir)
    with pytest.warns(RuntimeWarning, match=r"reading without a row cache: the decoded rows need"):
        got = epoch(loader_of(data, cache), 0)
    np.testing.assert_array_equal(got, epoch(loader_of(data, None), 0))
    assert entries(cache_dir) == [kept] and len(files(kept, "*.rows")) == SHARDS


def test_a_warm_cache_is_read_on_a_full_disk(data, cache_dir, monkeypatch):
    # Reading cached rows needs no room: a disk that filled up since they were written
    # must not make the loader decode again, nor leave a half-written meta.json behind.
    strict = RowCache(cache_dir, strict=True)
    want = epoch(loader_of(data, strict), 0)
    write_text = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.startswith("meta.json"):
            write_text(self, "{")  # created, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    loader = loader_of(data, strict)
    reads = count_reads(loader.source)
    np.testing.assert_array_equal(epoch(loader, 0), want)
    assert sum(reads.values()) == 0
    assert files(cache_dir, "*.tmp") == []


def test_a_cache_removed_while_in_use_is_read_around(data, cache_dir):
    # Another process may remove a dataset to make room for its own: a loader reading it
    # goes on with the source, with a warning, and never reads a partial file.
    loader = loader_of(data, cache_dir)
    reference = loader_of(data, None)
    with loader.iterate((0, 0), epochs=2, prefetch=0, workers=0, overlap=False) as it:
        first = [next(it) for _ in range(3)]
        RowCache(cache_dir).clear()
        with pytest.warns(RuntimeWarning, match="the row cache stops writing"):
            rest = list(it)
    want = np.concatenate([epoch(reference, 0), epoch(reference, 1)])
    np.testing.assert_array_equal(np.concatenate(first + rest), want)
    assert files(cache_dir, "*.rows") == files(cache_dir, "*.tmp") == []


def test_max_bytes_removes_the_least_recently_used_dataset(tmp_path, data, cache_dir):
    other = write_parts(tmp_path / "other", scale=2.0)
    cache = RowCache(cache_dir, max_bytes=NEEDED + 5000)
    epoch(loader_of(data, cache), 0)
    (first,) = entries(cache_dir)
    np.testing.assert_array_equal(
        epoch(loader_of(other, cache), 0), epoch(loader_of(other, None), 0)
    )
    (second,) = entries(cache_dir)
    assert second != first and len(files(second, "*.rows")) == SHARDS
    with pytest.raises(OSError, match=r"max_bytes=0 bytes"):
        loader_of(data, RowCache(tmp_path / "tiny", max_bytes=0)).iterate()


# ----------------------------------------------------------------------------- the Trainer
def normal_trainer(path, cache):
    loader = DataLoader(
        parquet_source(path, columns=["x"]), batch_size=500, sample_shape=(), seed=3, cache=cache
    )
    with pm.Model():
        mu = pm.Normal("mu", 0.0, 10.0)
        x = pm.Data("batch", np.zeros(500))
        pm.Normal("obs", mu, 1.0, observed=x, total_size=len(loader))
        return Trainer(dataloader=loader, random_seed=5, progressbar=False)


def test_resume_from_a_checkpoint_with_a_warm_cache(tmp_path, data, cache_dir):
    first = normal_trainer(data, cache_dir)  # the default producer: a forked process
    first.fit(40)  # 15 batches per epoch: the cache is warm after the first
    assert len(files(cache_dir, "*.rows")) == SHARDS
    first.save_checkpoint(tmp_path / "fit.npz")
    resumed = normal_trainer(data, cache_dir).fit(40, ckpt_path=tmp_path / "fit.npz")
    reference = normal_trainer(data, None).fit(80)
    for p, q in zip(resumed.params, reference.params):
        np.testing.assert_array_equal(p.get_value(), q.get_value())
    np.testing.assert_array_equal(resumed.hist, reference.hist)


# ----------------------------------------------------------------------------- remote data
class RangeFiles(BaseHTTPRequestHandler):
    """Serves ``server.files`` with Range support, counting requests and bytes sent."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body):
        data = self.server.files.get(self.path.split("?")[0])
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = 0, len(data) - 1
        if "Range" in self.headers:
            first, last = self.headers["Range"].split("=")[1].split("-")
            start, end = int(first), min(int(last) if last else end, end)
        chunk = data[start : end + 1]
        self.send_response(206 if "Range" in self.headers else 200)
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Accept-Ranges", "bytes")
        if "Range" in self.headers:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if body:
            with self.server.lock:
                self.server.sent["requests"] += 1
                self.server.sent["bytes"] += len(chunk)
            self.wfile.write(chunk)


@pytest.fixture
def server(data):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeFiles)
    httpd.files = {
        f"/part-{k}.parquet": (data / f"part-{k}.parquet").read_bytes() for k in range(3)
    }
    httpd.sent, httpd.lock = Counter(), threading.Lock()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_a_second_epoch_downloads_nothing(server, data, cache_dir):
    pytest.importorskip("aiohttp")
    port = server.server_address[1]
    urls = [f"http://127.0.0.1:{port}/part-{k}.parquet?token=sekrit-123" for k in range(3)]
    loader = loader_of(None, cache_dir, source=parquet_source(urls), workers=None)
    reference = loader_of(data, None)
    before = server.sent.copy()
    np.testing.assert_array_equal(epoch(loader, 0, prefetch=2), epoch(reference, 0))
    downloaded = server.sent["bytes"] - before["bytes"]
    assert downloaded >= sum(len(b) for b in server.files.values()) // 2
    after_first = server.sent.copy()
    for e in (1, 2):
        np.testing.assert_array_equal(epoch(loader, e, prefetch=2), epoch(reference, e))
    assert server.sent == after_first  # not a request, not a byte
    (entry,) = entries(cache_dir)
    meta = (entry / "meta.json").read_text()
    assert "part-1.parquet" in meta and "sekrit" not in meta
    assert all("sekrit" not in p.name for p in entry.iterdir())


# ----------------------------------------------------------------------------- the option
def test_the_cache_option(tmp_path, data, row_cache_dir):
    auto = loader_of(data, "auto")
    assert auto.cache.directory == row_cache_dir == default_cache_dir()
    assert (auto.cache.strict, auto.cache.max_bytes, auto.cache.min_free) == (False, 0.2, 0.05)
    total = shutil.disk_usage(row_cache_dir).total
    assert auto.cache.max_bytes_limit() == int(0.2 * total)
    assert auto.cache.min_free_bytes() == int(0.05 * total)
    epoch(auto, 0)
    assert len(files(row_cache_dir, "*.rows")) == SHARDS  # "auto" is the default
    assert DataLoader(parquet_source(data), batch_size=10).cache.directory == row_cache_dir
    assert loader_of(data, True).cache.strict is True
    assert loader_of(data, str(tmp_path / "c")).cache.directory == tmp_path / "c"
    assert loader_of(data, None).cache is None and loader_of(data, False).cache is None
    # Rows in memory, or a source whose fingerprint does not follow its rows: no cache.
    rows = np.arange(20.0).reshape(10, 2)
    assert DataLoader(array_source(rows), batch_size=5).cache is None
    with pytest.raises(ValueError, match="ArraySource rows cannot be cached"):
        DataLoader(array_source(rows), batch_size=5, cache=tmp_path / "c")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    assert DataLoader(csv_source(tmp_path / "t.csv"), batch_size=1).cache is not None
    assert DataLoader(csv_source(tmp_path / "t.csv", num_rows=2), batch_size=1).cache is None
    with pytest.raises(TypeError, match='cache must be "auto", None, True, a directory'):
        loader_of(data, 3)
    for bad in ({"min_free": -1}, {"max_bytes": 1.5}, {"min_free": None}):
        with pytest.raises(ValueError, match=r"must be a number of bytes .* or a fraction"):
            RowCache(tmp_path, **bad)


def test_default_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("PYMC_STREAMING_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("PYMC_STREAMING_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "pymc-streaming" / "rows"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "pymc-streaming" / "rows"


def test_clear_removes_only_cached_datasets(data, cache_dir):
    cache = RowCache(cache_dir)
    epoch(loader_of(data, cache), 0)
    (cache_dir / "mine").mkdir()  # not a cached dataset: left alone
    assert len(cache.used_bytes()) == 1
    assert next(iter(cache.used_bytes().values())) >= NEEDED
    cache.clear()
    assert entries(cache_dir) == [cache_dir / "mine"]

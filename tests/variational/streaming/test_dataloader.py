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
import copyreg
import itertools
import multiprocessing
import subprocess
import sys
import threading

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pymc.variational.streaming import (
    DataLoader,
    IterableDataset,
    Shard,
    array_source,
    parquet_source,
)
from pymc.variational.streaming.order import window_permutation


def rows_with_ids(n, width=3, seed=0):
    """Rows whose first column is the row id, so batches can be traced back to rows."""
    rng = np.random.default_rng(seed)
    return np.column_stack([np.arange(n, dtype=float), rng.normal(size=(n, width - 1))])


@pytest.fixture(
    params=[{"prefetch": 0}, {"prefetch": 2}, {"workers": 1}], ids=["inline", "thread", "process"]
)
def producer(request):
    """Where windows are produced: the calling thread, a background thread, a worker process."""
    return request.param


def epoch_ids(loader, epoch=0):
    return np.concatenate([b[:, 0] for b in loader.iter_epoch(epoch)])


@pytest.mark.parametrize("n", [1000, 1024, 1], ids=["ragged", "even", "single-row"])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("buffer_size", [100, 256, 5000])
def test_every_row_once_per_epoch(n, shuffle, buffer_size):
    data = rows_with_ids(n)
    loader = DataLoader(
        array_source(data, shard_rows=97),
        batch_size=64,
        shuffle=shuffle,
        buffer_size=buffer_size,
        seed=3,
    )
    batches = list(loader.iter_epoch(0))
    sizes = [len(b) for b in batches]
    assert sizes[:-1] == [64] * (len(batches) - 1)
    assert sizes[-1] == (n % 64 or 64)
    ids = np.concatenate([b[:, 0] for b in batches])
    np.testing.assert_array_equal(np.sort(ids), np.arange(n))
    if not shuffle:
        np.testing.assert_array_equal(ids, np.arange(n))
    # Rows keep their contents through shuffling.
    np.testing.assert_array_equal(np.concatenate(batches), data[ids.astype(int)])


def test_drop_last_drops_only_the_short_batch():
    loader = DataLoader(array_source(rows_with_ids(1000)), batch_size=64, drop_last=True, seed=1)
    batches = list(loader.iter_epoch(0))
    assert [len(b) for b in batches] == [64] * 15
    assert loader.batches_per_epoch == 15
    assert len(np.unique(np.concatenate([b[:, 0] for b in batches]))) == 960


def test_batch_shape_follows_sample_shape():
    loader = DataLoader(
        array_source(rows_with_ids(300, width=6)), batch_size=50, sample_shape=(2, 3), seed=0
    )
    batch = next(iter(loader))
    assert batch.shape == (50, 2, 3)
    assert batch.dtype == np.float64
    one_column = DataLoader(
        array_source(np.arange(10.0)), batch_size=4, sample_shape=(), shuffle=False
    )
    np.testing.assert_array_equal(next(iter(one_column)), [0.0, 1.0, 2.0, 3.0])


def test_len_is_the_number_of_rows():
    loader = DataLoader(array_source(rows_with_ids(12_345)), batch_size=100)
    assert len(loader) == 12_345
    assert loader.batches_per_epoch == 124
    assert (
        len(DataLoader(array_source(rows_with_ids(10)), batch_size=4, total_size=1_000_000))
        == 1_000_000
    )
    with pytest.raises(TypeError, match="total_size=<number of rows>"):
        len(DataLoader(array_source(rows_with_ids(10)), batch_size=4, total_size=None))


def test_same_seed_same_batches_new_order_each_epoch(producer):
    def first_batches(seed, k):
        loader = DataLoader(
            array_source(rows_with_ids(2000), shard_rows=100), batch_size=100, seed=seed, **producer
        )
        with loader.iterate() as it:
            return [b.copy() for b in itertools.islice(it, k)]

    a, b = first_batches(7, 40), first_batches(7, 40)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # 40 batches are two epochs of 20; the second epoch is another permutation of the rows.
    epoch0 = np.concatenate([x[:, 0] for x in a[:20]])
    epoch1 = np.concatenate([x[:, 0] for x in a[20:]])
    np.testing.assert_array_equal(np.sort(epoch0), np.sort(epoch1))
    assert not np.array_equal(epoch0, epoch1)
    other_seed = np.concatenate([x[:, 0] for x in first_batches(8, 20)])
    assert not np.array_equal(epoch0, other_seed)


def test_endless_iteration_matches_iter_epoch(producer):
    loader = DataLoader(
        array_source(rows_with_ids(1000), shard_rows=128), batch_size=64, seed=5, **producer
    )
    expected = list(loader.iter_epoch(0)) + list(loader.iter_epoch(1)) + list(loader.iter_epoch(2))
    it = loader.iterate()
    got = [next(it) for _ in range(len(expected))]
    it.close()
    for x, y in zip(got, expected):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("stop_after", [1, 7, 16, 23])
def test_new_iterator_resumes_at_next_batch(stop_after, producer):
    loader = DataLoader(
        array_source(rows_with_ids(1000), shard_rows=128),
        batch_size=64,
        buffer_size=300,
        seed=2,
        **producer,
    )
    reference = list(loader.iter_epoch(0)) + list(loader.iter_epoch(1))
    with loader.iterate() as it:
        first = [next(it).copy() for _ in range(stop_after)]
        position = it.position
    assert position == (stop_after // 16, stop_after % 16)
    with loader.iterate(start=position) as it:
        rest = [next(it).copy() for _ in range(32 - stop_after)]
    for x, y in zip(first + rest, reference):
        np.testing.assert_array_equal(x, y)


def test_state_dict_round_trip_in_a_new_loader():
    # An unseeded loader draws fresh entropy; its state carries the seed and the epoch.
    source = array_source(rows_with_ids(1000), shard_rows=128)
    loader = DataLoader(source, batch_size=64)
    for _ in range(3):
        list(loader)  # epochs 0, 1, 2
    expected = [b.copy() for b in loader]  # epoch 3
    state = loader.state_dict()
    assert state["epoch"] == 4
    loader.set_epoch(3)
    fresh = DataLoader(array_source(rows_with_ids(1000), shard_rows=128), batch_size=64)
    fresh.load_state_dict(loader.state_dict())
    for x, y in zip(fresh, expected, strict=True):
        np.testing.assert_array_equal(x, y)
    changed = DataLoader(array_source(rows_with_ids(999), shard_rows=128), batch_size=64)
    with pytest.raises(ValueError, match="saved on different data"):
        changed.load_state_dict(state)


@pytest.mark.parametrize("workers", [0, 1], ids=["thread", "process"])
def test_a_state_taken_mid_epoch_goes_on_with_that_epoch(workers):
    # As torchdata's StatefulDataLoader: the state of a loader whose iterator has handed
    # out 5 of 16 batches gives the other 11 (it skipped them, starting the next epoch).
    def loader(**options):
        source = array_source(rows_with_ids(1000), shard_rows=128)
        return DataLoader(source, batch_size=64, workers=workers, **options)

    first = loader(seed=3)
    list(first)  # epoch 0
    it = iter(first)  # epoch 1
    taken = [next(it).copy() for _ in range(5)]
    state = first.state_dict()
    assert (state["epoch"], state["batch"]) == (1, 5)
    rest = [b.copy() for b in it]
    assert (first.state_dict()["epoch"], first.state_dict()["batch"]) == (2, 0)
    second = loader()
    second.load_state_dict(state)
    resumed = [b.copy() for b in second]
    assert len(resumed) == len(rest) == 11
    for x, y in zip(resumed, rest):
        np.testing.assert_array_equal(x, y)
    ids = np.concatenate([b[:, 0] for b in taken + resumed])
    np.testing.assert_array_equal(np.sort(ids), np.arange(1000))
    for x, y in zip(second, first, strict=True):  # epoch 2 of both
        np.testing.assert_array_equal(x, y)
    second.load_state_dict(state)
    second.set_epoch(1)  # the whole epoch again, as asked
    assert len(list(second)) == 16
    # set_epoch and load_state_dict outrank an iterator still part-way through its epoch.
    live = iter(first)
    next(live)
    first.set_epoch(5)
    assert (first.state_dict()["epoch"], first.state_dict()["batch"]) == (5, 0)
    first.load_state_dict(state)
    assert (first.state_dict()["epoch"], first.state_dict()["batch"]) == (1, 5)
    # A state without a batch (written before it was kept) starts its epoch.
    third = loader()
    third.load_state_dict({k: v for k, v in state.items() if k != "batch"})
    assert len(list(third)) == 16


@pytest.mark.parametrize("width", [1, 2], ids=["one-column", "two-columns"])
def test_kept_field_batches_keep_their_rows(producer, width):
    # The field of a one-column window was a view of the window, which a worker process
    # writes again: a kept batch of rows 0, 1, 2 came to hold 655360, ...
    data = np.arange(6 * 4096.0 * width).reshape(-1, width)
    loader = DataLoader(
        array_source(data),
        batch_size=512,
        buffer_size=2048,
        fields={"y": "x0"},
        shuffle=False,
        cache=None,
        **producer,
    )
    kept = [batch["y"] for batch in loader]
    np.testing.assert_array_equal(np.concatenate(kept), data[:, 0])


def test_buffer_bounds_how_far_rows_move():
    # One shard and a window of 300 rows: batch i only holds rows of the window(s)
    # that its row range falls in.
    n, B, W = 3000, 50, 300
    loader = DataLoader(
        array_source(rows_with_ids(n), shard_rows=n), batch_size=B, buffer_size=W, seed=4
    )
    for i, batch in enumerate(loader.iter_epoch(0)):
        windows = np.unique(batch[:, 0] // W)
        assert set(windows) <= {(i * B) // W, ((i + 1) * B - 1) // W}


def write_parquet_rows(path, n, files=4):
    data = rows_with_ids(n, width=14).astype(np.float32)
    table = pa.table({f"c{j}": data[:, j] for j in range(14)})
    path.mkdir()
    per = n // files
    for k in range(files):
        pq.write_table(
            table.slice(k * per, per),
            path / f"part-{k}.parquet",
            row_group_size=10_000,
            use_dictionary=False,
        )


MEMORY_SCRIPT = """
import sys, tracemalloc
import psutil
from pymc.variational.streaming import DataLoader, parquet_source

path, workers, prefetch, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def tree_pss():
    me = psutil.Process()
    return sum(p.memory_full_info().pss for p in [me, *me.children(recursive=True)])

# The loader's own buffers; test_cache.py bounds the row cache's reads separately.
loader = DataLoader(parquet_source(path), batch_size=1000, buffer_size=window, seed=0,
                    workers=workers, prefetch=prefetch, cache=None)
base = peak = tree_pss()
tracemalloc.start()  # numpy reports its buffers: every window and batch of this process
with loader.iterate(epochs=2) as batches:
    for i, batch in enumerate(batches):
        if i % 10 == 0:
            peak = max(peak, tree_pss())
print(peak - base, tracemalloc.get_traced_memory()[1])
"""


def memory_of_two_epochs(path, workers, prefetch, window):
    """``(peak PSS increase of the process tree, peak numpy bytes of this process)``."""
    run = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(path), str(workers), str(prefetch), str(window)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    tree, traced = map(int, run.stdout.split())
    return tree, traced


@pytest.mark.parametrize("workers", [0, 1], ids=["thread", "process"])
def test_memory_is_bounded_by_the_windows_not_by_n(tmp_path, workers):
    # Each run in a fresh process: the PSS of the whole tree (the forked producer and the
    # shared window slots included, Arrow's and the allocators' memory too) must not grow
    # with the data; the loader's own buffers stay within the documented prefetch + 4.
    W, prefetch = 20_000, 2
    window_bytes = W * 14 * 8
    runs = {}
    for n in (80_000, 640_000):
        write_parquet_rows(tmp_path / str(n), n)
        runs[n] = memory_of_two_epochs(tmp_path / str(n), workers, prefetch, W)
    (small, small_traced), (large, large_traced) = runs[80_000], runs[640_000]
    # Holding the extra 560,000 rows would take 28 windows; allocators vary by about 3.
    assert large < small + 6 * window_bytes, (small / window_bytes, large / window_bytes)
    if workers == 0:
        assert large_traced <= (prefetch + 4) * window_bytes, large_traced / window_bytes
        assert large_traced < small_traced + window_bytes


def test_float32_batches_decode_without_loss(tmp_path):
    write_parquet_rows(tmp_path / "d", 40_000)
    loader = DataLoader(parquet_source(tmp_path / "d"), batch_size=1000, shuffle=False)
    with loader.iterate(dtype=np.float32) as it:
        batch = next(it)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, rows_with_ids(40_000, width=14).astype(np.float32)[:1000])


def test_transform_is_applied_before_batching():
    data = np.abs(rows_with_ids(500))
    loader = DataLoader(array_source(data), batch_size=100, shuffle=False, transform=np.log1p)
    np.testing.assert_allclose(np.concatenate(list(loader.iter_epoch(0))), np.log1p(data))
    wider = DataLoader(
        array_source(data),
        batch_size=100,
        sample_shape=(4,),
        transform=lambda x: np.column_stack([x, x[:, :1] ** 2]),
    )
    assert next(iter(wider)).shape == (100, 4)


def test_transform_that_changes_the_width_is_caught_at_construction():
    with pytest.raises(
        ValueError,
        match=r"sample_shape=\(3,\) holds 3 values per row, but the rows have 2 columns after the transform",
    ):
        DataLoader(
            array_source(rows_with_ids(100)),
            batch_size=10,
            sample_shape=(3,),
            transform=lambda x: x[:, :2],
        )
    with pytest.raises(ValueError, match="same number of rows"):
        DataLoader(array_source(rows_with_ids(100)), batch_size=10, transform=lambda x: x[::2])


def test_missing_values_name_the_shard_and_column(producer):
    data = rows_with_ids(1000)
    data[437, 2] = np.nan
    loader = DataLoader(
        array_source(data, columns=["id", "a", "b"], shard_rows=100), batch_size=10, **producer
    )
    with pytest.raises(
        ValueError,
        match=r"array rows 400:500: column 'b' holds 1 NaN value\(s\), first at row 37 .*transform=",
    ):
        with iter(loader) as it:
            for _ in range(200):
                next(it)
    data[437, 2] = np.inf
    with pytest.raises(ValueError, match="column 'b' holds 1 inf"):
        list(DataLoader(array_source(data, columns=["id", "a", "b"]), batch_size=10).iter_epoch(0))
    filled = DataLoader(
        array_source(data), batch_size=10, transform=lambda x: np.nan_to_num(x, posinf=0.0)
    )
    assert sum(len(b) for b in filled.iter_epoch(0)) == 1000


def test_integer_batches_require_whole_numbers():
    loader = DataLoader(
        array_source(np.array([0.0, 1.0, 1.0, 0.0])), batch_size=2, sample_shape=(), shuffle=False
    )
    with loader.iterate(dtype=np.int32, prefetch=0) as it:
        first = next(it)
    assert first.dtype == np.int32
    np.testing.assert_array_equal(first, [0, 1])
    fractional = DataLoader(
        array_source(np.array([0.0, 0.5]), columns=["label"]), batch_size=2, sample_shape=()
    )
    with pytest.raises(ValueError, match="column 'label' holds non-whole numbers"):
        with fractional.iterate(dtype=np.int32, prefetch=0) as it:
            next(it)


class CountlessSource(IterableDataset):
    """A user source that cannot tell its size before reading."""

    columns = ["x"]

    def shards(self):
        return [Shard(f"chunk {k}", None, k) for k in range(3)]

    def read_shard(self, shard, dtype=np.float64):
        yield np.arange(shard.key * 10, shard.key * 10 + 10, dtype=dtype)[:, None]


class FailingSource(IterableDataset):
    """A user source whose second shard cannot be read: it raises ``error``."""

    columns = ["x"]

    def __init__(self, error: Exception):
        self.error = error

    def shards(self):
        return [Shard(f"chunk {k}", 10, k) for k in range(3)]

    def read_shard(self, shard, dtype=np.float64):
        if shard.key == 1:
            raise self.error
        yield np.arange(shard.key * 10, shard.key * 10 + 10, dtype=dtype)[:, None]


@pytest.mark.parametrize("workers", [0, 1], ids=["thread", "process"])
@pytest.mark.parametrize(
    "error",
    [EOFError("chunk 1 ends early"), ConnectionResetError(104, "chunk 1: reset by peer")],
    ids=["EOFError", "OSError"],
)
def test_a_source_error_reaches_the_consumer_with_its_message(workers, error):
    # A closed pipe raises these too: the worker must not take them for the consumer's
    # close and end quietly, which left a bare EOFError.
    loader = DataLoader(FailingSource(error), batch_size=5, shuffle=False, workers=workers)
    with pytest.raises(type(error), match="chunk 1"):
        list(loader)


class ReadError(Exception):
    """An error whose ``__init__`` takes two arguments: it pickles, but does not unpickle."""

    def __init__(self, where: str, code: int):
        super().__init__(f"cannot read {where}: code {code}")


def test_a_source_error_that_does_not_unpickle_keeps_its_type_and_message(monkeypatch):
    # The consumer got "TypeError: ReadError.__init__() missing 1 required positional
    # argument", raised while unpickling, instead of the error.
    # dask.distributed, once imported by an earlier test, registers tblib's reducer for
    # every exception class, with which ReadError unpickles whole: take it out here.
    monkeypatch.delitem(copyreg.dispatch_table, ReadError, raising=False)
    source = FailingSource(ReadError("chunk 1", 7))
    loader = DataLoader(source, batch_size=5, shuffle=False, workers=1)
    with pytest.raises(RuntimeError, match=r"^ReadError: cannot read chunk 1: code 7$"):
        list(loader)


@pytest.mark.parametrize("workers", [0, 1], ids=["thread", "process"])
def test_a_file_removed_after_the_loader_was_built_is_named(tmp_path, workers):
    for k in range(3):
        table = pa.table({"x": np.arange(100.0) + 100 * k})
        pq.write_table(table, tmp_path / f"part-{k}.parquet")
    loader = DataLoader(parquet_source(tmp_path), batch_size=10, shuffle=False, workers=workers)
    (tmp_path / "part-1.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"part-1\.parquet"):
        list(loader)


def test_user_source_without_row_counts():
    loader = DataLoader(CountlessSource(), batch_size=4, total_size=None, seed=0)
    assert loader.num_rows is None and loader.batches_per_epoch is None
    ids = np.concatenate(list(loader.iter_epoch(0)))[:, 0]
    np.testing.assert_array_equal(np.sort(ids), np.arange(30))
    with loader.iterate() as it:
        got = [next(it) for _ in range(9)]
    assert [len(b) for b in got] == [4] * 7 + [2] + [4]


def started_by(action):
    """The threads and child processes that ``action()`` started, alive or not."""
    threads, children = set(threading.enumerate()), {p.pid for p in psutil.Process().children()}
    result = action()
    new_threads = [t for t in threading.enumerate() if t not in threads]
    new_children = [p for p in psutil.Process().children() if p.pid not in children]
    return result, new_threads, new_children


@pytest.mark.parametrize(
    "kwargs, names",
    [
        ({"prefetch": 2, "workers": 0}, {"pymc-prefetch", "pymc-decode"}),
        ({"workers": 1}, set()),
    ],
    ids=["thread", "process"],
)
def test_producers_stop_and_are_reaped_on_close(kwargs, names):
    loader = DataLoader(array_source(rows_with_ids(1_000_000)), batch_size=10, **kwargs)

    def start():
        it = loader.iterate()
        next(it)
        return it

    it, threads, children = started_by(start)
    assert {t.name for t in threads} == names
    assert len(children) == kwargs.get("workers", 0)
    processes = {p.pid: p for p in live_workers()}
    it.close()
    assert not any(t.is_alive() for t in threads)
    # A stopped worker exits by itself, and multiprocessing reaps it: no zombie is left.
    for child in children:
        assert exit_code(processes[child.pid]) == 0
        assert not psutil.pid_exists(child.pid) or child.status() != psutil.STATUS_ZOMBIE
    assert not live_workers()


def live_workers() -> list:
    """The prefetch workers alive; asking reaps those that have exited."""
    return [p for p in multiprocessing.active_children() if p.name == "pymc-prefetch"]


def exit_code(process, timeout: float = 5.0) -> int | None:
    """The exit code of ``process`` once it has exited (None if it has not, in ``timeout`` s).

    ``close()`` returns once a worker has stopped and closed its files; it exits by itself
    right after."""
    process.join(timeout)
    return process.exitcode


def started_worker(loader):
    """An iterator of ``loader`` that has handed out its first batch, and its worker."""

    def start():
        it = loader.iterate()
        next(it)
        return it

    it, _, (child,) = started_by(start)
    return it, next(p for p in live_workers() if p.pid == child.pid)


def test_a_worker_ends_on_close_while_a_later_one_runs():
    # The later worker was forked holding copies of the first one's pipes: the first one
    # must stop without seeing them close, not be killed after 10 s.
    loader = DataLoader(array_source(rows_with_ids(1_000_000)), batch_size=10, workers=1)
    first, first_worker = started_worker(loader)
    second, second_worker = started_worker(loader)
    first.close()
    assert exit_code(first_worker) == 0  # it left by itself: not terminated
    assert second_worker.is_alive()
    second.close()
    assert exit_code(second_worker) == 0


def test_a_forked_child_that_exits_leaves_the_worker_alone():
    # pm.sample(cores=2) forks such children. One that closes, collects or runs the exit
    # hooks on its copy of the iterator must not stop this process's worker.
    loader = DataLoader(
        array_source(rows_with_ids(1_000_000)), batch_size=10, workers=1, shuffle=False
    )
    with loader.iterate() as it:
        first = next(it)
        child = multiprocessing.get_context("fork").Process(target=it.close)
        child.start()
        child.join()
        assert child.exitcode == 0
        # Past the windows produced before the fork.
        last = [next(it) for _ in range(60_000)][-1]
    np.testing.assert_array_equal(first[:, 0], np.arange(10.0))
    np.testing.assert_array_equal(last[:, 0], np.arange(600_000.0, 600_010.0))  # batch 60,000


NON_DAEMON_SCRIPT = """
import threading
import numpy as np
from pymc.variational.streaming import DataLoader, array_source

loader = DataLoader(array_source(np.arange(400_000.0)), batch_size=100, sample_shape=(),
                    workers=1)
seen = []

def read():
    for _ in range(3):
        seen.append(sum(len(b) for b in loader))
    print(seen, flush=True)

threading.Thread(target=read).start()
"""


def test_a_worker_read_by_a_thread_outlives_the_main_thread():
    # Python waits for non-daemon threads at exit: their workers must not be closed first.
    done = subprocess.run(
        [sys.executable, "-c", NON_DAEMON_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[400000, 400000, 400000]"


EXIT_HOOK_SCRIPT = """
import gc
import numpy as np
import pymc.variational.streaming.prefetch as prefetch
from pymc.variational.streaming import DataLoader, array_source

closing = prefetch._close_live_workers
prefetch._close_live_workers = lambda: print("exit hook", flush=True) or closing()
loader = DataLoader(array_source(np.arange(1000.0)), batch_size=10, sample_shape=(), workers=1)
for _ in range(3):  # each worker is closed and collected before the next one starts
    with loader.iterate() as it:
        next(it)
    del it
    gc.collect()
"""


def test_the_exit_hook_is_registered_once():
    done = subprocess.run(
        [sys.executable, "-c", EXIT_HOOK_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["exit hook"]


def test_a_worker_ends_on_close_after_a_fork_made_elsewhere():
    # The pool's process holds copies of the worker's pipes: closing them is not enough.
    loader = DataLoader(array_source(rows_with_ids(1_000_000)), batch_size=10, workers=1)
    it, worker = started_worker(loader)
    pool = multiprocessing.get_context("fork").Pool(1)
    try:
        assert pool.apply(sum, ([1, 2],)) == 3
        it.close()
        assert exit_code(worker) == 0  # it left by itself: not terminated after 10 s
    finally:
        pool.close()
        pool.join()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
        (
            {"batch_size": 4, "persistent_workers": 1},
            TypeError,
            "persistent_workers must be True or False, got 1",
        ),
        ({"batch_size": -5}, ValueError, "batch_size must be a positive integer"),
        ({"batch_size": 2.5}, ValueError, "batch_size must be a positive integer"),
        (
            {"batch_size": 4, "total_size": "all"},
            ValueError,
            'total_size must be "auto", a positive int or None',
        ),
        (
            {"batch_size": 4, "total_size": 1.5},
            ValueError,
            'total_size must be "auto", a positive int or None',
        ),
        (
            {"batch_size": 4, "sample_shape": (2,)},
            ValueError,
            r"sample_shape=\(2,\) holds 2 values per row, but the rows have 3 columns",
        ),
        ({"batch_size": 4, "buffer_size": 0}, ValueError, "buffer_size must be a positive integer"),
        ({"batch_size": 4, "seed": -1}, ValueError, "seed must be a non-negative integer"),
        ({"batch_size": 400, "drop_last": True}, ValueError, "every batch would be dropped"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        DataLoader(array_source(rows_with_ids(100)), **kwargs)


def test_source_must_be_a_dataset():
    with pytest.raises(TypeError, match="wrap in-memory arrays with array_source"):
        DataLoader(np.zeros((10, 2)), batch_size=2)


def test_fields_yield_named_arrays(producer):
    data = rows_with_ids(1000, width=4)
    data[:, 3] = np.arange(1000) % 2
    source = array_source(data, columns=["id", "a", "b", "label"], shard_rows=128)
    loader = DataLoader(
        source, batch_size=64, fields={"X": ["id", "b"], "y": "label"}, seed=1, **producer
    )
    assert loader.field_shapes == {"X": (2,), "y": ()}
    with loader.iterate(dtype={"X": np.float64, "y": np.int32}) as it:
        batches = [next(it) for _ in range(16)]
    for batch in batches:
        assert set(batch) == {"X", "y"} and batch["y"].dtype == np.int32
        ids = batch["X"][:, 0].astype(int)
        np.testing.assert_array_equal(batch["X"], data[ids][:, [0, 2]])
        np.testing.assert_array_equal(batch["y"], ids % 2)
    ids = np.concatenate([b["X"][:, 0] for b in batches])
    np.testing.assert_array_equal(np.sort(ids), np.arange(1000))
    assert [len(b["y"]) for b in batches] == [64] * 15 + [40]


def test_fields_check_their_columns_and_dtypes():
    data = np.column_stack([np.arange(10.0), np.full(10, 0.5)])
    source = array_source(data, columns=["x", "label"])
    with pytest.raises(
        KeyError, match=r"field 'y' names column 'lbl'.*available columns: \['x', 'label'\]"
    ):
        DataLoader(source, batch_size=5, fields={"X": ["x"], "y": "lbl"})
    with pytest.raises(ValueError, match="either sample_shape or fields"):
        DataLoader(source, batch_size=5, sample_shape=(2,), fields={"y": "label"})
    loader = DataLoader(source, batch_size=5, fields={"X": ["x"], "y": "label"})
    with pytest.raises(
        ValueError,
        match=r"array rows 0:10: column 'label' holds non-whole numbers \(0.5 at row 0 .*field 'y' \(an int32 placeholder\)",
    ):
        list(loader.iter_epoch(0, dtype={"X": np.float64, "y": np.int32}))


def test_parquet_shards_are_permuted_anew_each_epoch(tmp_path):
    # 8 files of 2 row groups: 16 shards of 1000 rows. Windows of one row group make each
    # window one shard, so the rows of window k are those of the epoch's k-th shard.
    data = rows_with_ids(16_000)
    for k in range(8):
        part = data[k * 2000 : (k + 1) * 2000]
        table = pa.table({f"c{j}": part[:, j] for j in range(3)})
        pq.write_table(table, tmp_path / f"part-{k}.parquet", row_group_size=1000)
    source = parquet_source(tmp_path)
    loader = DataLoader(source, batch_size=100, buffer_size=1000, seed=9)
    orders = []
    for epoch in range(3):
        order = loader.shard_order(epoch)
        assert sorted(s.name for s in order) == sorted(s.name for s in source.shards())
        ids = np.concatenate([b[:, 0] for b in loader.iter_epoch(epoch)])
        for k, shard in enumerate(order):
            expected = np.concatenate(list(source.read_shard(shard)))[:, 0]
            np.testing.assert_array_equal(
                np.sort(ids[k * 1000 : (k + 1) * 1000]), np.sort(expected)
            )
        orders.append([s.name for s in order])
    assert orders[0] != orders[1] != orders[2] != orders[0]
    again = DataLoader(parquet_source(tmp_path), batch_size=100, buffer_size=1000, seed=9)
    assert [s.name for s in again.shard_order(1)] == orders[1]


def test_windows_are_permuted_anew_each_epoch():
    # One shard, so the shard order cannot change the batches: window k of every epoch
    # holds rows [k * W, (k + 1) * W), in the permutation drawn for (seed, epoch, k).
    n, B, W, seed = 3000, 50, 500, 11
    loader = DataLoader(
        array_source(rows_with_ids(n), shard_rows=n), batch_size=B, buffer_size=W, seed=seed
    )
    orders = []
    for epoch in range(3):
        ids = epoch_ids(loader, epoch).reshape(n // W, W)
        for k, window in enumerate(ids):
            np.testing.assert_array_equal(window, k * W + window_permutation(seed, epoch, k, W))
        orders.append(ids)
    for a, b in itertools.combinations(orders, 2):  # no window keeps its order
        assert all(not np.array_equal(x, y) for x, y in zip(a, b))

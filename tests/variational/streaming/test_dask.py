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
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pymc as pm

distributed = pytest.importorskip("dask.distributed")
dd = pytest.importorskip("dask.dataframe")

import dask  # noqa: E402

from pymc.variational.streaming import (  # noqa: E402
    DataLoader,
    Trainer,
    dask_source,
    parquet_source,
)
from pymc.variational.streaming.blocks import iter_blocks  # noqa: E402
from pymc.variational.streaming.dask import DaskSource  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def frame(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    missing = rng.random(n) < 0.1
    return pd.DataFrame(
        {
            "id": rng.permutation(n).astype(np.int64),
            "x": rng.normal(size=n),
            "z": rng.normal(size=n).astype(np.float32),
            "k": pd.array(np.where(missing, None, rng.integers(0, 9, n)), dtype="Int64"),
            "flag": rng.random(n) < 0.5,
            "name": [f"row{i}" for i in range(n)],
        }
    )


NUMERIC = ["id", "x", "z", "k", "flag"]


def fill(x):
    return np.nan_to_num(x, nan=-1.0)


def epoch_rows(loader, epoch=0):
    return np.concatenate(list(loader.iter_epoch(epoch)))


def sorted_by_id(rows):
    return rows[np.argsort(rows[:, 0])]


def test_one_epoch_matches_parquet_source(client, tmp_path):
    df = frame()
    for k, part in enumerate(np.array_split(np.arange(len(df)), 3)):
        table = pa.Table.from_pandas(df.iloc[part], preserve_index=False)
        pq.write_table(table, tmp_path / f"part-{k}.parquet", row_group_size=400)
    ddf = dd.read_parquet(str(tmp_path))
    source = dask_source(ddf, columns=NUMERIC)
    loader = DataLoader(source, batch_size=128, buffer_size=512, seed=5, transform=fill, workers=0)
    rows = epoch_rows(loader)
    assert len(rows) == len(df)
    np.testing.assert_array_equal(np.sort(rows[:, 0]), np.arange(len(df)))  # each row once
    reference = DataLoader(
        parquet_source(tmp_path, columns=NUMERIC), batch_size=100, seed=1, transform=fill
    )
    np.testing.assert_array_equal(sorted_by_id(rows), sorted_by_id(epoch_rows(reference)))
    # Nulls arrive as NaN when no transform fills them.
    block = np.concatenate([b for s in source.shards() for b in source.read_shard(s, np.float32)])
    assert block.dtype == np.float32
    assert np.isnan(block[:, 3]).sum() == df["k"].isna().sum()


def test_len_and_shards_follow_the_partitions(client):
    df = frame(2000)
    ddf = dd.from_pandas(df, npartitions=6)
    source = dask_source(ddf, columns=["x", "z"])
    loader = DataLoader(source, batch_size=64, workers=0)
    lengths = [len(p) for p in ddf.partitions]
    assert len(loader) == len(df) == source.num_rows
    assert [s.num_rows for s in source.shards()] == lengths
    assert source.shards()[3].name == "dask partition 3 of 6"
    fp = source.fingerprint()
    assert (
        fp["npartitions"] == 6 and fp["partition_rows"] == lengths and fp["columns"] == ["x", "z"]
    )
    other = DataLoader(
        dask_source(ddf.repartition(npartitions=4), columns=["x", "z"]), batch_size=64, workers=0
    )
    with pytest.raises(ValueError, match="different data"):
        other.load_state_dict(loader.state_dict())


def recorded_order(loader, epoch):
    source, order = loader.source, []
    read_shard = DaskSource.read_shard

    def record(shard, dtype=np.float64):
        order.append(shard.name)
        return read_shard(source, shard, dtype)

    source.read_shard = record
    try:
        rows = epoch_rows(loader, epoch)
    finally:
        del source.read_shard
    assert len(rows) == source.num_rows
    return order


def test_partition_order_is_shuffled_per_epoch_and_reproducible(client):
    ddf = dd.from_pandas(frame(1600), npartitions=8)

    def make(seed):
        return DataLoader(
            dask_source(ddf, columns=["id", "x"]), batch_size=100, seed=seed, workers=0
        )

    loader = make(11)
    first, second = recorded_order(loader, 0), recorded_order(loader, 1)
    assert sorted(first) == sorted(second) == sorted(s.name for s in loader.source.shards())
    assert first != second
    assert first == [s.name for s in loader.shard_order(0)]
    again = make(11)
    assert recorded_order(again, 1) == second and recorded_order(again, 0) == first
    assert recorded_order(make(12), 0) != first


def test_lookahead_computes_the_next_partitions_on_the_cluster(client):
    ddf = dd.from_pandas(frame(1600), npartitions=8)
    source = dask_source(ddf, columns=["id", "x"], lookahead=2)
    loader = DataLoader(source, batch_size=100, seed=3, workers=0)
    order = [s.key for s in loader.shard_order(0)]
    blocks = iter_blocks(loader.plan(), 0)
    next(blocks)  # reads the first partition of the epoch
    assert set(source.futures) == set(order[1:3])
    futures = list(source.futures.values())
    distributed.wait(futures, timeout=30)
    assert all(f.status == "finished" for f in futures)
    assert all(client.who_has(futures)[f.key] for f in futures)  # held by the workers
    for _ in blocks:
        assert len(source.futures) <= source.lookahead + 1
    assert source.reads == {"ahead": 8, "on_read": 0}  # every partition came from a future
    assert source.futures == {}  # released at the end of the epoch

    # Resuming mid-epoch hints from the first partition actually read.
    skip = sum(source.partition_rows[k] for k in order[:3])
    blocks = iter_blocks(loader.plan(), 0, skip + 5)
    next(blocks)
    assert set(source.futures) == set(order[4:6])
    blocks.close()
    source.prefetch_hint([])
    assert source.futures == {}


def test_without_a_distributed_scheduler_partitions_are_computed_when_read(client):
    df = frame(900)
    source = dask_source(dd.from_pandas(df, npartitions=3), columns=["id"])
    with dask.config.set(scheduler="synchronous"):
        source.prefetch_hint(source.shards())
        assert source.futures == {}
        rows = np.concatenate(list(source))
    np.testing.assert_array_equal(rows[:, 0], df["id"].to_numpy())


def test_a_failing_partition_is_named(client, tmp_path):
    df = frame(900)
    marker = tmp_path / "fail"

    def fail_once_counted(part):  # the rows are counted when the source is built
        if marker.exists() and (part["id"].to_numpy() == df["id"].to_numpy()[600]).any():
            raise RuntimeError("lost it")
        return part

    ddf = dd.from_pandas(df, npartitions=3).map_partitions(fail_once_counted)
    source = dask_source(ddf, columns=["id"])
    marker.touch()
    with pytest.raises(
        RuntimeError, match=r"computing dask partition 2 of 3 failed: RuntimeError: lost it"
    ):
        list(DataLoader(source, batch_size=100, shuffle=False).iter_epoch(0))


def test_trainer_recovers_a_normal_mean(client):
    y = np.random.default_rng(42).normal(1.7, 1.0, size=4000)
    ddf = dd.from_pandas(pd.DataFrame({"y": y}), npartitions=4).persist()
    loader = DataLoader(dask_source(ddf), batch_size=500, sample_shape=(), seed=0)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        batch = pm.Data("batch", np.zeros(loader.batch_size))
        pm.Normal("y", mu, 1.0, observed=batch, total_size=len(loader))
    trainer = Trainer(
        dataloader=loader,
        model=model,
        random_seed=1,
        progressbar=False,
        obj_optimizer=pm.adam(learning_rate=0.05),
    )
    approx = trainer.fit(1500)
    mean = approx.sample(2000, random_seed=2).posterior["mu"].values.mean()
    np.testing.assert_allclose(mean, y.mean(), atol=0.05)


def test_a_forked_worker_is_refused(client):
    source = dask_source(dd.from_pandas(frame(200), npartitions=2), columns=["x"])
    with pytest.raises(
        ValueError, match="DaskSource cannot be read from a forked worker process; use workers=0"
    ):
        DataLoader(source, batch_size=10, workers=1)


def test_bad_columns_are_named(client):
    ddf = dd.from_pandas(frame(200), npartitions=2)
    with pytest.raises(TypeError, match="column 'name' has dtype"):
        dask_source(ddf)
    with pytest.raises(KeyError, match=r"no column 'nope'; available columns: \['id', 'x'"):
        dask_source(ddf, columns=["x", "nope"])
    with pytest.raises(TypeError, match=r"dask\.dataframe\.DataFrame"):
        dask_source(frame(10))


def test_importing_the_package_does_not_import_dask():
    code = (
        "import sys, pymc.variational.streaming as s\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
        "assert s.dask_source.__module__ == 'pymc.variational.streaming.dask'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

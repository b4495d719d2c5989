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
"""The seed's own data path, hf://, end to end against a loopback Hub (hub_server.py).

The client is the real huggingface_hub ``HfFileSystem``; the Hub runs in its own process
at ``HF_ENDPOINT`` (set by conftest.py), so the URLs are the ones a user types.
"""

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clicks import click_model

from pymc.variational.streaming import (
    DataLoader,
    Trainer,
    csv_source,
    parquet_source,
)

pytest.importorskip("huggingface_hub")

COMMIT = "1f" * 20  # an older commit of the dataset, kept as its own revision directory


def click_frame(n, start=0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    logit = -1.0 + x @ np.array([0.8, -0.5, 0.3])
    return pd.DataFrame(
        {
            "id": np.arange(start, start + n, dtype=np.float64),
            "x1": x[:, 0],
            "x2": x[:, 1],
            "x3": x[:, 2],
            "county": rng.choice(["north", "south", "east"], n),
            "label": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64),
        }
    )


def write_repo(hub, name, files, revision="main", repo_json=None):
    """Parquet files (pyarrow defaults) into ``datasets/pymc-devs/<name>/<revision>/data``."""
    repo = hub.root / "datasets" / "pymc-devs" / name
    folder = repo / revision / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(files):
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False), folder / f"part-{k}.parquet"
        )
    if repo_json is not None:
        (repo / "_repo.json").write_text(json.dumps(repo_json))
    return repo


@pytest.fixture(autouse=True)
def fresh_client(hub):
    """No listing or existence cache carries over from one test to the next."""
    from huggingface_hub import HfFileSystem

    HfFileSystem.clear_instance_cache()
    hub.clear_faults()
    hub.reset_stats()
    yield


@pytest.fixture(scope="module")
def clicks(hub):
    frames = [click_frame(5000, 5000 * k, seed=k) for k in range(4)]
    repo = write_repo(hub, "clicks", frames, repo_json={"refs": {"v1": COMMIT}})
    write_repo(hub, "clicks", [click_frame(3000, 0, seed=9)], revision=COMMIT)
    (repo / "main" / "csv").mkdir()
    pd.concat(frames).drop(columns="county").to_csv(
        repo / "main" / "csv" / "clicks.csv", index=False
    )
    return pd.concat(frames, ignore_index=True)


URL = "hf://datasets/pymc-devs/clicks/data/*.parquet"
NUMERIC = ["id", "x1", "x2", "x3", "label"]


def epoch_ids(loader, epoch=0):
    return np.concatenate([b[:, 0] for b in loader.iter_epoch(epoch)])


def test_parquet_over_hf_every_row_once(clicks, hub):
    source = parquet_source(URL, columns=NUMERIC)
    loader = DataLoader(source, batch_size=700, seed=1)
    assert len(loader) == 20_000  # from the footers
    for epoch in (0, 1):
        np.testing.assert_array_equal(np.sort(epoch_ids(loader, epoch)), np.arange(20_000))
    rows = np.concatenate(list(loader.iter_epoch(0)))
    order = np.argsort(rows[:, 0])
    np.testing.assert_array_equal(rows[order], clicks[NUMERIC].to_numpy())
    assert hub.stats()["total_requests"] > 0
    # Shards name the commit they read, not a moving branch.
    assert all(
        f"clicks@{source.commits['datasets/pymc-devs/clicks@main']}/data/" in s.name
        for s in source.shards()
    )


def test_categorical_and_csv_over_hf(clicks):
    source = parquet_source(URL, columns=["county", "label"], categorical=["county"])
    assert list(source.categories["county"]) == ["east", "north", "south"]
    codes = np.concatenate(list(DataLoader(source, batch_size=1000, shuffle=False).iter_epoch(0)))[
        :, 0
    ]
    np.testing.assert_array_equal(
        np.array(["east", "north", "south"])[codes.astype(int)], clicks["county"]
    )
    csv = csv_source("hf://datasets/pymc-devs/clicks/csv/clicks.csv")
    assert csv.num_rows == 20_000
    np.testing.assert_allclose(
        np.concatenate(list(DataLoader(csv, batch_size=999, shuffle=False).iter_epoch(0))),
        clicks[NUMERIC].to_numpy(),
    )


@pytest.mark.parametrize("workers", [0, 1], ids=["thread", "process"])
def test_a_fit_over_hf_equals_the_same_fit_on_local_files(clicks, hub, tmp_path, workers):
    local = tmp_path / "local"
    shutil.copytree(hub.root / "datasets" / "pymc-devs" / "clicks" / "main" / "data", local)

    def fit(path):
        loader = DataLoader(
            parquet_source(path, columns=NUMERIC[1:]), batch_size=500, seed=3, workers=workers
        )
        model = click_model(loader, name="y")
        return Trainer(dataloader=loader, model=model, random_seed=1, progressbar=False).fit(200)

    remote, at_home = fit(URL), fit(local)
    np.testing.assert_array_equal(remote.hist, at_home.hist)
    np.testing.assert_array_equal(remote.mean.eval(), at_home.mean.eval())


def test_revisions_are_pinned_and_recorded(clicks, hub):
    old = parquet_source("hf://datasets/pymc-devs/clicks@v1/data/*.parquet", columns=NUMERIC)
    assert old.num_rows == 3000
    assert old.commits == {"datasets/pymc-devs/clicks@v1": COMMIT}
    by_sha = parquet_source(
        f"hf://datasets/pymc-devs/clicks@{COMMIT}/data/*.parquet", columns=NUMERIC
    )
    assert by_sha.fingerprint() == old.fingerprint()
    main = parquet_source(URL, columns=NUMERIC)
    loader = DataLoader(main, batch_size=1000, seed=0)
    state = loader.state_dict()
    # A checkpoint of one revision does not resume on another.
    with pytest.raises(ValueError, match="saved on different data"):
        DataLoader(old, batch_size=1000, seed=0).load_state_dict(state)


def test_a_branch_that_moves_during_a_fit_is_not_mixed_in(hub):
    repo = write_repo(hub, "moving", [click_frame(2000, 0), click_frame(2000, 2000)])
    source = parquet_source("hf://datasets/pymc-devs/moving/data/*.parquet", columns=NUMERIC)
    loader = DataLoader(source, batch_size=500, seed=0)
    # A new commit on main: the loader keeps reading the commit it was built on.
    pinned = source.commits["datasets/pymc-devs/moving@main"]
    shutil.copytree(repo / "main", repo / pinned)
    write_repo(
        hub, "moving", [click_frame(2500, 10_000, seed=5), click_frame(1500, 20_000, seed=6)]
    )
    np.testing.assert_array_equal(np.sort(epoch_ids(loader)), np.arange(4000))
    assert (
        parquet_source("hf://datasets/pymc-devs/moving/data/*.parquet", columns=NUMERIC).commits
        != source.commits
    )


@pytest.mark.parametrize(
    "fault",
    [
        {"action": "status", "status": 429, "retry_after": 1, "times": 1},
        {"action": "status", "status": 503, "times": 2},
        {"action": "cut", "cut_fraction": 0.5, "times": 1},
    ],
    ids=["429-retry-after", "503", "cut-body"],
)
def test_transient_faults_leave_rows_intact(clicks, hub, fault):
    source = parquet_source(URL, columns=NUMERIC)
    hub.add_fault(path="*/resolve/*/data/part-2.parquet", method="GET", **fault)
    np.testing.assert_array_equal(
        np.sort(epoch_ids(DataLoader(source, batch_size=800, seed=2))), np.arange(20_000)
    )
    statuses = hub.stats()["paths"]
    served = [p for p in statuses if p.endswith("part-2.parquet")]
    assert (
        served and sum(statuses[p]["requests"] for p in served) >= 2
    )  # the fault was met and retried


def test_private_repositories_and_wrong_revisions(hub, clicks, monkeypatch):
    from huggingface_hub import HfFileSystem

    secret = "hf_privatetoken1234567890"
    write_repo(hub, "private", [click_frame(1000)], repo_json={"private": True, "tokens": [secret]})
    url = "hf://datasets/pymc-devs/private/data/*.parquet"
    with pytest.raises(FileNotFoundError, match=r"pymc-devs/private.*repository not found"):
        parquet_source(url, retry=1)
    with pytest.raises(PermissionError, match=r"access refused \(HTTP 401\)"):
        parquet_source(url, storage_options={"token": "hf_wrongtoken1234567"}, retry=1)
    assert parquet_source(url, columns=NUMERIC, storage_options={"token": secret}).num_rows == 1000
    monkeypatch.setenv("HF_TOKEN", secret)
    HfFileSystem.clear_instance_cache()  # it remembers that the repository was not found
    assert parquet_source(url, columns=NUMERIC).num_rows == 1000
    with pytest.raises(FileNotFoundError, match=r"clicks@nope.*revision not found"):
        parquet_source("hf://datasets/pymc-devs/clicks@nope/data/*.parquet", retry=1)


EXIT_SCRIPT = """
import sys
from pymc.variational.streaming import DataLoader, csv_source, parquet_source

url, kind, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
source = csv_source(url) if url.endswith(".csv") else parquet_source(url)
loader = DataLoader(source, batch_size=1024, seed=0, workers=workers)
it = loader.iter_epoch(0) if kind == "iter_epoch" else iter(loader)  # kept, as a script does
batch = next(it)
print("batch", batch.shape, flush=True)
"""


@pytest.fixture(scope="module")
def many_small_files(hub):
    """40 files of 20,000 rows, as Hub exports are split: a window spans several files, so
    the producer is always between remote reads when a script exits."""
    frames = [click_frame(20_000, 20_000 * k, seed=k).drop(columns="county") for k in range(40)]
    repo = write_repo(hub, "many", frames)
    (repo / "main" / "csv").mkdir()
    pd.concat(frames[:8]).to_csv(repo / "main" / "csv" / "rows.csv", index=False)
    return repo


@pytest.mark.parametrize(
    "where, kind, workers",
    [
        ("hf://datasets/pymc-devs/many/data/*.parquet", "iter", 0),
        ("hf://datasets/pymc-devs/many/data/*.parquet", "iter", 1),
        ("hf://datasets/pymc-devs/many/data/*.parquet", "iter_epoch", 0),
        ("hf://datasets/pymc-devs/many/csv/rows.csv", "iter", 0),
        ("http", "iter", 0),
        ("local", "iter", 0),
    ],
    ids=["hf-thread", "hf-process", "hf-iter-epoch", "hf-csv", "http-thread", "local-thread"],
)
def test_a_script_that_peeks_one_batch_exits_cleanly(hub, many_small_files, where, kind, workers):
    peek_and_exit(hub, many_small_files, where, kind, workers)


def peek_and_exit(hub, many_small_files, where, kind, workers):
    """Run EXIT_SCRIPT on ``where`` over a slow link; it must print its batch and exit 0."""
    import subprocess
    import sys

    if (
        where == "http"
    ):  # the Hub's resolve URLs are plain HTTP with Range: fsspec's HTTP filesystem
        where = [
            f"{hub.url}/datasets/pymc-devs/many/resolve/main/data/part-{k}.parquet"
            for k in range(40)
        ]
    elif where == "local":
        where = str(many_small_files / "main" / "data")
    urls = where if isinstance(where, list) else [where]
    # A slow link: reads are in flight whenever the script ends.
    hub.clear_faults()
    hub.add_fault(path="*/resolve/*", method="GET", action="pass", throttle=5_000_000, times=None)
    script = EXIT_SCRIPT.replace("url = sys.argv[1]", "")
    if len(urls) > 1:
        script = script.replace(
            "source = csv_source(url) if url.endswith",
            "source = parquet_source(url.split(',')) if ',' in url else csv_source(url) if url.endswith",
        )
    run = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", script, ",".join(urls), kind, str(workers)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "batch (1024, 5)" in run.stdout, run.stderr[-3000:]
    assert "Fatal Python error" not in run.stderr, run.stderr[-3000:]
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, workers",
    [("iter", 0), ("iter", 1), ("iter_epoch", 0)],
    ids=["thread", "process", "iter-epoch"],
)
def test_scripts_that_peek_one_batch_exit_cleanly_every_time(hub, many_small_files, kind, workers):
    # Where the producer stands when the interpreter finalizes varies from run to run:
    # a crash that one run in several hits is caught only by repeating them.
    for _ in range(10):
        peek_and_exit(
            hub, many_small_files, "hf://datasets/pymc-devs/many/data/*.parquet", kind, workers
        )


def test_a_fit_of_many_epochs_downloads_each_byte_once(hub):
    # With the row cache (on by default), the first epoch downloads and decodes every
    # file and later epochs read the local rows: over 12 epochs, each file's bytes were
    # sent once, but for the footer, read once when the source is built and once more
    # with the data (at most pyarrow's 64 KiB footer read).
    repo = write_repo(hub, "cached", [click_frame(4000, 4000 * k, seed=k) for k in range(3)])
    sizes = {
        f"part-{k}.parquet": (repo / "main" / "data" / f"part-{k}.parquet").stat().st_size
        for k in range(3)
    }
    source = parquet_source("hf://datasets/pymc-devs/cached/data/*.parquet", columns=NUMERIC[1:])
    loader = DataLoader(source, batch_size=1000, seed=0)
    trainer = Trainer(
        dataloader=loader,
        model=click_model(loader, name="y"),
        random_seed=1,
        progressbar=False,
        convergence=None,
    )
    trainer.fit(12 * loader.batches_per_epoch)
    assert trainer.state.epoch == 12
    sent = {
        path.rsplit("/", 1)[-1]: stats["bytes"]
        for path, stats in hub.stats()["paths"].items()
        if "/resolve/" in path
    }
    assert set(sent) == set(sizes)
    for name, size in sizes.items():
        assert size <= sent[name] <= size + 65_536, (name, size, sent[name])

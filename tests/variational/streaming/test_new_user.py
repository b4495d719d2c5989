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
"""What a new user hits, tried the way users do it: pandas-written CSV, pyarrow-default
parquet, the common PyMC idioms and the common mistakes."""

import logging
import re
import shutil
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytensor.tensor as pt
import pytest

from clicks import click_model, click_rows

import pymc as pm

from pymc.variational.streaming import (
    Convergence,
    DataLoader,
    EarlyStopping,
    Trainer,
    array_source,
    column_stats,
    csv_source,
    parquet_source,
)


def write_default_parquet(folder, frame, files=2):
    """As pandas and pyarrow write it: snappy, dictionary pages, default row groups."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(np.array_split(np.arange(len(frame)), files)):
        pq.write_table(
            pa.Table.from_pandas(frame.iloc[part], preserve_index=False),
            folder / f"part-{k}.parquet",
        )
    return folder


# ----------------------------------------------------------------------------- silent wrong answers


def test_pandas_csv_with_line_breaks_in_a_text_column(tmp_path):
    n = 5000
    X, y = click_rows(n)
    notes = ["said:\n'hello, world'" if i % 10 == 0 else "plain" for i in range(n)]
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "note": notes, "label": y})
    frame.to_csv(tmp_path / "clicks.csv", index=False)
    loader = DataLoader(
        csv_source(tmp_path / "clicks.csv", columns=["a", "b", "c", "label"]), batch_size=512
    )
    assert len(loader) == n
    rows = np.concatenate(list(loader))  # a whole epoch: no "data changed" error
    assert len(rows) == n
    order = np.argsort(rows[:, 0])
    np.testing.assert_allclose(rows[order], np.column_stack([X, y])[np.argsort(X[:, 0])])


def test_a_csv_header_starting_with_a_hash_is_still_a_header(tmp_path):
    # Tools such as bcftools write "#CHROM\tPOS..." headers: only a '#' line with fewer
    # fields than the next one is taken for a comment.
    (tmp_path / "data.tsv").write_text("#id\tx\n1\t0.5\n2\t1.5\n")
    source = csv_source(tmp_path / "data.tsv", delimiter="\t")
    assert source.column_names == ["#id", "x"]
    loader = DataLoader(source, batch_size=2, shuffle=False)
    np.testing.assert_array_equal(next(iter(loader)), [[1.0, 0.5], [2.0, 1.5]])


def rate(b, batch):
    return pm.math.exp(b[0] + b[1] * batch[:, 0])


# The likelihood of each family, given the coefficients and the batch placeholder.
FAMILIES = {
    "bernoulli": lambda b, batch, **kw: pm.Bernoulli("y", logit_p=b[0] + b[1] * batch[:, 0], **kw),
    "poisson": lambda b, batch, **kw: pm.Poisson("y", rate(b, batch), **kw),
    # zero-inflated, hurdle and truncated likelihoods are not plain RandomVariables: their
    # support comes from their components (a negative count gave a NaN loss before)
    "zero-inflated-poisson": lambda b, batch, **kw: pm.ZeroInflatedPoisson(
        "y", psi=0.7, mu=rate(b, batch), **kw
    ),
    "zero-inflated-binomial": lambda b, batch, **kw: pm.ZeroInflatedBinomial(
        "y", psi=0.7, n=3, p=pm.math.sigmoid(b[0] + b[1] * batch[:, 0]), **kw
    ),
    "hurdle-poisson": lambda b, batch, **kw: pm.HurdlePoisson(
        "y", psi=0.7, mu=rate(b, batch), **kw
    ),
    "truncated-poisson": lambda b, batch, **kw: pm.Truncated(
        "y", pm.Poisson.dist(rate(b, batch)), upper=1, **kw
    ),
}


def outside(value: str, rule: str) -> str:
    return rf"holds {value} at row 37 of the shard, outside the support of observed variable 'y'.*{rule}"


@pytest.mark.parametrize(
    "label, family, match",
    [
        pytest.param(label, family, match, id=family)
        for label, family, match in [
            (2.0, "bernoulli", outside(r"2\.0", "from 0 to 1")),
            (-1.0, "poisson", outside(r"-1\.0", ">= 0")),
            (-1.0, "zero-inflated-poisson", outside(r"-1\.0", ">= 0")),
            (4.0, "zero-inflated-binomial", outside(r"4\.0", "from 0 to 3")),
            (-1.0, "hurdle-poisson", outside(r"-1\.0", ">= 0")),
            (2.0, "truncated-poisson", outside(r"2\.0", "from 0 to 1")),
        ]
    ],
)
def test_labels_outside_the_support_name_the_file_and_row(tmp_path, label, family, match):
    X, y = click_rows(2000)
    y[1037] = label  # row 37 of the second file
    path = write_default_parquet(tmp_path / "d", pd.DataFrame({"x": X[:, 0], "y": y}))
    loader = DataLoader(parquet_source(path), batch_size=100, seed=0)
    with pm.Model() as model:
        b = pm.Normal("b", 0, 1, shape=2)
        batch = pm.Data("batch", np.zeros((100, 2)))
        FAMILIES[family](b, batch, observed=batch[:, 1], total_size=len(loader))
    trainer = Trainer(dataloader=loader, model=model, progressbar=False)
    with pytest.raises(ValueError, match=r"part-1\.parquet.*column 'y' " + match):
        trainer.fit(100)


def test_a_label_beyond_the_first_read_block_of_a_row_group_is_checked(tmp_path):
    # pyarrow's default row group holds up to a million rows, more than one read block
    # (65,536 rows): the later blocks of a shard are checked too, rows counted from its start.
    X, y = click_rows(70_000)
    y[68_123] = 2.0
    path = write_default_parquet(tmp_path / "d", pd.DataFrame({"x": X[:, 0], "y": y}), files=1)
    source = parquet_source(path)
    assert [s.num_rows for s in source.shards()] == [70_000]
    loader = DataLoader(source, batch_size=1000, seed=0)
    with pm.Model() as model:
        b = pm.Normal("b", 0, 1, shape=2)
        batch = pm.Data("batch", np.zeros((1000, 2)))
        pm.Bernoulli(
            "y", logit_p=b[0] + b[1] * batch[:, 0], observed=batch[:, 1], total_size=len(loader)
        )
    trainer = Trainer(dataloader=loader, model=model, progressbar=False)
    with pytest.raises(
        ValueError, match=r"part-0\.parquet.*column 'y' holds 2\.0 at row 68123 of the shard"
    ):
        trainer.fit(100)


def test_an_impossible_row_with_an_unknown_support_stops_the_fit():
    # Binomial with a fitted n: the support's upper end is not a constant, so no block
    # check knows it; the infinite loss is reported instead of being averaged away.
    rows = np.column_stack([np.full(1000, 3.0)])
    rows[500, 0] = 40.0
    loader = DataLoader(
        array_source(rows, columns=["k"]), batch_size=100, sample_shape=(), shuffle=False
    )
    with pm.Model() as model:
        n = pm.Data("n", 10)
        p = pm.Beta("p", 2, 2)
        batch = pm.Data("batch", np.zeros(100))
        pm.Binomial("k", n=n * 1, p=p, observed=batch, total_size=len(loader))
    trainer = Trainer(dataloader=loader, model=model, progressbar=False)
    # Row 500 is in the sixth batch: step 6 fails, the five steps before it are kept.
    with pytest.raises(
        ValueError, match=r"loss at step 6 is infinite.*outside its likelihood's support"
    ):
        trainer.fit(20)
    assert trainer.state.step == 5 and len(trainer.approx.hist) == 5
    assert np.isfinite(trainer.approx.hist).all()


def test_missing_labels_are_not_advised_to_be_filled(tmp_path):
    X, y = click_rows(1000)
    y[10] = np.nan
    frame = pd.DataFrame({"a": X[:, 0], "label": y})
    path = write_default_parquet(tmp_path / "d", frame, files=1)
    loader = DataLoader(parquet_source(path), batch_size=100)
    with pytest.raises(
        ValueError, match=r"column 'label' holds 1 NaN value\(s\), first at row 10"
    ) as info:
        list(loader)
    message = str(info.value)
    assert "drop rows with missing labels" in message and "made-up observation" in message


def test_global_standardization_differs_from_per_block(tmp_path):
    # Two files on different scales: a transform standardizing each block would give every
    # file mean 0; global statistics keep the difference between them.
    rng = np.random.default_rng(1)
    first, second = rng.normal(0.0, 1.0, 3000), rng.normal(5.0, 2.0, 3000)
    path = write_default_parquet(
        tmp_path / "d", pd.DataFrame({"x": np.r_[first, second], "y": 1.0})
    )
    stats = column_stats(parquet_source(path))
    both = np.r_[first, second]
    np.testing.assert_allclose([stats.mean[0], stats.sd[0]], [both.mean(), both.std()], rtol=1e-12)
    assert stats.count.tolist() == [6000, 6000] and stats.missing.tolist() == [0, 0]
    loader = DataLoader(
        parquet_source(path), batch_size=1000, shuffle=False, transform=stats.standardizer(["x"])
    )
    rows = np.concatenate(list(loader))
    np.testing.assert_allclose(rows[:, 0], (both - both.mean()) / both.std())
    np.testing.assert_array_equal(rows[:, 1], 1.0)  # the label is left alone
    assert rows[:3000, 0].mean() < -0.8 and rows[3000:, 0].mean() > 0.8


# ----------------------------------------------------------------------------- traps


def test_dims_on_the_placeholder_survive_a_short_last_batch():
    X, y = click_rows(1030)
    loader = DataLoader(array_source(np.column_stack([X, y])), batch_size=100, seed=0)
    with pm.Model(coords={"row": np.arange(100), "column": ["a", "b", "c", "label"]}) as model:
        b = pm.Normal("b", 0.0, 1.5, shape=4)
        batch = pm.Data("batch", np.zeros((100, 4)), dims=("row", "column"))
        pm.Bernoulli(
            "click",
            logit_p=b[0] + pm.math.dot(batch[:, :3], b[1:]),
            observed=batch[:, 3],
            total_size=len(loader),
        )
    trainer = Trainer(dataloader=loader, model=model, progressbar=False)
    trainer.fit(11)  # the 11th batch holds 30 rows
    assert trainer.state == (11, 1, 0)
    idata = trainer.approx.sample(50)
    assert idata.posterior["b"].shape == (1, 50, 4)
    assert model["batch"].get_value().shape == (100, 4)


def test_for_batch_in_loader_is_one_epoch():
    data = np.arange(1000.0)[:, None]
    loader = DataLoader(array_source(data, shard_rows=128), batch_size=64, seed=5)
    first = np.concatenate(list(loader))[:, 0]
    second = np.concatenate([b for b in loader])[:, 0]
    np.testing.assert_array_equal(np.sort(first), np.arange(1000))
    np.testing.assert_array_equal(np.sort(second), np.arange(1000))
    assert not np.array_equal(first, second)  # each iteration is the next epoch
    np.testing.assert_array_equal(first, np.concatenate(list(loader.iter_epoch(0)))[:, 0])
    assert loader.epoch == 2


def test_peeking_at_the_loader_does_not_change_the_fit():
    def fit(peek):
        X, y = click_rows(3000)
        loader = DataLoader(array_source(np.column_stack([X, y])), batch_size=200, seed=4)
        if peek:
            next(iter(loader))
            list(loader)
        trainer = Trainer(
            dataloader=loader, model=click_model(loader), random_seed=2, progressbar=False
        )
        return trainer.fit(40).hist

    np.testing.assert_array_equal(fit(peek=False), fit(peek=True))


def test_the_loader_as_first_argument_is_explained():
    X, y = click_rows(100)
    loader = DataLoader(array_source(np.column_stack([X, y])), batch_size=10)
    with click_model(loader):
        with pytest.raises(
            TypeError, match=r"first argument is the method.*Trainer\(dataloader=loader\)"
        ):
            Trainer(loader)


def test_one_random_seed_makes_the_whole_fit_reproducible():
    def fit(random_seed):
        X, y = click_rows(3000)
        loader = DataLoader(array_source(np.column_stack([X, y])), batch_size=200)  # no seed
        trainer = Trainer(
            dataloader=loader, model=click_model(loader), random_seed=random_seed, progressbar=False
        )
        approx = trainer.fit(60)
        return approx.hist, approx.mean.eval()

    (h1, m1), (h2, m2), (h3, _) = fit(1), fit(1), fit(2)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(h1, h3)


def test_a_checkpoint_resumes_on_data_that_moved(tmp_path):
    X, y = click_rows(4000)
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": y})
    old = write_default_parquet(tmp_path / "old", frame)

    def trainer_on(path):
        loader = DataLoader(parquet_source(path), batch_size=256, seed=1)
        return Trainer(
            dataloader=loader, model=click_model(loader), random_seed=3, progressbar=False
        )

    reference = trainer_on(old).fit(60).hist
    first = trainer_on(old)
    first.fit(30)
    first.save_checkpoint(tmp_path / "fit.npz")
    new = shutil.move(old, tmp_path / "moved")
    resumed = trainer_on(new).fit(30, ckpt_path=tmp_path / "fit.npz")
    np.testing.assert_array_equal(resumed.hist, reference)
    # Changed content is refused, saying what changed, once.
    frame.loc[5, "a"] = 99.0
    write_default_parquet(tmp_path / "changed", frame)
    with pytest.raises(ValueError, match=r"saved on different data: files: item 0 was") as info:
        trainer_on(tmp_path / "changed").fit(30, ckpt_path=tmp_path / "fit.npz")
    assert str(info.value).count("item 0") == 1


def test_a_missing_checkpoint_says_how_to_start_fresh(tmp_path):
    X, y = click_rows(100)
    loader = DataLoader(array_source(np.column_stack([X, y])), batch_size=10)
    trainer = Trainer(dataloader=loader, model=click_model(loader), progressbar=False)
    with pytest.raises(
        FileNotFoundError,
        match=r"does not exist.*ckpt_path=path if os.path.exists\(path\) else None",
    ):
        trainer.fit(5, ckpt_path=tmp_path / "nope.npz")


def test_early_stopping_says_so_and_its_state_survives_a_checkpoint(tmp_path, caplog):
    X, y = click_rows(6000)
    data = np.column_stack([X, y])

    def make():
        train = DataLoader(array_source(data[:5000]), batch_size=500, seed=0)
        val = DataLoader(array_source(data[5000:]), batch_size=500, shuffle=False)
        return Trainer(
            dataloader=train,
            model=click_model(train),
            random_seed=1,
            progressbar=False,
            val_dataloader=val,
            val_check_interval=20,
            val_draws=20,
            early_stopping=EarlyStopping("val_lpd", tolerance=10.0, patience=3),
            convergence=None,  # checks count from the first (see test_validation)
        )

    trainer = make()
    trainer.fit(40)  # checks at 20 (best) and 40 (one without improvement)
    trainer.save_checkpoint(tmp_path / "fit.npz")
    resumed = make()
    with caplog.at_level(logging.INFO, logger="pymc"):
        resumed.fit(1000, ckpt_path=tmp_path / "fit.npz")
    # Two more checks end it: the one before the checkpoint counted.
    assert resumed.state.step == 80
    assert [s for s, _ in resumed.val_history] == [20, 40, 60, 80]
    assert resumed.val_history[:2] == trainer.val_history
    assert "early stopping at step 80" in resumed.stop_reason
    assert "early stopping at step 80" in caplog.text


def test_short_batches_record_their_loss_on_the_scale_of_full_ones():
    X, y = click_rows(4099)  # the last batch of each epoch holds 3 rows
    loader = DataLoader(array_source(np.column_stack([X, y])), batch_size=256, shuffle=False)
    trainer = Trainer(
        dataloader=loader, model=click_model(loader), random_seed=1, progressbar=False
    )
    hist = trainer.fit(16 * 30).hist
    short = hist[16::17][10:]  # late epochs, the optimizer settled
    full = np.delete(hist, np.s_[16::17])[-200:]
    assert len(short) == 18
    assert 0.3 < np.median(short) / np.median(full) < 3.0


def test_errors_point_at_the_fix(tmp_path):
    path = write_default_parquet(
        tmp_path / "d", pd.DataFrame({"x": [1.0, 2.0], "city": ["a", "b"]}), files=1
    )
    with pytest.raises(
        ValueError, match=r"part-0\.parquet' is a parquet file: read it with parquet_source"
    ):
        csv_source(path / "part-0.parquet")
    with pytest.raises(
        TypeError, match=r"column 'city' has type (large_)?string.*categorical=\['city'\]"
    ):
        parquet_source(path)
    source = parquet_source(path, categorical=["city"])
    loader = DataLoader(source, batch_size=2, fields={"X": ["x"], "g": "city"})
    assert "fields={'X': (1,), 'g': ()}" in repr(loader) and "sample_shape" not in repr(loader)


# ----------------------------------------------------------------------------- found trying it out


def test_csv_files_with_their_columns_in_another_order_are_read_by_name(tmp_path):
    # pandas writes each file with the frame's own column order; a directory of CSV files
    # is aligned by name, as a directory of parquet files is.
    X, y = click_rows(20)
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": y})
    frame.iloc[:10].to_csv(tmp_path / "part-0.csv", index=False)
    frame.iloc[10:][["label", "a", "b"]].to_csv(tmp_path / "part-1.csv", index=False)
    loader = DataLoader(csv_source(tmp_path), batch_size=20, shuffle=False)
    np.testing.assert_array_equal(np.concatenate(list(loader)), frame.to_numpy())
    frame.iloc[10:].rename(columns={"b": "income"}).to_csv(tmp_path / "part-1.csv", index=False)
    with pytest.raises(
        KeyError,
        match=r"CSV file '.*part-1\.csv' has no column 'b', which '.*part-0\.csv' has; "
        r"available columns: \['a', 'income', 'label'\]",
    ):
        csv_source(tmp_path)
    with pytest.raises(ValueError, match=r"column_names= renames the columns by position"):
        csv_source(tmp_path, header=True, column_names=["p", "q", "r"])


def test_a_missing_category_in_csv_is_missing_not_a_level(tmp_path):
    # pandas writes a missing text value as an empty field and reads it back as NaN.
    frame = pd.DataFrame({"county": ["a", None, "b", "a"], "x": [1.0, 2.0, 3.0, 4.0]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    source = csv_source(tmp_path / "d.csv", categorical=["county"])
    assert list(source.categories["county"]) == ["a", "b"]
    missing = r"categorical column 'county' has 1 missing value\(s\).*first at row 1.*None\]"
    with pytest.raises(ValueError, match=r"d\.csv: " + missing):
        list(DataLoader(source, batch_size=4))
    # The advice for missing features (nan_to_num) must not turn it into level 0, "a".
    with pytest.raises(ValueError, match=missing):
        list(DataLoader(source, batch_size=4, transform=lambda x: np.nan_to_num(x, nan=0.0)))
    parquet = write_default_parquet(tmp_path / "p", frame, files=1)  # the same in parquet
    with pytest.raises(ValueError, match=r"part-0\.parquet.*: " + missing):
        list(DataLoader(parquet_source(parquet, categorical=["county"]), batch_size=4))
    # A level None gives missing values a code of their own, in both formats.
    for given in (
        csv_source(tmp_path / "d.csv", categorical={"county": ["a", "b", None]}),
        parquet_source(parquet, categorical={"county": ["a", "b", None]}),
    ):
        rows = np.concatenate(list(DataLoader(given, batch_size=4, shuffle=False)))
        np.testing.assert_array_equal(rows, [[0, 1], [2, 2], [1, 3], [0, 4]])


def test_the_standardizer_refuses_rows_of_other_columns(tmp_path):
    path = write_default_parquet(
        tmp_path / "d", pd.DataFrame({"x1": [1.0, 2.0, 4.0], "x2": [5.0, 7.0, 9.0], "n": 3.0})
    )
    scale = column_stats(parquet_source(path)).standardizer(columns=["x2"])
    # The loader reads two of the three columns: x2 is not where the statistics put it.
    with pytest.raises(
        ValueError,
        match=r"part-0\.parquet \(row group 0\): standardizer: expected rows of the 3 columns "
        r"the statistics describe \(\['x1', 'x2', 'n'\]\), in that order, got an array of shape",
    ):
        DataLoader(parquet_source(path, columns=["x2", "n"]), batch_size=3, transform=scale)


def test_a_potential_on_the_streamed_data_is_not_scaled_and_says_so():
    X, y = click_rows(1000)
    loader = DataLoader(array_source(np.column_stack([X, y])), batch_size=100)
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=4)
        batch = pm.Data("batch", np.zeros((100, 4)))
        logit = b[0] + pm.math.dot(batch[:, :3], b[1:])
        pm.Potential("ll", pm.logp(pm.Bernoulli.dist(logit_p=logit), batch[:, 3]).sum())
    with pytest.warns(
        UserWarning,
        match=r"pm\.Potential 'll' depends on pm\.Data 'batch', which holds one batch at a "
        r"time, and pymc does not scale a Potential to the 1000 rows",
    ):
        Trainer(dataloader=loader, model=model, progressbar=False)


def test_a_batch_dimension_fixed_in_the_model_fails_clearly_on_the_short_batch():
    # 1030 rows in batches of 100: the 11th batch of each epoch has 30 rows.
    X, y = click_rows(1030)
    loader = DataLoader(array_source(np.column_stack([X, y])), batch_size=100, seed=0)
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=4)
        batch = pm.Data("batch", np.zeros((100, 4)))
        logit = b[0] + pm.math.dot(batch[:, :3], b[1:])
        pm.Bernoulli("click", logit_p=logit, observed=batch[:, 3], total_size=1030, shape=100)
    trainer = Trainer(dataloader=loader, model=model, random_seed=0, progressbar=False)
    with pytest.raises(
        ValueError,
        match=r"the step failed on a batch of 30 rows, the last of the epoch \(the data's 1030 "
        r"rows are not a multiple of batch_size=100\): the model fixes the batch dimension",
    ):
        trainer.fit(25)
    assert trainer.state.step == 10  # the ten full batches were stepped on and kept


def criteo_frame(criteo_tsv):
    """The real Criteo rows as pandas reads them: label, I1..I13, C1..C26."""
    names = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    return pd.read_csv(criteo_tsv, sep="\t", header=None, names=names)


def test_the_index_pandas_stores_is_not_a_column(tmp_path, criteo_tsv):
    # A split or sampled frame has a non-range index; to_parquet stores it as a column
    # (__index_level_0__), which pd.read_parquet does not return as data.
    frame = criteo_frame(criteo_tsv)[["I2", "label"]].sample(frac=0.5, random_state=0)
    frame.to_parquet(tmp_path / "train.parquet")
    assert "__index_level_0__" in pq.read_schema(tmp_path / "train.parquet").names
    source = parquet_source(tmp_path / "train.parquet")
    assert source.columns == ["I2", "label"]
    rows = np.concatenate(list(DataLoader(source, batch_size=4096, shuffle=False)))
    np.testing.assert_array_equal(rows, pd.read_parquet(tmp_path / "train.parquet").to_numpy())
    # Asked for by name, it is read.
    index = parquet_source(tmp_path / "train.parquet", columns=["__index_level_0__"])
    np.testing.assert_array_equal(read_column(index), frame.index.to_numpy())


def read_column(source):
    return np.concatenate(list(DataLoader(source, batch_size=4096, shuffle=False)))[:, 0]


def test_hidden_and_underscore_directories_are_not_data(tmp_path):
    # Jupyter's checkpoints and Spark's unfinished task files sit beside the data.
    ids = pa.table({"id": np.arange(3.0)})
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "_temporary" / "0").mkdir(parents=True)
    pq.write_table(ids, tmp_path / "part-0.parquet")
    pq.write_table(ids, tmp_path / ".ipynb_checkpoints" / "part-0-checkpoint.parquet")
    pq.write_table(ids, tmp_path / "_temporary" / "0" / "part-1.parquet")
    (tmp_path / "_SUCCESS").touch()
    for frame in ids.to_pandas(), ids.to_pandas():
        frame.to_csv(tmp_path / ".ipynb_checkpoints" / "a-checkpoint.csv", index=False)
        frame.to_csv(tmp_path / "a.csv", index=False)
    (tmp_path / "README.md").write_text("# not data\n")
    assert read_column(parquet_source(tmp_path)).tolist() == [0, 1, 2]
    assert read_column(csv_source(tmp_path)).tolist() == [0, 1, 2]


def test_a_pattern_of_partition_directories_stands_for_their_files(tmp_path):
    for year in (2023, 2024):
        (tmp_path / f"year={year}").mkdir()
        pq.write_table(pa.table({"x": [year + 0.5]}), tmp_path / f"year={year}" / "part.parquet")
    assert read_column(parquet_source(f"{tmp_path}/year=*")).tolist() == [2023.5, 2024.5]
    # The partition key is not a column: the error says so.
    with pytest.raises(KeyError, match="'year' is a partition key in the directory names"):
        parquet_source(f"{tmp_path}/year=*", columns=["x", "year"])
    (tmp_path / "empty=1").mkdir()
    with pytest.raises(FileNotFoundError, match="matches only directories, which hold no"):
        parquet_source(f"{tmp_path}/empty=*")


def test_duplicate_column_names_are_refused_not_read_twice(tmp_path):
    # pyarrow would give the first 'a' for both; pandas renames the second 'a.1'.
    (tmp_path / "d.csv").write_text("a,a,b\n1,2,3\n")
    with pytest.raises(ValueError, match=r"d\.csv' has 2 columns named 'a'.*column_names="):
        csv_source(tmp_path / "d.csv")
    renamed = csv_source(tmp_path / "d.csv", header=True, column_names=["a", "a2", "b"])
    assert np.concatenate(list(DataLoader(renamed, batch_size=1))).tolist() == [[1, 2, 3]]


def test_a_quote_that_never_closes_is_refused_not_a_lost_rest_of_file(tmp_path):
    lines = ["0\t1.0\tfoo"] * 3 + ['1\t2.0\t"bar'] + ["0\t3.0\tbaz"] * 1000
    (tmp_path / "d.tsv").write_text("\n".join(lines) + "\n")
    names = dict(delimiter="\t", column_names=["y", "x", "s"], columns=["y", "x"])
    with pytest.raises(ValueError, match=r"column 's' of row 4 .*never closes.*next 1,001 line"):
        csv_source(tmp_path / "d.tsv", **names)
    plain = csv_source(tmp_path / "d.tsv", quote_char=None, **names)
    assert plain.num_rows == 1004
    assert (
        np.concatenate(list(DataLoader(plain, batch_size=512, shuffle=False)))[:, 1].sum()
        == 3 + 2 + 3000
    )


def test_a_transform_in_place_never_changes_the_users_array():
    X = np.column_stack([np.arange(100.0), np.ones(100)])

    def double(x):
        x *= 2
        return x

    loader = DataLoader(array_source(X), batch_size=100, shuffle=False, transform=double)
    for workers in (None, 0, 1):
        for _ in range(2):  # epochs do not compound
            batch = next(iter(loader.iterate(epochs=1, workers=workers)))
            np.testing.assert_array_equal(
                batch, 2 * np.column_stack([np.arange(100.0), np.ones(100)])
            )
    np.testing.assert_array_equal(X, np.column_stack([np.arange(100.0), np.ones(100)]))


def test_decimal_and_nullable_pandas_columns_are_numbers(tmp_path):
    import decimal

    prices = pa.array([decimal.Decimal("1.25"), decimal.Decimal("-3.50")], pa.decimal128(5, 2))
    pq.write_table(pa.table({"price": prices}), tmp_path / "p.parquet")
    assert read_column(parquet_source(tmp_path / "p.parquet")).tolist() == [1.25, -3.5]
    # pandas' nullable integers: NA is a missing value, named as such.
    frame = pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64"), "b": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"column 'a' holds 1 NaN value\(s\), first at row 1"):
        list(DataLoader(array_source(frame), batch_size=3))
    with pytest.raises(TypeError, match=r"column 'c' \(dtype \w+\) is not"):
        array_source(frame.assign(c=["x", "y", "z"]))


def test_one_shard_holding_most_rows_warns_that_shuffling_is_local(tmp_path):
    # pandas' to_parquet writes one row group up to 1M rows: sorted data stays sorted.
    frame = pd.DataFrame({"x": np.arange(300_000.0), "y": np.repeat([0.0, 1.0], 150_000)})
    frame.to_parquet(tmp_path / "sorted.parquet", index=False)
    with pytest.warns(
        UserWarning, match=r"sorted\.parquet \(row group 0\) holds 300,000 of the 300,000 rows"
    ):
        DataLoader(parquet_source(tmp_path / "sorted.parquet"), batch_size=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a buffer as large as the shard, or no shuffle: silent
        DataLoader(
            parquet_source(tmp_path / "sorted.parquet"), batch_size=1000, buffer_size=300_000
        )
        DataLoader(parquet_source(tmp_path / "sorted.parquet"), batch_size=1000, shuffle=False)
        frame.to_parquet(tmp_path / "groups.parquet", index=False, row_group_size=65_536)
        DataLoader(parquet_source(tmp_path / "groups.parquet"), batch_size=1000)


@pytest.mark.parametrize("name", ["shuffle", "drop_last"])
def test_flags_given_as_text_are_refused(name):
    with pytest.raises(TypeError, match=f"{name} must be True or False, got 'no'"):
        DataLoader(array_source(np.zeros((10, 2))), batch_size=2, **{name: "no"})


@pytest.mark.parametrize("code", [-1, 5], ids=["pandas-missing-code", "one-past-the-end"])
@pytest.mark.parametrize("form", ["column", "int-field", "dims"])
def test_a_group_code_outside_the_groups_is_named_not_pooled(code, form):
    # pandas' cat.codes gives -1 to a missing category: a[-1] would silently be the last
    # group, and a code of J a bare IndexError (or a misleading short-batch message).
    rng = np.random.default_rng(0)
    J, B = 5, 200
    g = rng.integers(0, J, 4000).astype(float)
    g[1234] = code
    rows = np.column_stack([g, rng.normal(size=4000)])
    fields = {"g": "g", "y": "y"} if form == "int-field" else None
    loader = DataLoader(array_source(rows, columns=["g", "y"]), batch_size=B, fields=fields)
    coords = {"group": [f"g{j}" for j in range(J)]}
    with pm.Model(coords=coords) as model:
        a = pm.Normal("a", 0, 10, **({"dims": "group"} if form == "dims" else {"shape": J}))
        if form == "int-field":
            index, y = pm.Data("g", np.zeros(B, dtype="int64")), pm.Data("y", np.zeros(B))
        else:
            batch = pm.Data("batch", np.zeros((B, 2)))
            index, y = batch[:, 0].astype("int64"), batch[:, 1]
        pm.Normal("obs", a[index], 1, observed=y, total_size=len(loader))
    trainer = Trainer(dataloader=loader, data_name=None if fields else "batch", model=model)
    match = (
        rf"column 'g' holds {float(code)} at row 1234 .*the index of 'a' \(5 entries\).*from 0 to 4"
    )
    with pytest.raises(ValueError, match=match):
        trainer.fit(50)


def test_an_int_label_field_keeps_the_likelihoods_support_check():
    # An int32 placeholder's "whole numbers" rule replaced the Bernoulli's 0..1: a label of
    # 2 then surfaced only where the loss was computed, or not at all.
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.normal(size=4000), rng.integers(0, 2, 4000)])
    rows[5, 1] = 2.0
    loader = DataLoader(
        array_source(rows, columns=["x", "label"]),
        batch_size=200,
        shuffle=False,
        fields={"X": ["x"], "y": "label"},
    )
    with pm.Model() as model:
        b = pm.Normal("b", 0, 2, shape=2)
        X, y = pm.Data("X", np.zeros((200, 1))), pm.Data("y", np.zeros(200, dtype="int32"))
        pm.Bernoulli("click", logit_p=b[0] + X[:, 0] * b[1], observed=y, total_size=len(loader))
    trainer = Trainer(dataloader=loader, data_name=None, model=model, log_every_n_steps=10)
    with pytest.raises(ValueError, match=r"'label' holds 2\.0 at row 5 .*'click'.*from 0 to 1"):
        trainer.fit(100)


def test_an_inference_instance_and_another_model_are_refused():
    # The Trainer fits the instance's model; model= would only have chosen the placeholders
    # it fills, so the fitted model's own placeholder would have kept its zeros.
    loader = DataLoader(
        array_source(np.random.default_rng(0).normal(size=(400, 2))), batch_size=100
    )

    def build():
        with pm.Model() as model:
            b = pm.Normal("b", 0, 1, shape=2)
            batch = pm.Data("batch", np.zeros((100, 2)))
            pm.Normal(
                "y", b[0] + b[1] * batch[:, 0], 1, observed=batch[:, 1], total_size=len(loader)
            )
        return model

    first, second = build(), build()
    with pytest.raises(ValueError, match="model= names another model than the one the Inference"):
        Trainer(pm.ADVI(model=first), dataloader=loader, model=second)
    with pytest.raises(ValueError, match="inf_kwargs= and start= configure an inference"):
        Trainer(pm.ADVI(model=first), dataloader=loader, start={"b": np.zeros(2)})
    assert Trainer(pm.ADVI(model=first), dataloader=loader, model=first).model is first


def normal_rows(n=2000, width=3):
    rows = np.random.default_rng(0).normal(0.3, 1.0, size=(n, width))
    return DataLoader(array_source(rows), batch_size=100)


def test_a_free_variable_per_row_of_the_batch_is_refused():
    # A latent per row is tied to positions in the batch, which holds other rows at every
    # step: mu ended 13.7 posterior sd off after 40,000 steps, with only a "more steps" hint.
    loader = normal_rows()
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        batch = pm.Data("batch", np.zeros((100, 3)))
        z = pm.Normal("z", 0, 0.5, shape=batch.shape[0])
        pm.Normal("y", mu + z, 1.0, observed=batch[:, 0], total_size=len(loader))
    with pytest.raises(
        ValueError, match=r"free variable 'z' has a size that follows the rows of the batch"
    ):
        Trainer(dataloader=loader, model=model, progressbar=False)
    # A size from the batch's columns is fixed: one coefficient per column is fine.
    with pm.Model() as per_column:
        batch = pm.Data("batch", np.zeros((100, 3)))
        b = pm.Normal("b", 0, 1, shape=batch.shape[1] - 1)
        pm.Normal("y", pm.math.dot(batch[:, 1:], b), 1.0, observed=batch[:, 0], total_size=2000)
    trainer = Trainer(dataloader=loader, model=per_column, progressbar=False)
    assert trainer.approx.mean.eval().shape == (2,)


@pytest.mark.parametrize(
    "observed, total_size, match",
    [
        # three values per row: total_size counts values, 3 * len(loader)
        (lambda batch: batch.ravel(), 6000, None),
        (
            lambda batch: batch.ravel(),
            2000,
            r"holds 3 values per row\. .*len\(loader\) \* 3 \(= 6000\)",
        ),
        (lambda batch: batch.ravel(), None, r"total_size=len\(loader\) \* 3 \(= 6000\)"),
        # the rows of a mask: only the user knows how many there are in all the data
        (lambda batch: batch[pt.eq(batch[:, 1], 1.0).nonzero()[0], 0], 200, None),
        (
            lambda batch: batch[pt.eq(batch[:, 1], 1.0).nonzero()[0], 0],
            None,
            r"total_size=the number of values it stands for in all the data",
        ),
        (lambda batch: batch[:, 0], 2000, None),
        (lambda batch: batch[:, 0], 1999, r"Pass total_size=len\(loader\) \(= 2000\)"),
    ],
    ids=["ravel", "ravel-rows", "ravel-none", "mask", "mask-none", "rows", "rows-off"],
)
def test_total_size_advice_counts_the_values_per_row(observed, total_size, match):
    # The advice was always len(loader): for a flattened batch (3 values per row) or a
    # mask of the rows that gave sds 79% too wide or 67% too narrow, silently.
    loader = normal_rows()
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        batch = pm.Data("batch", np.zeros((100, 3)))
        pm.Normal("y", mu, 1.0, observed=observed(batch), total_size=total_size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(dataloader=loader, model=model, progressbar=False)
    said = [str(w.message) for w in caught if "total_size" in str(w.message)]
    if match is None:
        assert said == []
    else:
        assert len(said) == 1 and re.search(match, said[0]), said


@pytest.mark.parametrize(
    "options, said",
    [
        ({}, []),
        ({"method": "fullrank_advi"}, ["FullRankADVI runs pymc's plain step"]),
        ({"method": "svgd"}, ["SVGD runs pymc's plain step"]),
        (
            {"method": "fullrank_advi", "convergence": Convergence(decay_after=300)},
            [
                r"convergence=Convergence\(.*\) is not used: it applies to mean-field ADVI only",
                "FullRankADVI runs pymc's plain step",
            ],
        ),
        (
            {
                "obj_optimizer": pm.adam(learning_rate=0.01),
                "convergence": Convergence(decay_after=300),
            },
            [r"is not used: it needs its own optimizer, and this fit runs ADVI with pymc"],
        ),
    ],
    ids=["advi", "fullrank", "svgd", "fullrank-convergence", "optimizer-convergence"],
)
def test_a_fit_without_the_convergence_schedule_says_so(options, said):
    # Full-rank ADVI ended 8 posterior sd off at 1M rows after 10,000 steps, SVGD 6 sd, and
    # an explicit convergence= was dropped: all without a word.
    loader = normal_rows()
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        batch = pm.Data("batch", np.zeros((100, 3)))
        pm.Normal("y", mu, 1.0, observed=batch[:, 0], total_size=len(loader))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(dataloader=loader, model=model, progressbar=False, **options)
    messages = [
        str(w.message)
        for w in caught
        if "plain step" in str(w.message) or "is not used" in str(w.message)
    ]
    assert len(messages) == len(said), messages
    for pattern in said:
        assert any(re.search(pattern, m) for m in messages), (pattern, messages)


def test_a_placeholder_made_with_other_rows_than_batch_size_and_fixed_by_the_model():
    # The placeholder has 100 rows, the batches 50, and shape=100 fixes the batch
    # dimension: a bare SpecifyShape AssertionError with pytensor's hints came out.
    loader = DataLoader(array_source(np.ones((1000, 1))), batch_size=50)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        batch = pm.Data("batch", np.zeros((100, 1)))
        pm.Normal("y", mu, 1.0, observed=batch[:, 0], shape=100, total_size=len(loader))
    trainer = Trainer(dataloader=loader, model=model, progressbar=False)
    with pytest.raises(
        ValueError,
        match=r"pm.Data 'batch' was created with 100 rows: the model fixes the batch "
        r"dimension to 100 .*pm.Data\('batch', np.zeros\(\(50, \.\.\.\)\)\)",
    ):
        trainer.fit(10)


def test_a_fit_of_very_many_steps_is_refused_or_costs_only_the_steps_run():
    # fit(n) with a large n and a callback (or early stopping) to end it is common; the
    # loss record used to be written out in full first: 800 MB for 10**8 steps, and a
    # bare numpy MemoryError beyond the machine.
    psutil = pytest.importorskip("psutil")
    loader = DataLoader(array_source(np.ones((1000, 1))), batch_size=50)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        batch = pm.Data("batch", np.zeros((50, 1)))
        pm.Normal("y", mu, 1.0, observed=batch[:, 0], total_size=len(loader))
    trainer = Trainer(dataloader=loader, model=model, progressbar=False, convergence=None)
    with pytest.raises(
        ValueError, match=r"fit\(10,000,000,000,000,000\): no memory .*fit in parts"
    ):
        trainer.fit(10**16)
    for n in (2**62, 10**30):  # numpy's ValueErrors, beyond what an array can hold
        with pytest.raises(ValueError, match=r"no memory for a loss per step; fit in parts"):
            trainer.fit(n)
    trainer.fit(1)  # compiled, so that the next fit's growth is the record's alone

    def stop(approx, losses, step):
        if step == 31:
            raise StopIteration("enough")

    before = psutil.Process().memory_info().rss
    trainer.fit(10**8, callbacks=[stop])
    assert psutil.Process().memory_info().rss - before < 200e6
    assert trainer.stop_reason == "enough" and trainer.state.step == 31
    assert len(trainer.losses) == 31 and np.isfinite(trainer.losses).all()

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
"""Trainer.predict: posterior predictive means over streamed rows, in storage order."""

import re
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clicks import click_model, click_rows

import pymc as pm

from pymc.variational.streaming import DataLoader, Trainer, array_source, parquet_source

COLUMNS = ["a", "b", "c", "label"]


@pytest.fixture(scope="module")
def fitted():
    X, y = click_rows(20_000)
    loader = DataLoader(
        array_source(np.column_stack([X, y]), columns=COLUMNS), batch_size=500, seed=0
    )
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=4)
        batch = pm.Data("batch", np.zeros((500, 4)))
        logit = b[0] + pm.math.dot(batch[:, :3], b[1:])
        pm.Deterministic("logit", logit)
        pm.Bernoulli("click", logit_p=logit, observed=batch[:, 3], total_size=len(loader))
    trainer = Trainer(
        dataloader=loader,
        model=model,
        random_seed=1,
        progressbar=False,
        obj_optimizer=pm.adam(learning_rate=0.02),
    )
    trainer.fit(4000)
    return trainer


def new_rows(n=1234, seed=7):
    return np.random.default_rng(seed).normal(size=(n, 3))


def test_predictions_match_the_fitted_posterior(fitted):
    X = new_rows()
    loader = DataLoader(
        array_source(X, columns=COLUMNS[:3], shard_rows=300), batch_size=100, seed=3
    )
    out = fitted.predict(loader, ["click", "logit"], draws=400, random_seed=2)
    assert sorted(out) == ["click", "click_sd", "logit", "logit_sd"]
    assert all(v.shape == (1234,) for v in out.values())
    mean, sd = fitted.approx.mean.eval(), fitted.approx.std.eval()
    design = np.column_stack([np.ones(len(X)), X])
    # Mean-field ADVI: the logit is normal with this mean and sd; rows in storage order
    # although the loader shuffles.
    logit_mean, logit_sd = design @ mean, np.sqrt((design**2) @ sd**2)
    mc = logit_sd / np.sqrt(400)
    assert np.all(np.abs(out["logit"] - logit_mean) < 5 * mc)
    np.testing.assert_allclose(out["logit_sd"], logit_sd, rtol=0.25)
    p = 1 / (1 + np.exp(-logit_mean))
    np.testing.assert_allclose(out["click"], p, atol=5 * (p * (1 - p) * mc).max() + 1e-4)
    np.testing.assert_allclose(out["click_sd"], p * (1 - p) * logit_sd, rtol=0.3)


def test_predictions_written_to_parquet_equal_those_returned(fitted, tmp_path):
    X = new_rows(3000)
    loader = DataLoader(array_source(X, columns=COLUMNS[:3]), batch_size=256)
    returned = fitted.predict(loader, "click", draws=50, random_seed=5)
    path = fitted.predict(loader, "click", draws=50, random_seed=5, out=tmp_path / "p.parquet")
    table = pq.read_table(path)
    assert table.column_names == ["click", "click_sd"] and table.num_rows == 3000
    np.testing.assert_array_equal(table["click"].to_numpy(), returned["click"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.parquet"]


def test_an_error_half_way_leaves_no_file(fitted, tmp_path):
    X = new_rows(1000)
    X[900, 1] = np.nan
    pq.write_table(
        pa.table({c: X[:, j] for j, c in enumerate(COLUMNS[:3])}), tmp_path / "new.parquet"
    )
    loader = DataLoader(parquet_source(tmp_path / "new.parquet"), batch_size=100)
    with pytest.raises(ValueError, match=r"column 'b' holds 1 NaN"):
        fitted.predict(loader, "click", out=tmp_path / "p.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.parquet"]
    # The training batch placeholder holds what it held before.
    assert fitted.model["batch"].get_value().shape == (500, 4)


def test_labels_may_be_given_or_missing_but_read_columns_may_not(fitted):
    X = new_rows(500)
    with_labels = DataLoader(
        array_source(np.column_stack([X, np.zeros(500)]), columns=COLUMNS), batch_size=100
    )
    without = DataLoader(array_source(X, columns=COLUMNS[:3]), batch_size=100)
    a = fitted.predict(with_labels, "click", draws=30, random_seed=1)
    b = fitted.predict(without, "click", draws=30, random_seed=1)
    np.testing.assert_array_equal(a["click"], b["click"])
    reordered = DataLoader(array_source(X[:, ::-1], columns=COLUMNS[:3][::-1]), batch_size=100)
    np.testing.assert_array_equal(
        fitted.predict(reordered, "click", draws=30, random_seed=1)["click"], a["click"]
    )
    short = DataLoader(array_source(X[:, :2], columns=["a", "b"]), batch_size=100)
    with pytest.raises(ValueError, match=r"no column 'c', which the predictions read"):
        fitted.predict(short, "click")
    with pytest.raises(ValueError, match=r"'b' does not depend on the data"):
        fitted.predict(without, "b")
    with pytest.raises(KeyError, match=r"no variable 'clicks'"):
        fitted.predict(without, "clicks")


def test_fields_predict_without_the_label_field():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8000, 2))
    counts = rng.poisson(np.exp(0.5 + x @ np.array([0.4, -0.3])))
    data = np.column_stack([x, counts])
    loader = DataLoader(
        array_source(data, columns=["x1", "x2", "n"]),
        batch_size=400,
        fields={"X": ["x1", "x2"], "y": "n"},
        seed=0,
    )
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.0, shape=3)
        X = pm.Data("X", np.zeros((400, 2)))
        y = pm.Data("y", np.zeros(400, dtype="int64"))
        pm.Poisson(
            "n", pm.math.exp(b[0] + pm.math.dot(X, b[1:])), observed=y, total_size=len(loader)
        )
    trainer = Trainer(
        dataloader=loader,
        data_name=None,
        model=model,
        random_seed=1,
        progressbar=False,
        obj_optimizer=pm.adam(learning_rate=0.02),
    )
    trainer.fit(3000)
    new = DataLoader(
        array_source(x[:700], columns=["x1", "x2"]), batch_size=128, fields={"X": ["x1", "x2"]}
    )
    rate = trainer.predict(new, "n", draws=200, random_seed=0)["n"]
    mean = trainer.approx.mean.eval()
    np.testing.assert_allclose(rate, np.exp(mean[0] + x[:700] @ mean[1:]), rtol=0.02)


def test_the_in_memory_path_agrees(fitted):
    # For rows that fit in memory, PyMC's own way: set the placeholder, sample the
    # posterior predictive. Its click frequencies agree with predict's probabilities.
    X = new_rows(60)
    streamed = fitted.predict(
        DataLoader(array_source(X, columns=COLUMNS[:3]), batch_size=25),
        "click",
        draws=400,
        random_seed=1,
    )["click"]
    with fitted.model:
        pm.set_data({"batch": np.column_stack([X, np.zeros(60)])})
        idata = pm.sample_posterior_predictive(
            fitted.approx.sample(2000, random_seed=2),
            var_names=["click"],
            random_seed=3,
            progressbar=False,
        )
        pm.set_data({"batch": np.zeros((500, 4))})
    frequency = idata.posterior_predictive["click"].values.reshape(-1, 60).mean(axis=0)
    bound = 5 * np.sqrt(streamed * (1 - streamed) / 2000) + 0.01
    assert np.all(np.abs(frequency - streamed) < bound)


def test_predicting_without_the_fitted_transform_warns(tmp_path):
    X, y = click_rows(2000)
    data = np.column_stack([X, y])
    twice = lambda x: np.column_stack([2.0 * x[:, :3], x[:, 3:]])  # noqa: E731
    loader = DataLoader(
        array_source(data, columns=COLUMNS), batch_size=200, seed=0, transform=twice
    )
    trainer = Trainer(
        dataloader=loader, model=click_model(loader), random_seed=1, progressbar=False
    )
    trainer.fit(200)
    raw = DataLoader(array_source(X[:50], columns=COLUMNS[:3]), batch_size=50)
    with pytest.warns(UserWarning, match=r"the Trainer's DataLoader transforms its rows"):
        trainer.predict(raw, "click", draws=10, random_seed=0)
    same = DataLoader(array_source(X[:50], columns=COLUMNS[:3]), batch_size=50, transform=twice)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        trainer.predict(same, "click", draws=10, random_seed=0)


@pytest.fixture(scope="module")
def fitted_fields():
    X, y = click_rows(2000)
    loader = DataLoader(
        array_source(np.column_stack([X[:, :2], y]), columns=["x1", "x2", "label"]),
        batch_size=200,
        fields={"X": ["x1", "x2"], "y": "label"},
        seed=0,
    )
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=3)
        Xd = pm.Data("X", np.zeros((200, 2)))
        yd = pm.Data("y", np.zeros(200))
        logit = b[0] + pm.math.dot(Xd, b[1:])
        pm.Bernoulli("click", logit_p=logit, observed=yd, total_size=len(loader))
    trainer = Trainer(
        dataloader=loader,
        data_name=None,
        model=model,
        random_seed=1,
        progressbar=False,
        obj_optimizer=pm.adam(learning_rate=0.05),
    )
    trainer.fit(300)
    return trainer


def field_rows(X, columns, field):
    return DataLoader(array_source(X, columns=columns), batch_size=100, fields={"X": field})


def test_field_columns_are_matched_by_name(fitted_fields):
    X = new_rows(300)[:, :2]
    mean = fitted_fields.approx.mean.eval()
    assert abs(mean[1] - mean[2]) > 0.5  # swapped columns would change the predictions
    kw = {"draws": 20, "random_seed": 4}
    p = fitted_fields.predict(field_rows(X, ["x1", "x2"], ["x1", "x2"]), "click", **kw)
    # The field lists its columns in another order; or the file stores them in another.
    listed = fitted_fields.predict(field_rows(X, ["x1", "x2"], ["x2", "x1"]), "click", **kw)
    stored = fitted_fields.predict(
        field_rows(X[:, ::-1], ["x2", "x1"], ["x2", "x1"]), "click", **kw
    )
    np.testing.assert_allclose(listed["click"], p["click"], rtol=1e-12)
    np.testing.assert_allclose(stored["click"], p["click"], rtol=1e-12)
    logit = mean[0] + X @ mean[1:]
    np.testing.assert_allclose(p["click"], 1 / (1 + np.exp(-logit)), atol=0.05)


@pytest.mark.parametrize(
    "field, message",
    [
        (
            ["age", "income"],
            "field 'X' has columns ['age', 'income'] in the prediction loader and ['x1', 'x2'] "
            "in the Trainer's (it lacks ['x1', 'x2']): a field needs the same columns, in any "
            "order",
        ),
        (
            ["x1"],
            "field 'X' has columns ['x1'] in the prediction loader and ['x1', 'x2'] in the "
            "Trainer's (it lacks ['x2']): a field needs the same columns, in any order",
        ),
        (
            ["x2", "x1", "age"],
            "field 'X' has columns ['x2', 'x1', 'age'] in the prediction loader and ['x1', "
            "'x2'] in the Trainer's: a field needs the same columns, in any order",
        ),
    ],
    ids=["other", "missing", "extra"],
)
def test_a_field_of_other_columns_is_refused(fitted_fields, field, message):
    columns = ["age", "income"] if "income" in field else ["x1", "x2", "age"]
    loader = field_rows(new_rows(100)[:, : len(columns)], columns, field)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fitted_fields.predict(loader, "click")


def categorical_trainer():
    """An unfitted Trainer of a Categorical, and 150 rows of its feature to predict for."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    data = np.column_stack([x, rng.integers(0, 3, 400)])
    loader = DataLoader(array_source(data, columns=["x", "c"]), batch_size=100, seed=0)
    with pm.Model() as model:
        w = pm.Normal("w", 0.0, 1.0, shape=3)
        batch = pm.Data("batch", np.zeros((100, 2)))
        eta = pm.Deterministic("eta", batch[:, 0][:, None] * w[None, :])
        pm.Categorical("c", logit_p=eta, observed=batch[:, 1], total_size=len(loader))
    trainer = Trainer(dataloader=loader, model=model, random_seed=1, progressbar=False)
    return trainer, DataLoader(array_source(x[:150, None], columns=["x"]), batch_size=100)


def test_an_observed_variable_without_a_mean_gets_the_hint():
    trainer, rows = categorical_trainer()
    message = (
        "'c''s likelihood has no expected value (The mean of the Categorical distribution is "
        "undefined); predict a pm.Deterministic instead, such as its probabilities or its "
        "linear predictor"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        trainer.predict(rows, "c")


def test_draws_may_be_a_numpy_integer():
    trainer, rows = categorical_trainer()
    a = trainer.predict(rows, "eta", draws=np.int64(7), random_seed=0)["eta"]
    b = trainer.predict(rows, "eta", draws=7, random_seed=0)["eta"]
    assert a.shape == (150, 3)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"^draws must be a positive integer, got True$"):
        trainer.predict(rows, "eta", draws=True)


GROUP_EFFECTS = {"a": -2.0, "b": -1.0, "c": 1.0, "d": 2.0}


@pytest.fixture(scope="module")
def fitted_groups(tmp_path_factory):
    """A Normal mean per group, the groups read as categorical codes of column g."""
    folder = tmp_path_factory.mktemp("groups")
    rng = np.random.default_rng(3)
    g = rng.choice(list(GROUP_EFFECTS), 4000)
    y = np.array([GROUP_EFFECTS[k] for k in g]) + rng.normal(0.0, 0.5, 4000)
    pq.write_table(pa.table({"g": g, "y": y}), folder / "train.parquet")
    return group_trainer(folder / "train.parquet", groups=4, batch_size=400, steps=1500), folder


def group_trainer(path, groups, batch_size, steps):
    """A Normal mean per group of column g (categorical codes), fitted on ``path``."""
    loader = DataLoader(parquet_source(path, categorical=["g"]), batch_size=batch_size, seed=0)
    with pm.Model() as model:
        a = pm.Normal("a", 0.0, 5.0, shape=groups)
        batch = pm.Data("batch", np.zeros((batch_size, 2)))
        mu = pm.Deterministic("mu", a[batch[:, 0].astype("int64")])
        pm.Normal("y", mu, 0.5, observed=batch[:, 1], total_size=len(loader))
    trainer = Trainer(dataloader=loader, model=model, random_seed=1, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "not converged": short fit
        trainer.fit(steps)
    return trainer


def new_groups(folder, name, groups, y=None):
    y = np.zeros(len(groups)) if y is None else y
    pq.write_table(pa.table({"g": groups, "y": y}), folder / name)
    return folder / name


def test_group_codes_are_matched_by_level_not_by_position(fitted_groups):
    # A prediction source coding its own levels gave c the effect of a, d that of b, and
    # the unseen zz that of c, silently.
    trainer, folder = fitted_groups
    path = new_groups(folder, "new.parquet", ["c", "d", "zz"])
    own = DataLoader(parquet_source(path, categorical=["g"]), batch_size=3)
    message = (
        r"column 'g' is coded with the levels \['c', 'd', 'zz'\] in the prediction loader and "
        r"\['a', 'b', 'c', 'd'\] in the Trainer's loader: the same code would mean another "
        r"group. To keep every level's code, build its source with "
        r"categorical=\{'g': trainer.dataloader.categories\['g'\]\}"
    )
    with pytest.raises(ValueError, match=message):
        trainer.predict(own, "mu")
    levels = {"g": trainer.dataloader.categories["g"]}
    with pytest.raises(ValueError, match=r"new.parquet.*'zz'"):
        trainer.predict(DataLoader(parquet_source(path, categorical=levels), batch_size=3), "mu")
    # Levels coded as in training (given, or a leading run of them) predict their groups.
    fitted_a = trainer.approx.mean.eval()
    known = new_groups(folder, "known.parquet", ["d", "c", "c"])
    out = trainer.predict(
        DataLoader(parquet_source(known, categorical=levels), batch_size=2), "mu", draws=500
    )
    np.testing.assert_allclose(out["mu"], fitted_a[[3, 2, 2]], atol=0.05)
    prefix = new_groups(folder, "prefix.parquet", ["b", "a"])
    out = trainer.predict(DataLoader(parquet_source(prefix, categorical=["g"]), batch_size=2), "mu")
    np.testing.assert_allclose(out["mu"], fitted_a[[1, 0]], atol=0.05)
    assert abs(out["mu"][0] - GROUP_EFFECTS["b"]) < 0.1


def test_group_codes_given_as_numbers_warn_and_out_of_range_codes_are_named(fitted_groups):
    trainer, _ = fitted_groups
    codes = DataLoader(array_source(np.array([[3.0, 0.0], [0.0, 0.0]]), columns=["g", "y"]), 2)
    message = (
        r"column 'g' is coded from the levels \['a', 'b', 'c', 'd'\] in the Trainer's loader "
        r"and read as numbers in the prediction loader: the numbers must be the codes"
    )
    with pytest.warns(UserWarning, match=message):
        out = trainer.predict(codes, "mu")
    np.testing.assert_allclose(out["mu"], trainer.approx.mean.eval()[[3, 0]], atol=0.05)
    # pandas' code for a missing category: it picked the last group in predict().
    missing = DataLoader(array_source(np.array([[1.0, 0.0], [-1.0, 0.0]]), columns=["g", "y"]), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match=r"column 'g' holds -1.0 at row 1 .*index of 'a'"):
            trainer.predict(missing, "mu")


def test_an_unread_label_column_of_missing_values_is_named_as_unread(fitted_groups):
    trainer, folder = fitted_groups
    levels = {"g": trainer.dataloader.categories["g"]}
    path = new_groups(folder, "unlabelled.parquet", ["a", "b"], y=np.full(2, np.nan))
    loader = DataLoader(parquet_source(path, categorical=levels), batch_size=2)
    message = (
        r"unlabelled.parquet \(row group 0\): column 'y' holds missing values, and it is not "
        r"among the columns the predictions read: leave it out of the prediction loader's source"
    )
    with pytest.raises(ValueError, match=message):
        trainer.predict(loader, "mu")
    loader = DataLoader(parquet_source(path, categorical=levels, columns=["g"]), batch_size=2)
    np.testing.assert_allclose(
        trainer.predict(loader, "mu")["mu"], trainer.approx.mean.eval()[[0, 1]], atol=0.05
    )


def test_a_float_group_column_with_a_nan_level_predicts_with_its_own_levels(tmp_path):
    # NaN is a level of a float column, and NaN != NaN: the Trainer's own levels were
    # refused as "other levels" than themselves.
    g = np.tile([np.nan, 1.5, 2.5], 200)
    path = tmp_path / "g.parquet"
    pq.write_table(pa.table({"g": g, "y": np.nan_to_num(g, nan=0.0)}), path)
    trainer = group_trainer(path, groups=3, batch_size=100, steps=300)
    levels = {"g": trainer.dataloader.categories["g"]}
    new = DataLoader(parquet_source(path, categorical=levels), batch_size=100)
    out = trainer.predict(new, "mu")
    code = {("nan" if v != v else v): k for k, v in enumerate(levels["g"].tolist())}
    rows = [code["nan" if v != v else v] for v in g[:3]]  # nan, 1.5, 2.5
    np.testing.assert_allclose(out["mu"][:3], trainer.approx.mean.eval()[rows], atol=0.1)


def test_missing_values_in_an_unread_column_of_a_read_field_must_be_filled():
    # The field X is read (its first column); its column z is not, but it cannot be left
    # out of the field: the advice to leave it out led to "field 'X' ... lacks ['z']".
    rows = np.column_stack([np.linspace(-1, 1, 200), np.zeros(200), np.ones(200)])
    fields = {"X": ["x", "z"], "y": "y"}
    loader = DataLoader(array_source(rows, columns=["x", "z", "y"]), 100, fields=fields)
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.0)
        X, y = pm.Data("X", np.zeros((100, 2))), pm.Data("y", np.zeros(100))
        pm.Normal("obs", b * X[:, 0], 1.0, observed=y, total_size=len(loader))
        pm.Deterministic("mu", b * X[:, 0])
    trainer = Trainer(dataloader=loader, model=model, data_name=None, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        trainer.fit(50)
    rows[5, 1] = np.nan
    new = DataLoader(array_source(rows, columns=["x", "z", "y"]), 100, fields=fields)
    with pytest.raises(ValueError, match=r"column 'z' holds 1 NaN .*fill missing features"):
        trainer.predict(new, "mu")

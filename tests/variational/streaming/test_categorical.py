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
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pymc as pm

from pymc.variational.streaming import DataLoader, Trainer, csv_source, parquet_source
from pymc.variational.streaming.arrow import encode_categories

GROUPS = [f"county_{k:02d}" for k in range(12)]


def grouped_rows(n, seed=0):
    """Random intercepts and slopes per county: y = a[g] + b[g] * x + noise."""
    rng = np.random.default_rng(seed)
    a = rng.normal(1.0, 0.8, len(GROUPS))
    b = rng.normal(-0.5, 0.4, len(GROUPS))
    g = rng.integers(0, len(GROUPS), n)
    x = rng.normal(size=n)
    y = a[g] + b[g] * x + rng.normal(0, 0.5, n)
    county = np.array(GROUPS, dtype=object)[g]
    return county, x, y, a, b


@pytest.fixture
def grouped_parquet(tmp_path):
    county, x, y, a, b = grouped_rows(60_000)
    # Each file holds only some counties, in its own order: codes must not depend on it.
    order = np.argsort(county, kind="stable")[::-1]
    for k, part in enumerate(np.array_split(order, 3)):
        table = pa.table(
            {"id": part.astype(float), "county": county[part], "x": x[part], "y": y[part]}
        )
        pq.write_table(table, tmp_path / f"part-{k}.parquet", row_group_size=5000)
    return tmp_path, county, x, y, a, b


def test_codes_are_stable_across_shards_and_epochs(grouped_parquet):
    path, county, *_ = grouped_parquet
    source = parquet_source(path, categorical=["county"])
    assert list(source.categories["county"]) == GROUPS
    loader = DataLoader(source, batch_size=1000, seed=3)
    assert list(loader.categories["county"]) == GROUPS
    for epoch in (0, 1):
        rows = np.concatenate(list(loader.iter_epoch(epoch)))
        ids = rows[:, 0].astype(int)
        decoded = np.array(GROUPS, dtype=object)[rows[:, 1].astype(int)]
        np.testing.assert_array_equal(decoded, county[ids])


def test_given_levels_and_unknown_levels(grouped_parquet):
    path, county, *_ = grouped_parquet
    levels = GROUPS[::-1]
    source = parquet_source(path, categorical={"county": levels})
    rows = np.concatenate(list(DataLoader(source, batch_size=1000, shuffle=False).iter_epoch(0)))
    np.testing.assert_array_equal(
        np.array(levels, dtype=object)[rows[:, 1].astype(int)], county[rows[:, 0].astype(int)]
    )
    partial = parquet_source(path, categorical={"county": GROUPS[:5]})
    with pytest.raises(
        ValueError,
        match=r"categorical column 'county' holds the level 'county_\d\d', which is not among its 5 known levels",
    ):
        list(DataLoader(partial, batch_size=1000).iter_epoch(0))
    with pytest.raises(KeyError, match="categorical column 'state' is not among the columns"):
        parquet_source(path, categorical=["state"])


@pytest.mark.parametrize("as_dictionary", [False, True], ids=["plain", "dictionary"])
def test_codes_of_text_and_of_dictionary_columns_agree(as_dictionary):
    # Parquet text categories are read as dictionaries and coded through the dictionary.
    values = pa.array(["b", None, "c", "a", "b", "c"])
    column = values.dictionary_encode() if as_dictionary else values
    batch = pa.RecordBatch.from_arrays([column, pa.array(np.arange(6.0))], names=["g", "v"])
    # A missing value is an error, before any transform could fill it in as a level ...
    with pytest.raises(ValueError, match=r"'g' has 1 missing value.*first at row 1 of the block"):
        encode_categories(batch, {"g": pa.array(["c", "b", "a"])}, "part-0")
    # ... unless the levels give it one.
    coded = encode_categories(batch, {"g": pa.array(["c", "b", None, "a"])}, "part-0")
    assert coded.column(0).to_pylist() == [1.0, 2.0, 0.0, 3.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="holds the level 'c', which is not among its 2 known"):
        encode_categories(batch, {"g": pa.array(["a", "b"])}, "part-0")


def test_csv_categorical(tmp_path):
    text = "county,x\nb,1.0\na,2.0\nc,3.0\na,4.0\n"
    (tmp_path / "d.csv").write_text(text)
    source = csv_source(tmp_path / "d.csv", categorical=["county"])
    assert list(source.categories["county"]) == ["a", "b", "c"]
    rows = np.concatenate(list(DataLoader(source, batch_size=4, shuffle=False).iter_epoch(0)))
    np.testing.assert_array_equal(rows, [[1, 1.0], [0, 2.0], [2, 3.0], [0, 4.0]])


def test_hierarchical_model_recovers_group_parameters(grouped_parquet):
    path, county, x, y, a, b = grouped_parquet
    source = parquet_source(path, columns=["county", "x", "y"], categorical=["county"])
    loader = DataLoader(source, batch_size=2000, fields={"g": "county", "x": "x", "y": "y"}, seed=0)
    levels = loader.categories["county"]
    with pm.Model() as model:
        mu_a, mu_b = pm.Normal("mu_a", 0, 2), pm.Normal("mu_b", 0, 2)
        sd_a, sd_b = pm.HalfNormal("sd_a", 1), pm.HalfNormal("sd_b", 1)
        a_g = pm.Normal("a", mu_a, sd_a, shape=len(levels))
        b_g = pm.Normal("b", mu_b, sd_b, shape=len(levels))
        g = pm.Data("g", np.zeros(2000, dtype="int32"))
        x_data = pm.Data("x", np.zeros(2000))
        y_data = pm.Data("y", np.zeros(2000))
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("obs", a_g[g] + b_g[g] * x_data, sigma, observed=y_data, total_size=len(loader))
    approx = Trainer(
        dataloader=loader, data_name=None, model=model, random_seed=2, progressbar=False
    ).fit(6000)
    post = approx.sample(500, random_seed=1).posterior
    a_hat = post["a"].values.reshape(-1, len(levels)).mean(0)
    b_hat = post["b"].values.reshape(-1, len(levels)).mean(0)
    # Truth, per group, from the same data: the least-squares line of each county.
    for k, name in enumerate(levels):
        sel = county == name
        slope, intercept = np.polyfit(x[sel], y[sel], 1)
        assert abs(a_hat[k] - intercept) < 0.05, (name, a_hat[k], intercept)
        assert abs(b_hat[k] - slope) < 0.05, (name, b_hat[k], slope)
    assert np.corrcoef(a_hat, a)[0, 1] > 0.99 and np.corrcoef(b_hat, b)[0, 1] > 0.99
    assert abs(post["sigma"].values.mean() - 0.5) < 0.02

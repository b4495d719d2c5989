"""Streaming ADVI from parquet: click logs and a hierarchical model.

This example tells the story end to end, on data written on the spot:

1. a Criteo-like logistic regression streamed from parquet with ``DataLoader`` and
   ``Trainer``, compared with ``pm.Minibatch`` (rows in RAM) and scikit-learn;
2. a hierarchical model whose group labels are strings in the files, delivered as stable
   integer codes by ``categorical=``.

Run it with ``python docs/source/examples/streaming_criteo.py`` (add ``--rows``/``--steps``
for a bigger run). The memory figure on the examples page comes from
``benchmarks/memory.py``.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import pymc as pm

from pymc.variational.streaming import DataLoader, Trainer, default_optimizer, parquet_source


def write_click_log(folder: Path, rows: int, seed: int = 0) -> np.ndarray:
    """13 standardized log-count features and a ~3% click label; returns the true coefficients."""
    rng = np.random.default_rng(seed)
    beta = np.r_[-3.6, rng.normal(0.0, 0.25, 13)]
    counts = rng.poisson(rng.lognormal(1.5, 1.2, size=(rows, 13)))
    x = np.log1p(counts)
    x = (x - x.mean(0)) / x.std(0)
    y = rng.random(rows) < 1 / (1 + np.exp(-(beta[0] + x @ beta[1:])))
    columns = {f"I{j + 1}": x[:, j].astype(np.float32) for j in range(13)}
    columns["label"] = y.astype(np.float32)
    table = pa.table(columns)
    for k, part in enumerate(np.array_split(np.arange(rows), 4)):
        # Plain-encoded, lz4-compressed floats decode fastest (see parquet_source's notes).
        pq.write_table(
            table.take(part), folder / f"part-{k}.parquet", compression="lz4", use_dictionary=False
        )
    return beta


def click_model(total_size: int, batch_size: int) -> pm.Model:
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=14)
        batch = pm.Data("batch", np.zeros((batch_size, 14)))
        logit = b[0] + pm.math.dot(batch[:, :13], b[1:])
        pm.Bernoulli("click", logit_p=logit, observed=batch[:, 13], total_size=total_size)
    return model


def logistic_regression(
    folder: Path, rows: int, steps: int, batch_size: int
) -> dict[str, np.ndarray]:
    """Posterior means by streaming and by pm.Minibatch, and scikit-learn's estimate."""
    from sklearn.linear_model import LogisticRegression

    loader = DataLoader(parquet_source(folder), batch_size=batch_size, sample_shape=(14,), seed=1)
    print(f"len(loader) = {len(loader):,d} rows, read from the parquet footers")
    with click_model(len(loader), batch_size):
        streamed = Trainer(dataloader=loader, random_seed=1, progressbar=False).fit(steps)

    table = pq.read_table(folder)  # in RAM, for the two in-memory fits only
    data = np.column_stack([table[c].to_numpy() for c in table.column_names]).astype(np.float64)
    X, y = np.ascontiguousarray(data[:, :13]), np.ascontiguousarray(data[:, 13])
    with pm.Model():
        X_mb, y_mb = pm.Minibatch(X, y, batch_size=batch_size)
        b = pm.Normal("b", 0.0, 1.5, shape=14)
        pm.Bernoulli(
            "click", logit_p=b[0] + pm.math.dot(X_mb, b[1:]), observed=y_mb, total_size=len(X)
        )
        in_ram = pm.fit(steps, obj_optimizer=default_optimizer(), random_seed=1, progressbar=False)
    sk = LogisticRegression(C=1e6, max_iter=1000).fit(X, y)
    return {
        "streaming": streamed.mean.eval(),
        "pm.Minibatch": in_ram.mean.eval(),
        "scikit-learn": np.r_[sk.intercept_, sk.coef_[0]],
    }


def write_grouped(
    folder: Path, rows: int, groups: int = 8, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(1.0, 0.8, groups), rng.normal(-0.5, 0.4, groups)
    g = rng.integers(0, groups, rows)
    x = rng.normal(size=rows)
    y = a[g] + b[g] * x + rng.normal(0, 0.5, rows)
    names = np.array([f"county_{k}" for k in range(groups)], dtype=object)[g]
    pq.write_table(
        pa.table({"county": names, "x": x, "y": y}),
        folder / "grouped.parquet",
        row_group_size=10_000,
    )
    return a, b


def hierarchical(
    folder: Path, rows: int, steps: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random intercepts and slopes per county, the county codes streamed with the rows."""
    a_true, b_true = write_grouped(folder, rows)
    source = parquet_source(folder / "grouped.parquet", categorical=["county"])
    loader = DataLoader(
        source, batch_size=batch_size, fields={"g": "county", "x": "x", "y": "y"}, seed=0
    )
    levels = loader.categories["county"]  # known before training: size the group variables
    with pm.Model() as model:
        mu_a, mu_b = pm.Normal("mu_a", 0, 2), pm.Normal("mu_b", 0, 2)
        a = pm.Normal("a", mu_a, pm.HalfNormal("sd_a", 1), shape=len(levels))
        b = pm.Normal("b", mu_b, pm.HalfNormal("sd_b", 1), shape=len(levels))
        g = pm.Data("g", np.zeros(batch_size, dtype="int32"))
        x = pm.Data("x", np.zeros(batch_size))
        y = pm.Data("y", np.zeros(batch_size))
        pm.Normal(
            "obs", a[g] + b[g] * x, pm.HalfNormal("sigma", 1), observed=y, total_size=len(loader)
        )
    approx = Trainer(
        dataloader=loader, data_name=None, model=model, random_seed=2, progressbar=False
    ).fit(steps)
    post = approx.sample(500, random_seed=1).posterior
    a_hat = post["a"].values.reshape(-1, len(levels)).mean(0)
    b_hat = post["b"].values.reshape(-1, len(levels)).mean(0)
    print(f"{'county':<10}{'a true':>8}{'a est':>8}{'b true':>8}{'b est':>8}")
    for k, name in enumerate(levels):
        print(f"{name:<10}{a_true[k]:>8.2f}{a_hat[k]:>8.2f}{b_true[k]:>8.2f}{b_hat[k]:>8.2f}")
    return np.c_[a_true, b_true], np.c_[a_hat, b_hat]


def main(rows: int = 400_000, steps: int = 8000, batch_size: int = 4096) -> dict:
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "clicks").mkdir()
        beta = write_click_log(folder / "clicks", rows)
        means = logistic_regression(folder / "clicks", rows, steps, batch_size)
        print(f"\n{'coefficient':<12}{'truth':>8}" + "".join(f"{k:>14}" for k in means))
        for j in range(14):
            name = "intercept" if j == 0 else f"I{j}"
            print(f"{name:<12}{beta[j]:>8.3f}" + "".join(f"{v[j]:>14.3f}" for v in means.values()))
        corr = np.corrcoef(means["streaming"], means["scikit-learn"])[0, 1]
        print(
            f"\nstreaming vs scikit-learn: correlation {corr:.4f}, "
            f"max |diff| {np.abs(means['streaming'] - means['scikit-learn']).max():.3f}\n"
        )
        truth, estimate = hierarchical(folder, rows // 4, steps, 2000)
    return {"means": means, "truth": beta, "groups_truth": truth, "groups_estimate": estimate}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--steps", type=int, default=8000)
    args = parser.parse_args()
    main(args.rows, args.steps)

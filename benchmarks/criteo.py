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
"""The main job: streaming ADVI against ``pm.Minibatch`` and scikit-learn on Criteo-like data.

What it does
------------
1. **Data with a known truth.** Writes Criteo-like click rows to parquet: 13 heavy-tailed,
   partly correlated, zero-inflated count features (Poisson-lognormal and rounded-lognormal
   counts driven by a 3-factor Gaussian copula), transformed as ``x = log1p(count)`` and
   standardized with the population mean and standard deviation of all rows (computed in a
   first pass), plus a label drawn from a logistic model with known coefficients. The
   intercept, -3.7, gives a click rate of about 3%. Columns ``I1..I13, label`` are float32,
   plain-encoded (lz4-compressed unless ``--compression``), in row groups of 100,000 rows
   spread over several files. Rows are generated one row group at a time, so memory stays
   small for any ``--rows``. The files are cached in
   ``~/.cache/pymc-streaming/criteo-<rows>-<seed>/`` and reused when complete. ``--data``
   points to existing parquet files with the same columns instead (the truth is then
   unknown).
2. **Three fits, each in its own spawned process**, so that each peak RSS is its own:

   - ``streaming``: ``DataLoader(parquet_source(...))`` + ``Trainer(method="advi")`` with the
     Trainer's default optimizer;
   - ``minibatch``: every row read into RAM, ``pm.Minibatch`` + ``pm.fit(method="advi")``
     with the same optimizer (``default_optimizer()``) and the same model;
   - ``sklearn``: unpenalized ``LogisticRegression`` (lbfgs) on every row in RAM, the
     maximum-likelihood reference.

3. **Report.** Speed (steps/s), time, peak memory; agreement of the 14 coefficients between
   the fits and with the truth; each intercept against logit(click rate), against the true
   intercept, and the click rate each fit implies. Everything also goes to a JSON file.

How to run
----------
.. code-block:: bash

    python benchmarks/criteo.py                 # 1M rows, 20,000 steps
    python benchmarks/criteo.py --quick         # 200k rows, 5,000 steps: a fast check
    python benchmarks/criteo.py --rows 50000000 --steps 50000
    python benchmarks/criteo.py --data "s3://bucket/criteo/*.parquet"
    python benchmarks/criteo.py --compression snappy   # pyarrow's default codec, 4x slower to decode

It runs offline. Results go to ``benchmarks/results/criteo.json`` (``criteo-quick.json``
with ``--quick``), or ``--out``.

What is timed
-------------
``steps/s`` is the steady-state speed of the optimization loop: a callback, identical for
both ADVI fits, notes the clock after every step, and steps/s is ``(steps - 1)`` divided by
the time from the end of step 1 to the end of the last step. It excludes compilation and
the first batch. ``fit wall`` is the whole ``Trainer.fit`` / ``pm.fit`` call, including
compilation (and, for streaming, reading the first window). ``load`` is reading every row
into RAM, which only the in-memory fits do.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import sys
import time

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BATCH_SIZE,
    COLUMNS,
    FEATURES,
    ROW_GROUP_ROWS,
    default_cache_root,
    prepare_dataset,
    sigmoid,
)

COEF_NAMES = ["intercept", *FEATURES]
DEFAULT_ROWS = 1_000_000
DEFAULT_STEPS = 20_000
QUICK_ROWS = 200_000
QUICK_STEPS = 5_000
DEFAULT_SEED = 2026

# Reference agreement with scikit-learn's maximum-likelihood fit.
MIN_CORRELATION = 0.999
MAX_ABS_DIFF = 0.15

# Measured here on these rows (plain-encoded float32, one thread): lz4 decodes at about
# 38M rows/s, uncompressed 41M, snappy (pyarrow's default) only 9M. The decode is half of
# the producer's work per batch, so the data is written with lz4.
DEFAULT_COMPRESSION = "lz4"
COMPRESSIONS = ("snappy", "lz4", "zstd", "none")


@dataclass(frozen=True)
class DataInfo:
    """Where the rows are and what is known about them."""

    path: str
    rows: int
    generated: bool
    generate_seconds: float | None = None
    true_coefs: list[float] | None = None  # intercept first, when the truth is known
    click_rate: float | None = None


def prepare_data(
    rows: int, seed: int, data: str | None, cache_root: Path, compression: str
) -> DataInfo:
    """Use ``data`` if given, else the cached synthetic dataset, generating it if needed:
    plain-encoded, non-nullable float32 columns in row groups of 100,000 rows."""
    if data is not None:
        from pymc.variational.streaming import parquet_source

        source = parquet_source(data, columns=COLUMNS)
        return DataInfo(path=data, rows=int(source.num_rows), generated=False)
    suffix = "" if compression == DEFAULT_COMPRESSION else f"-{compression}"
    dataset = prepare_dataset(
        rows,
        seed,
        encoding=f"{compression}-plain",
        row_group_rows=ROW_GROUP_ROWS,
        nullable=False,
        root=cache_root,
        name=f"criteo-{rows}-{seed}{suffix}",
    )
    manifest = dataset.manifest
    return DataInfo(
        path=dataset.path,
        rows=rows,
        generated=True,
        generate_seconds=dataset.generate_seconds,
        true_coefs=[manifest["true_intercept"], *manifest["true_coefs"]],
        click_rate=manifest["click_rate"],
    )


# ----------------------------------------------------------------------------- fits
# Each fit runs in a fresh spawned process: it imports only what it needs, so that its peak
# RSS is its own. That is why pymc and scikit-learn are imported inside these functions.


@dataclass(frozen=True)
class FitConfig:
    path: str
    steps: int
    seed: int
    progressbar: bool


class LoopTimer:
    """A fit callback noting the clock after every step, for the steady-state speed."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None
        self.calls = 0

    def __call__(self, approx: Any, losses: np.ndarray, i: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.calls += 1

    def steps_per_second(self) -> float:
        if self.calls < 2:
            return float("nan")
        return (self.calls - 1) / (self.last - self.first)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def quiet_known_warnings() -> None:
    import warnings

    warnings.filterwarnings("ignore", message="ArviZ is undergoing a major refactor")
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")


def read_blocks(path: str) -> Iterator[np.ndarray]:
    """All rows of the parquet data, as float64 blocks of the 14 columns, in storage order."""
    from pymc.variational.streaming import parquet_source

    source = parquet_source(path, columns=COLUMNS)
    for shard in source.shards():
        yield from source.read_shard(shard, np.float64)


def load_in_memory(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Every row in RAM: features ``(N, 13)`` and labels ``(N,)``, float64."""
    from pymc.variational.streaming import parquet_source

    n = parquet_source(path, columns=COLUMNS).num_rows
    X, y = np.empty((n, 13)), np.empty(n)
    a = 0
    for block in read_blocks(path):
        b = a + len(block)
        X[a:b], y[a:b] = block[:, :13], block[:, 13]
        a = b
    return X, y


def advi_summary(
    approx: Any, timer: LoopTimer, started: float, finished: float, steps: int
) -> dict[str, Any]:
    """Posterior means and timings of an ADVI fit that began and ended at these clock times."""
    mean, std = approx.mean.eval(), approx.std.eval()
    if mean.shape != (14,):
        raise RuntimeError(f"expected 14 posterior means, got shape {mean.shape}")
    hist = np.asarray(approx.hist)
    return {
        "coefs": mean.tolist(),
        "posterior_sd": std.tolist(),
        "steps": steps,
        "steps_per_second": timer.steps_per_second(),
        "loop_seconds": timer.last - timer.first,
        "to_first_step_seconds": timer.first - started,
        "fit_wall_seconds": finished - started,
        "final_loss": float(np.mean(hist[-1000:])) if len(hist) else None,
    }


def fit_streaming(cfg: FitConfig) -> dict[str, Any]:
    """ADVI with a Trainer fed by a DataLoader over the parquet files."""
    quiet_known_warnings()
    import pymc as pm

    from pymc.variational.streaming import DataLoader, Trainer, parquet_source

    rss_start = rss_mb()
    loader = DataLoader(
        parquet_source(cfg.path, columns=COLUMNS),
        batch_size=BATCH_SIZE,
        sample_shape=(14,),
        total_size="auto",
        seed=cfg.seed,
    )
    with pm.Model():
        b = pm.Normal("b", 0.0, 1.5, shape=14)
        batch = pm.Data("batch", np.zeros((BATCH_SIZE, 14)))
        logit = b[0] + pm.math.dot(batch[:, :13], b[1:])
        pm.Bernoulli("click", logit_p=logit, observed=batch[:, 13], total_size=len(loader))
        trainer = Trainer(
            method="advi",
            dataloader=loader,
            data_name="batch",
            random_seed=cfg.seed,
            progressbar=cfg.progressbar,
        )
    timer = LoopTimer()
    t0 = time.perf_counter()
    approx = trainer.fit(cfg.steps, callbacks=[timer])
    out = advi_summary(approx, timer, t0, time.perf_counter(), cfg.steps)
    out.update(
        load_seconds=None,
        rss_before_data_mb=rss_start,
        peak_rss_mb=peak_rss_mb(),
        rows=len(loader),
    )
    return out


def fit_minibatch(cfg: FitConfig) -> dict[str, Any]:
    """ADVI with every row in RAM and pm.Minibatch, through pm.fit."""
    quiet_known_warnings()
    import pymc as pm

    from pymc.variational.streaming import default_optimizer

    rss_start = rss_mb()
    t0 = time.perf_counter()
    X, y = load_in_memory(cfg.path)
    load = time.perf_counter() - t0
    with pm.Model():
        b = pm.Normal("b", 0.0, 1.5, shape=14)
        X_mb, y_mb = pm.Minibatch(X, y, batch_size=BATCH_SIZE)
        logit = b[0] + pm.math.dot(X_mb, b[1:])
        pm.Bernoulli("click", logit_p=logit, observed=y_mb, total_size=len(X))
        timer = LoopTimer()
        t0 = time.perf_counter()
        approx = pm.fit(
            cfg.steps,
            method="advi",
            obj_optimizer=default_optimizer(),
            random_seed=cfg.seed,
            progressbar=cfg.progressbar,
            callbacks=[timer],
        )
        finished = time.perf_counter()
    out = advi_summary(approx, timer, t0, finished, cfg.steps)
    out.update(
        load_seconds=load,
        rss_before_data_mb=rss_start,
        peak_rss_mb=peak_rss_mb(),
        rows=len(X),
    )
    return out


def fit_sklearn(cfg: FitConfig) -> dict[str, Any]:
    """Unpenalized maximum likelihood with scikit-learn, every row in RAM."""
    quiet_known_warnings()
    from sklearn.linear_model import LogisticRegression

    import pymc.variational.streaming  # noqa: F401  (read_blocks uses it; import it before timing)

    rss_start = rss_mb()
    t0 = time.perf_counter()
    X, y = load_in_memory(cfg.path)
    load = time.perf_counter() - t0
    # C=1e6 makes the L2 penalty negligible (penalty=None is deprecated in scikit-learn 1.8).
    model = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000, tol=1e-6)
    t0 = time.perf_counter()
    model.fit(X, y)
    wall = time.perf_counter() - t0
    return {
        "coefs": [float(model.intercept_[0]), *model.coef_[0].tolist()],
        "iterations": int(model.n_iter_[0]),
        "fit_wall_seconds": wall,
        "load_seconds": load,
        "rss_before_data_mb": rss_start,
        "peak_rss_mb": peak_rss_mb(),
        "rows": len(X),
    }


FITS: dict[str, Callable[[FitConfig], dict[str, Any]]] = {
    "streaming": fit_streaming,
    "minibatch": fit_minibatch,
    "sklearn": fit_sklearn,
}


def run_isolated(job: Callable[[FitConfig], dict[str, Any]], cfg: FitConfig) -> dict[str, Any]:
    """Run ``job(cfg)`` in a fresh spawned process and return its result."""
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        return pool.submit(job, cfg).result()


# ----------------------------------------------------------------------------- comparison


def agreement(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    a, b = np.asarray(a), np.asarray(b)
    return {
        "correlation": float(np.corrcoef(a, b)[0, 1]),
        "slope_correlation": float(np.corrcoef(a[1:], b[1:])[0, 1]),
        "max_abs_diff": float(np.max(np.abs(a - b))),
        "slope_max_abs_diff": float(np.max(np.abs(a[1:] - b[1:]))),
        "intercept_diff": float(a[0] - b[0]),
    }


def click_rates(path: str, coefs: dict[str, Sequence[float]]) -> tuple[float, dict[str, float]]:
    """One pass over the data: the observed click rate and the mean predicted click
    probability under each coefficient vector (equal to the click rate at the MLE)."""
    names = list(coefs)
    B = np.array([coefs[k] for k in names]).T  # (14, k)
    n, clicks, implied = 0, 0.0, np.zeros(len(names))
    for block in read_blocks(path):
        n += len(block)
        clicks += block[:, 13].sum()
        implied += sigmoid(B[0] + block[:, :13] @ B[1:]).sum(axis=0)
    return clicks / n, dict(zip(names, (implied / n).tolist()))


def compare(coefs: dict[str, list[float]], rate: float) -> dict[str, Any]:
    """Agreement between the fits (and with ``coefs["truth"]`` when known), and intercepts."""
    truth = coefs.get("truth")
    fits = [k for k in coefs if k != "truth"]
    pairs = [("streaming", "sklearn"), ("minibatch", "sklearn"), ("streaming", "minibatch")]
    pairs += [(k, "truth") for k in fits if truth is not None]
    out: dict[str, Any] = {
        f"{a}_vs_{b}": agreement(coefs[a], coefs[b]) for a, b in pairs if a in coefs and b in coefs
    }
    logit_rate = math.log(rate / (1 - rate))
    out["intercepts"] = {
        k: {
            "intercept": c[0],
            "minus_logit_click_rate": c[0] - logit_rate,
            "minus_true_intercept": None if truth is None else c[0] - truth[0],
        }
        for k, c in coefs.items()
    }
    return out


def reference_checks(comparison: dict[str, Any]) -> dict[str, bool]:
    """The expected reference: the ADVI fits agree with scikit-learn's MLE."""
    checks = {}
    for name in ("streaming_vs_sklearn", "minibatch_vs_sklearn"):
        if name in comparison:
            c = comparison[name]
            checks[f"{name}: correlation >= {MIN_CORRELATION}"] = (
                c["correlation"] >= MIN_CORRELATION
            )
            checks[f"{name}: max |diff| <= {MAX_ABS_DIFF}"] = c["max_abs_diff"] <= MAX_ABS_DIFF
    return checks


# ----------------------------------------------------------------------------- report


def print_fit_table(fits: dict[str, dict[str, Any]], steps: int, rows: int) -> None:
    print(
        f"\nFits: N = {rows:,d} rows, {steps:,d} steps of batch {BATCH_SIZE} (ADVI), each fit in its own process"
    )
    head = (
        f"{'method':<10} {'steps/s':>8} {'loop s':>7} {'fit wall s':>10} {'to 1st step s':>13} "
        f"{'load s':>7} {'RSS before data MB':>18} {'peak RSS MB':>11}"
    )
    print(head)
    print("-" * len(head))

    def num(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    for name, r in fits.items():
        print(
            f"{name:<10} {num(r.get('steps_per_second'), ',.0f'):>8} {num(r.get('loop_seconds'), '.2f'):>7} "
            f"{num(r['fit_wall_seconds'], '.2f'):>10} {num(r.get('to_first_step_seconds'), '.2f'):>13} "
            f"{num(r['load_seconds'], '.2f'):>7} {r['rss_before_data_mb']:>18,.0f} {r['peak_rss_mb']:>11,.0f}"
        )
    print(
        "  steps/s: steady-state loop speed, (steps - 1) / time from the end of step 1 to the end of the\n"
        "  last step (compile excluded). fit wall: the whole Trainer.fit / pm.fit / LogisticRegression.fit\n"
        "  call, including compilation. to 1st step: compile + first batch + step 1. load: reading every\n"
        "  row into RAM (in-memory fits only). RSS before data: after imports. peak RSS: ru_maxrss."
    )
    if "sklearn" in fits:
        print(f"  sklearn lbfgs iterations: {fits['sklearn']['iterations']}")


def print_coefficients(coefs: dict[str, list[float]]) -> None:
    print("\nCoefficients (posterior means for ADVI)")
    print(f"{'':<10}" + "".join(f"{k:>11}" for k in coefs))
    for j, name in enumerate(COEF_NAMES):
        print(f"{name:<10}" + "".join(f"{c[j]:>11.4f}" for c in coefs.values()))


def print_agreement(comparison: dict[str, Any]) -> None:
    print("\nAgreement over the 14 coefficients")
    print(
        f"{'pair':<24} {'correlation':>11} {'max |diff|':>10} {'corr. slopes':>12} {'max |diff| slopes':>17} "
        f"{'intercept diff':>14}"
    )
    for name, c in comparison.items():
        if name == "intercepts":
            continue
        print(
            f"{name.replace('_vs_', ' vs '):<24} {c['correlation']:>11.6f} {c['max_abs_diff']:>10.4f} "
            f"{c['slope_correlation']:>12.4f} {c['slope_max_abs_diff']:>17.4f} {c['intercept_diff']:>+14.4f}"
        )


def print_intercepts(comparison: dict[str, Any], rate: float, implied: dict[str, float]) -> None:
    logit_rate = math.log(rate / (1 - rate))
    print(f"\nIntercepts: click rate {rate:.4%}, logit(click rate) = {logit_rate:.4f}")
    print(
        f"{'':<10} {'intercept':>10} {'- logit(rate)':>13} {'- true':>8} {'implied click rate':>18} "
        f"{'rel. error':>10}"
    )
    for name, c in comparison["intercepts"].items():
        true_diff = (
            "-" if c["minus_true_intercept"] is None else f"{c['minus_true_intercept']:+.4f}"
        )
        p = implied[name]
        print(
            f"{name:<10} {c['intercept']:>10.4f} {c['minus_logit_click_rate']:>+13.4f} {true_diff:>8} "
            f"{p:>18.4%} {p / rate - 1:>+10.2%}"
        )
    print(
        "  With informative features the maximum-likelihood intercept sits below logit(click rate)\n"
        "  (E[sigmoid(b0 + x.b)] > sigmoid(b0)), so compare each intercept with sklearn's and with the\n"
        "  truth; 'implied click rate' is the mean predicted probability, which equals the observed\n"
        "  click rate at the exact MLE."
    )


def print_checks(checks: dict[str, bool]) -> None:
    print("\nReference checks")
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")


def environment() -> dict[str, Any]:
    """Versions and the git state of the code that ran, for comparing runs."""
    import platform
    import subprocess

    import pyarrow
    import pytensor
    import sklearn

    import pymc

    try:
        git = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        git = ""
    return {
        "git": git or None,
        "python": platform.python_version(),
        "pymc": pymc.__version__,
        "pytensor": pytensor.__version__,
        "pyarrow": pyarrow.__version__,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "cpu_count": os.cpu_count(),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Streaming ADVI vs pm.Minibatch vs scikit-learn on Criteo-like click data."
    )
    parser.add_argument(
        "--rows", type=int, default=None, help=f"rows to generate (default {DEFAULT_ROWS:,d})"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help=f"ADVI steps (default {DEFAULT_STEPS:,d})"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="existing parquet files (path, glob or URL) with columns I1..I13, label",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON results (default benchmarks/results/criteo[-quick].json)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"seed of the data, the loader and the fits (default {DEFAULT_SEED})",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_ROWS:,d} rows and {QUICK_STEPS:,d} steps, for a fast check",
    )
    parser.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default=DEFAULT_COMPRESSION,
        help=f"parquet compression of the generated files (default {DEFAULT_COMPRESSION}; others are cached "
        "in their own folder)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="root of the dataset cache (default ~/.cache/pymc-streaming)",
    )
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = QUICK_ROWS if args.quick else DEFAULT_ROWS
    if args.steps is None:
        args.steps = QUICK_STEPS if args.quick else DEFAULT_STEPS
    if args.out is None:
        args.out = (
            Path(__file__).resolve().parent
            / "results"
            / ("criteo-quick.json" if args.quick else "criteo.json")
        )
    if args.rows <= 0 or args.steps <= 1:
        parser.error("--rows must be positive and --steps at least 2")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    t_start = time.perf_counter()
    args = parse_args(argv)
    data = prepare_data(
        args.rows, args.seed, args.data, args.cache_dir or default_cache_root(), args.compression
    )
    cfg = FitConfig(
        path=data.path, steps=args.steps, seed=args.seed, progressbar=not args.no_progress
    )

    fits = {}
    for name, job in FITS.items():
        print(f"\n== {name} ==", flush=True)
        fits[name] = run_isolated(job, cfg)

    truth = {"truth": data.true_coefs} if data.true_coefs is not None else {}
    coefs = truth | {k: v["coefs"] for k, v in fits.items()}
    rate, implied = click_rates(data.path, coefs)
    comparison = compare(coefs, rate)
    checks = reference_checks(comparison)

    print_fit_table(fits, args.steps, data.rows)
    print_coefficients(coefs)
    print_agreement(comparison)
    print_intercepts(comparison, rate, implied)
    print_checks(checks)

    total = time.perf_counter() - t_start
    payload = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        | {"batch_size": BATCH_SIZE},
        "environment": environment(),
        "data": asdict(data) | {"observed_click_rate": rate},
        "fits": fits,
        "implied_click_rates": implied,
        "comparison": comparison,
        "reference_checks": checks,
        "all_checks_pass": all(checks.values()),
        "total_seconds": total,
    }
    write_json(args.out, payload)
    print(f"\nResults written to {args.out} (total {total:.1f} s)")
    return payload


if __name__ == "__main__":
    main()

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
"""The main job: the seed's streaming fit on Criteo-like click rows, measured against the
exact answer and side by side with ``pm.Minibatch``.

1. **Data as users have it.** 1M Criteo-like rows (13 heavy-tailed, correlated count
   features as standardized ``log1p(count)``, a click label from known coefficients, a 3%
   click rate; ``benchmarks/common.py``) written by ``pq.write_table`` with its defaults:
   snappy, dictionary pages, float32. Generated once into ``~/.cache/pymc-streaming``.
2. **The exact answer.** At 1M rows the posterior is Gaussian to high accuracy, so the
   mean-field optimum is the MAP with sds ``1 / sqrt(H_jj)``: Newton's method on every row,
   streamed from the files (``tests/variational/streaming/glm_reference.py``).
3. **Two fits of 20,000 steps of 4,096 rows, each in its own process** (so that each peak
   memory is its own):

   - ``streaming``: the seed's snippet as a user runs it, ``DataLoader(parquet_source(...))``
     and ``Trainer`` with every default;
   - ``minibatch``: every row read into RAM, ``pm.Minibatch`` and ``pm.fit`` with Adam at
     0.01 (pymc's own default optimizer does not reach the optimum at all here).

4. **Report.** For each fit: steps/s of the loop, wall time, peak memory, and the distance
   to the exact answer: the worst ``|mean - MAP|`` in posterior sd and the worst
   ``|sd / mean-field sd - 1|``. The streaming fit passes when every mean is within 0.25
   posterior sd and every sd within 10%.

Run ``python benchmarks/criteo.py`` (``--quick`` for 200k rows and 10,000 steps; ``--rows``,
``--steps``, ``--encoding``, ``--data DIR`` for your own parquet files with columns
``I1..I13, label``). Offline. Results: ``benchmarks/results/criteo.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
import warnings

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "variational" / "streaming"))

from common import (  # noqa: E402
    BATCH_SIZE,
    COLUMNS,
    ENCODINGS,
    TRUE_COEFS,
    TRUE_INTERCEPT,
    load_rows,
    parquet_blocks,
    prepare_dataset,
    print_table,
    seed_model,
    write_json,
)
from glm_reference import glm_reference  # noqa: E402

TARGET_MEAN_SD, TARGET_SD = 0.25, 0.10


@dataclass(frozen=True)
class FitConfig:
    path: str
    files: tuple[str, ...]
    steps: int
    seed: int
    progressbar: bool


class LoopTimer:
    """A fit callback noting the clock after every step: steps/s of the loop itself, from
    the end of the first step (compilation and the first batch excluded)."""

    def __init__(self):
        self.first = self.last = None
        self.calls = 0

    def __call__(self, approx, losses, i):
        self.last = time.perf_counter()
        if self.first is None:
            self.first = self.last
        self.calls += 1

    def steps_per_second(self) -> float:
        return (self.calls - 1) / (self.last - self.first) if self.calls > 1 else float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def summary(approx, timer: LoopTimer, started: float) -> dict[str, Any]:
    return {
        "mean": approx.mean.eval().tolist(),
        "sd": approx.std.eval().tolist(),
        "steps_per_second": timer.steps_per_second(),
        "wall_seconds": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
    }


def fit_streaming(cfg: FitConfig) -> dict[str, Any]:
    """The seed's snippet with every default, streaming the files."""
    warnings.simplefilter("ignore", FutureWarning)
    from pymc.variational.streaming import DataLoader, Trainer, parquet_source

    started = time.perf_counter()
    loader = DataLoader(
        parquet_source(cfg.path, columns=COLUMNS),
        batch_size=BATCH_SIZE,
        sample_shape=(14,),
        seed=cfg.seed,
    )
    timer = LoopTimer()
    trainer = Trainer(
        dataloader=loader,
        model=seed_model(len(loader)),
        random_seed=cfg.seed,
        progressbar=cfg.progressbar,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        approx = trainer.fit(cfg.steps, callbacks=[timer])
    result = summary(approx, timer, started)
    result["rows"] = len(loader)
    result["converged"] = trainer.convergence_report.converged
    result["warnings"] = [str(w.message) for w in caught if "not converged" in str(w.message)]
    return result


def fit_minibatch(cfg: FitConfig) -> dict[str, Any]:
    """Every row in RAM, ``pm.Minibatch`` and ``pm.fit`` with Adam at 0.01."""
    warnings.simplefilter("ignore", FutureWarning)
    import pymc as pm

    started = time.perf_counter()
    X, y = load_rows(cfg.files)
    load_seconds = time.perf_counter() - started
    model = seed_model(len(X), pm.Minibatch(X, y, batch_size=BATCH_SIZE))
    timer = LoopTimer()
    approx = pm.fit(
        cfg.steps,
        method="advi",
        model=model,
        obj_optimizer=pm.adam(learning_rate=0.01),
        random_seed=cfg.seed,
        callbacks=[timer],
        progressbar=cfg.progressbar,
    )
    result = summary(approx, timer, started)
    result["load_seconds"] = load_seconds
    return result


def run_isolated(job, cfg: FitConfig) -> dict[str, Any]:
    """``job(cfg)`` in a fresh spawned process: its peak memory is its own."""
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        return pool.submit(job, cfg).result()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=None, help="rows to generate (default 1,000,000)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="steps of each fit (default 20,000)"
    )
    parser.add_argument("--quick", action="store_true", help="200,000 rows and 10,000 steps")
    parser.add_argument("--encoding", default="default", choices=list(ENCODINGS))
    parser.add_argument("--data", default=None, help="a directory of parquet files to use instead")
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the fits (the data's is fixed)"
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "criteo.json")
    args = parser.parse_args(argv)
    args.rows = args.rows or (200_000 if args.quick else 1_000_000)
    args.steps = args.steps or (10_000 if args.quick else 20_000)
    return args


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    warnings.simplefilter("ignore", FutureWarning)
    if args.data is None:
        data = prepare_dataset(args.rows, encoding=args.encoding)
        path, files, truth = data.path, data.files, np.r_[TRUE_INTERCEPT, TRUE_COEFS]
    else:
        path, truth = args.data, None
        files = [str(f) for f in sorted(Path(args.data).glob("*.parquet"))]
    started = time.perf_counter()
    reference = glm_reference(parquet_blocks(files))
    print(
        f"{reference.rows:,d} rows; the exact answer by Newton on every row: {time.perf_counter() - started:.1f} s"
    )
    cfg = FitConfig(path, tuple(files), args.steps, args.seed, not args.no_progress)
    fits = {
        "streaming": run_isolated(fit_streaming, cfg),
        "minibatch": run_isolated(fit_minibatch, cfg),
    }
    rows = []
    for name, fit in fits.items():
        fit["mean_error_sd"], fit["sd_error"] = reference.errors(
            np.array(fit["mean"]), np.array(fit["sd"])
        )
        rows.append(
            [
                name,
                fit["steps_per_second"],
                fit["wall_seconds"],
                fit["peak_rss_mb"],
                fit["mean_error_sd"],
                f"{fit['sd_error']:.1%}",
            ]
        )
    print(f"\n{args.steps:,d} steps of {BATCH_SIZE:,d} rows:")
    print_table(
        [
            "fit",
            "steps/s",
            "wall s",
            "peak RSS MB",
            "worst |mean - MAP| (post. sd)",
            "worst sd error",
        ],
        rows,
    )
    names = ["intercept", *COLUMNS[:13]]
    print(
        f"\n{'coefficient':<12}{'MAP':>9}{'post. sd':>10}{'streaming':>11}{'minibatch':>11}"
        + ("" if truth is None else f"{'truth':>9}")
    )
    for j, name in enumerate(names):
        line = f"{name:<12}{reference.map[j]:>9.4f}{reference.posterior_sd[j]:>10.4f}"
        line += "".join(f"{fits[f]['mean'][j]:>11.4f}" for f in fits)
        print(line + ("" if truth is None else f"{truth[j]:>9.3f}"))
    streaming = fits["streaming"]
    passed = streaming["mean_error_sd"] <= TARGET_MEAN_SD and streaming["sd_error"] <= TARGET_SD
    speed = streaming["steps_per_second"] / fits["minibatch"]["steps_per_second"]
    print(
        f"\n[{'PASS' if passed else 'FAIL'}] streaming: every mean within {TARGET_MEAN_SD} posterior sd of "
        f"the exact answer ({streaming['mean_error_sd']:.3f}) and every sd within {TARGET_SD:.0%} "
        f"({streaming['sd_error']:.1%})"
    )
    print(
        f"streaming / minibatch: {speed:.2f}x the steps/s; peak memory {streaming['peak_rss_mb']:,.0f} against {fits['minibatch']['peak_rss_mb']:,.0f} MB"
    )
    for message in streaming["warnings"]:
        print(f"streaming warned: {message}")
    payload = {
        "rows": reference.rows,
        "steps": args.steps,
        "encoding": args.encoding if args.data is None else "given",
        "reference": {
            "map": reference.map.tolist(),
            "posterior_sd": reference.posterior_sd.tolist(),
            "mean_field_sd": reference.mean_field_sd.tolist(),
        },
        "fits": fits,
        "passed": passed,
    }
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()

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
"""Statistical fidelity: how far each fit is from the exact variational optimum, in posterior sd.

For the seed's logistic regression (14 coefficients, Normal(0, 1.5) priors, batch 4096)
on Criteo-like rows written as pyarrow writes them, the exact answer is known: the
posterior is Gaussian to high accuracy at millions of rows, so the mean-field ADVI optimum
has the MAP as its means and 1 / sqrt(H_jj) as its sds (Newton on every row, streamed
from the files: ``tests/variational/streaming/glm_reference.py``).

Three contenders, on the same data, for several seeds, read after 2k, 5k, 10k, 20k and 40k
steps (one fit continued, which the Trainer makes bit-exact):

- ``default``: the Trainer as a user gets it (``Convergence()``);
- ``adam``: the Trainer with pymc's plain step, Adam at a constant 0.01
  (``convergence=None``), the previous default;
- ``minibatch``: ``pm.fit`` + ``pm.Minibatch`` (rows in RAM), with the same Adam.

Reported: the worst ``|mean - MAP| / posterior sd`` and the worst ``|sd / mean-field sd - 1|``
over the coefficients and the seeds, at each step count; the steps at which the default
first reaches 0.25 sd; and the steps per second of ``default`` and ``adam`` measured in
the same run. A plot goes to ``docs/source/examples/fidelity.png``.

Run ``python benchmarks/fidelity.py`` (1M and 10M rows, 3 seeds; ``--quick`` for 200k rows
and 2 seeds). Results: ``benchmarks/results/fidelity.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "variational" / "streaming"))

from common import (  # noqa: E402
    BATCH_SIZE,
    COLUMNS,
    load_rows,
    parquet_blocks,
    prepare_dataset,
    print_table,
    seed_model,
    write_json,
)
from glm_reference import glm_reference  # noqa: E402

CHECKPOINTS = (2_000, 5_000, 10_000, 20_000, 40_000)
PLOT = HERE.parent / "docs" / "source" / "examples" / "fidelity.png"


def trainer_curve(path, seed, convergence):
    """``[(steps, mean, sd, seconds of stepping)]`` of one Trainer fit, continued."""
    from pymc.variational.streaming import DataLoader, Trainer, parquet_source

    loader = DataLoader(
        parquet_source(path, columns=COLUMNS), batch_size=BATCH_SIZE, sample_shape=(14,), seed=seed
    )
    kwargs = {} if convergence else {"convergence": None}
    trainer = Trainer(
        dataloader=loader,
        model=seed_model(len(loader)),
        random_seed=seed,
        progressbar=False,
        **kwargs,
    )
    trainer.compile()
    curve, done = [], 0
    for steps in CHECKPOINTS:
        t = time.perf_counter()
        trainer.fit(steps - done)
        seconds = time.perf_counter() - t
        done = steps
        curve.append((steps, trainer.approx.mean.eval(), trainer.approx.std.eval(), seconds))
    return curve


def minibatch_curve(X, y, seed):
    import pymc as pm

    from pymc.variational.streaming import default_optimizer

    model = seed_model(len(X), pm.Minibatch(X, y, batch_size=BATCH_SIZE))
    inference = pm.ADVI(model=model, random_seed=seed)
    curve, done = [], 0
    for steps in CHECKPOINTS:
        t = time.perf_counter()
        if done == 0:
            inference.fit(steps, obj_optimizer=default_optimizer(), progressbar=False)
        else:
            inference.refine(steps - done, progressbar=False)
        seconds = time.perf_counter() - t
        done = steps
        curve.append((steps, inference.approx.mean.eval(), inference.approx.std.eval(), seconds))
    return curve


def errors(curve, reference):
    return [(steps, *reference.errors(mean, sd), seconds) for steps, mean, sd, seconds in curve]


def plot(curves: dict, rows_list) -> None:
    """``curves``: ``{"<fit> <rows>": [{"steps", "mean_error", "sd_error"}, ...]}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"default": "-", "adam": "--", "minibatch": ":"}
    colors = dict(zip(sorted(rows_list), ["tab:blue", "tab:red", "tab:green"]))
    labels = {
        "default": "Trainer default",
        "adam": "Trainer, Adam 0.01",
        "minibatch": "pm.Minibatch, Adam 0.01",
    }
    for key, curve in curves.items():
        name, rows = key.split()
        steps = [c["steps"] for c in curve]
        label = f"{labels[name]}, {int(rows) / 1e6:g}M rows"
        style = dict(color=colors[int(rows)], marker="o", label=label)
        axes[0].plot(steps, [c["mean_error"] for c in curve], styles[name], **style)
        axes[1].plot(steps, [c["sd_error"] for c in curve], styles[name], **style)
    for ax, target, ylabel in (
        (axes[0], 0.25, "worst |mean - MAP| / posterior sd"),
        (axes[1], 0.10, "worst |sd / mean-field sd - 1|"),
    ):
        ax.axhline(target, color="grey", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="steps (batch 4096)", ylabel=ylabel)
        ax.set_xticks(CHECKPOINTS, [f"{s // 1000}k" for s in CHECKPOINTS])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    axes[0].legend(fontsize=7)
    fig.suptitle(
        "Distance to the exact variational optimum (worst coefficient, worst of the seeds)"
    )
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200k rows, 2 seeds, no minibatch")
    parser.add_argument("--no-minibatch", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results" / "fidelity.json"))
    parser.add_argument("--replot", default=None, help="only redraw the plot from a results file")
    args = parser.parse_args(argv)
    if args.replot:
        saved = json.loads(Path(args.replot).read_text())
        plot(saved["curves"], saved["rows"])
        return
    if args.quick:
        args.rows, args.seeds, args.no_minibatch = [200_000], 2, True
    warnings.simplefilter("ignore")
    results, speeds, table = {}, {}, []
    for rows in args.rows:
        data = prepare_dataset(rows)
        t = time.perf_counter()
        reference = glm_reference(parquet_blocks(data.files))
        print(
            f"{rows:,d} rows: exact reference by Newton in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        contenders = {
            "default": lambda seed: trainer_curve(data.path, seed, convergence=True),
            "adam": lambda seed: trainer_curve(data.path, seed, convergence=False),
        }
        if not args.no_minibatch:
            X, y = load_rows(data.files)
            contenders["minibatch"] = lambda seed: minibatch_curve(X, y, seed)
        for name, run in contenders.items():
            per_seed = []
            for seed in range(1, args.seeds + 1):
                per_seed.append(errors(run(seed), reference))
                print(
                    f"  {name} seed {seed}: "
                    + ", ".join(f"{s // 1000}k {m:.2f} sd/{e:.0%}" for s, m, e, _ in per_seed[-1]),
                    flush=True,
                )
            curve = []
            for k, steps in enumerate(CHECKPOINTS):
                worst_mean = max(p[k][1] for p in per_seed)
                worst_sd = max(p[k][2] for p in per_seed)
                curve.append({"steps": steps, "mean_error": worst_mean, "sd_error": worst_sd})
                table.append([name, f"{rows:,d}", f"{steps:,d}", worst_mean, f"{worst_sd:.1%}"])
            results[(name, rows)] = curve
            # Steps per second after the first checkpoint (compilation and the first window excluded).
            stepped = sum(p[k][3] for p in per_seed for k in range(1, len(CHECKPOINTS)))
            speeds[(name, rows)] = args.seeds * (CHECKPOINTS[-1] - CHECKPOINTS[0]) / stepped
    print()
    print_table(["fit", "rows", "steps", "worst mean error (sd)", "worst sd error"], table)
    print()
    reach = {}
    for (name, rows), curve in results.items():
        hit = next(
            (c["steps"] for c in curve if c["mean_error"] <= 0.25 and c["sd_error"] <= 0.10), None
        )
        reach[f"{name} {rows}"] = hit
        print(
            f"{name} at {rows:,d} rows: within 0.25 sd and 10% from {hit:,d} steps"
            if hit
            else f"{name} at {rows:,d} rows: not within 0.25 sd and 10% by {CHECKPOINTS[-1]:,d} steps"
        )
    for rows in args.rows:
        if ("default", rows) in speeds:
            ratio = speeds[("default", rows)] / speeds[("adam", rows)]
            print(
                f"steps/s at {rows:,d} rows: default {speeds[('default', rows)]:,.0f}, adam {speeds[('adam', rows)]:,.0f} ({ratio:.2f}x)"
            )
    plot({f"{n} {r}": c for (n, r), c in results.items()}, args.rows)
    write_json(
        Path(args.out),
        {
            "rows": args.rows,
            "seeds": args.seeds,
            "checkpoints": CHECKPOINTS,
            "curves": {f"{n} {r}": c for (n, r), c in results.items()},
            "steps_per_second": {f"{n} {r}": v for (n, r), v in speeds.items()},
            "reach_0.25sd_and_10pct": reach,
        },
    )
    print(f"wrote {args.out} and {PLOT}")


if __name__ == "__main__":
    main()

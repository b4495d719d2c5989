"""Steps per second of a streaming fit against ``pm.fit`` + ``pm.Minibatch``, side by side.

Every contender runs the seed's logistic model (14 coefficients, batch 4096, loss computed
each step) on the same Criteo-like parquet data, in one process, interleaved over several
rounds so that both see the same machine. Reported figures are medians over the rounds and
ratios to ``pm.Minibatch`` measured in the same run:

- ``ceiling``: the compiled ADVI step alone on a batch that never changes, the bound for
  any data feed;
- ``minibatch``: ``pm.fit`` with ``pm.Minibatch`` over arrays held in RAM;
- ``trainer-thread``: the Trainer streaming from parquet, windows produced on a thread;
- ``trainer-process``: the same with ``workers=1``, a forked producer process.

The loader alone is compared with a raw ``ParquetFile.iter_batches`` scan into float64
blocks (rows/s over one shuffled epoch).

Run ``python benchmarks/throughput.py`` (``--rows``, ``--steps``, ``--rounds``); it writes
``benchmarks/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from criteo import DEFAULT_COMPRESSION, default_cache_root, prepare_data

BATCH = 4096


def seed_model(total_size, batch_dtype="float64"):
    import pymc as pm

    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=14)
        batch = pm.Data("batch", np.zeros((BATCH, 14), dtype=batch_dtype))
        logit = b[0] + pm.math.dot(batch[:, :13], b[1:])
        pm.Bernoulli("click", logit_p=logit, observed=batch[:, 13], total_size=total_size)
    return model


def time_trainer(path, steps, workers):
    from pymc.variational.streaming import DataLoader, Trainer, parquet_source

    loader = DataLoader(
        parquet_source(path), batch_size=BATCH, sample_shape=(14,), seed=1, workers=workers
    )
    trainer = Trainer(
        dataloader=loader, model=seed_model(len(loader)), random_seed=1, progressbar=False
    )
    trainer.fit(200)  # compile and warm up

    def run():
        t = time.perf_counter()
        trainer.fit(steps)
        return steps / (time.perf_counter() - t)

    return run


def time_minibatch(X, y, steps):
    import pymc as pm

    from pymc.variational.streaming import default_optimizer

    with pm.Model():
        X_mb, y_mb = pm.Minibatch(X, y, batch_size=BATCH)
        b = pm.Normal("b", 0.0, 1.5, shape=14)
        pm.Bernoulli(
            "click", logit_p=b[0] + pm.math.dot(X_mb, b[1:]), observed=y_mb, total_size=len(X)
        )
        inference = pm.ADVI(random_seed=1)
    inference.fit(200, obj_optimizer=default_optimizer(), progressbar=False)
    step = inference.state.step

    def run():
        # Inference.refine reuses the compiled step: the timed part is pm.fit's own loop.
        t = time.perf_counter()
        inference.refine(steps, progressbar=False)
        return steps / (time.perf_counter() - t)

    del step
    return run


def time_ceiling(X, y, steps):
    import pymc as pm

    from pymc.variational.streaming import default_optimizer

    model = seed_model(len(X))
    model["batch"].set_value(np.column_stack([X[:BATCH], y[:BATCH]]))
    inference = pm.ADVI(model=model, random_seed=1)
    step = inference.objective.step_function(score=True, obj_optimizer=default_optimizer())

    def run():
        t = time.perf_counter()
        for _ in range(steps):
            step()
        return steps / (time.perf_counter() - t)

    return run


def loader_vs_scan(path):
    """Rows/s of a raw parquet scan, and of one shuffled epoch of the DataLoader's batches."""
    from pymc.variational.streaming import DataLoader, parquet_source
    from pymc.variational.streaming.arrow import record_batch_to_array

    files = parquet_source(path).files
    t = time.perf_counter()
    rows = 0
    for f in files:
        for rb in pq.ParquetFile(f).iter_batches(batch_size=65536, use_threads=False):
            rows += len(record_batch_to_array(rb, np.float64))
    scan = rows / (time.perf_counter() - t)
    epochs = {}
    for name, kwargs in {"thread": {"workers": 0}, "process": {"workers": 1}}.items():
        loader = DataLoader(
            parquet_source(path), batch_size=BATCH, sample_shape=(14,), seed=1, **kwargs
        )
        n_batches = loader.batches_per_epoch
        t = time.perf_counter()
        with loader.iterate(recycle=True) as it:
            rows = sum(len(next(it)) for _ in range(n_batches))
        epochs[name] = rows / (time.perf_counter() - t)
    return scan, epochs


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--data", default=None, help="existing parquet files instead of generated ones"
    )
    parser.add_argument(
        "--compression", default=DEFAULT_COMPRESSION, help="codec of the generated files"
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "throughput.json")
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    path = prepare_data(args.rows, 2026, args.data, default_cache_root(), args.compression).path
    table = pq.read_table(path)
    data = np.column_stack([table[c].to_numpy() for c in table.column_names]).astype(np.float64)
    X, y = np.ascontiguousarray(data[:, :13]), np.ascontiguousarray(data[:, 13])
    del table, data

    runners = {
        "ceiling": time_ceiling(X, y, args.steps),
        "minibatch": time_minibatch(X, y, args.steps),
        "trainer-thread": time_trainer(path, args.steps, workers=0),
        "trainer-process": time_trainer(path, args.steps, workers=1),
    }
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(args.rounds):
        for name, run in runners.items():
            rates[name].append(run())
        print(
            f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:,.0f}" for n, v in rates.items()),
            flush=True,
        )
    median = {name: statistics.median(v) for name, v in rates.items()}
    scan, epochs = loader_vs_scan(path)
    epoch = max(epochs.values())
    result = {
        "rows": args.rows,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "steps_per_second": rates,
        "median_steps_per_second": median,
        "ratio_to_minibatch": {name: median[name] / median["minibatch"] for name in median},
        "loader_rows_per_second": epochs,
        "scan_rows_per_second": scan,
        "loader_to_scan": epoch / scan,
    }
    print(f"\n{'contender':<18}{'steps/s':>10}{'x minibatch':>13}")
    for name in runners:
        print(f"{name:<18}{median[name]:>10,.0f}{result['ratio_to_minibatch'][name]:>13.2f}")
    for name, rate in epochs.items():
        print(
            f"loader alone ({name}) {rate / 1e6:.1f} M rows/s, raw parquet scan {scan / 1e6:.1f} M rows/s: {rate / scan:.2f}x"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

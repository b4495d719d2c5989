"""Soak: a long streaming fit must not grow in memory or leak threads.

Runs the seed's logistic model for ``--steps`` steps (default 200,000) in chunks of
``fit(--chunk)`` calls, each of which starts and stops the loader's producer, and records
the process tree's RSS and the number of threads and child processes after every chunk.
It reports the RSS slope after warm-up (MB per 100k steps, least squares) and whether
threads or processes were left behind.

Run ``python benchmarks/soak.py``; it writes ``benchmarks/results/soak.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import warnings

from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BATCH_SIZE, prepare_dataset, seed_model


def tree_rss_mb(process: psutil.Process) -> float:
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "soak.json")
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    from pymc.variational.streaming import DataLoader, Trainer, parquet_source

    path = prepare_dataset(args.rows).path
    loader = DataLoader(
        parquet_source(path),
        batch_size=BATCH_SIZE,
        sample_shape=(14,),
        seed=1,
        workers=args.workers,
    )
    trainer = Trainer(
        dataloader=loader, model=seed_model(len(loader)), random_seed=1, progressbar=False
    )
    me = psutil.Process()
    threads_before, children_before = threading.active_count(), len(me.children(recursive=True))
    samples = []
    t0 = time.perf_counter()
    while trainer.state.step < args.steps:
        trainer.fit(min(args.chunk, args.steps - trainer.state.step))
        samples.append(
            {
                "step": trainer.state.step,
                "seconds": time.perf_counter() - t0,
                "rss_mb": tree_rss_mb(me),
                "threads": threading.active_count(),
                "children": len(me.children(recursive=True)),
            }
        )
        s = samples[-1]
        print(
            f"step {s['step']:>8,d}  RSS {s['rss_mb']:7.1f} MB  threads {s['threads']}  children {s['children']}",
            flush=True,
        )
    steps = np.array([s["step"] for s in samples], dtype=float)
    rss = np.array([s["rss_mb"] for s in samples])
    warm = steps >= steps.max() * 0.2  # skip the first fifth: caches and pools fill up
    slope = float(np.polyfit(steps[warm], rss[warm], 1)[0] * 100_000)
    result = {
        "steps": int(steps.max()),
        "seconds": samples[-1]["seconds"],
        "rss_slope_mb_per_100k_steps": slope,
        "rss_after_warmup_mb": [float(rss[warm].min()), float(rss[warm].max())],
        "threads_before": threads_before,
        "threads_after": samples[-1]["threads"],
        "children_before": children_before,
        "children_after": samples[-1]["children"],
        "samples": samples,
    }
    print(
        f"\n{result['steps']:,d} steps in {result['seconds']:.0f} s; RSS slope after warm-up "
        f"{slope:+.2f} MB per 100k steps (range {rss[warm].min():.1f}-{rss[warm].max():.1f} MB); "
        f"threads {threads_before} -> {result['threads_after']}, child processes "
        f"{children_before} -> {result['children_after']}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

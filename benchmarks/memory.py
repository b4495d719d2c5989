"""Peak memory of a streaming fit and of ``pm.Minibatch`` as the number of rows grows.

Each fit (the seed's logistic model, batch 4096) runs in a fresh process. This process
samples the PSS of that process *and its children* (a forked producer's memory counts)
every 20 ms and keeps the peak. PSS splits pages shared between processes, so a forked
producer is neither hidden nor counted twice.

Streaming fits run without a row cache, and with one (``DataLoader(cache=...)``): cold (an
empty cache, written during the fit) and warm (filled beforehand by a loader pass in
another process). The cache lives in a directory of its own under ``--cache-root``,
removed at the end.

Run ``python benchmarks/memory.py`` (``--rows 1000000 16000000``, ``--steps``); it prints a
table and the ratio of each streaming peak to the smallest one, and writes
``benchmarks/results/memory.json`` and, when matplotlib is installed, ``memory.png``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
import warnings

from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ENCODINGS, default_cache_root, prepare_dataset

BATCH = 4096


def streaming_fit(path: str, steps: int, workers: int, cache: str | None = None) -> None:
    import pymc as pm

    from pymc.variational.streaming import DataLoader, Trainer, parquet_source

    warnings.simplefilter("ignore")
    loader = DataLoader(
        parquet_source(path),
        batch_size=BATCH,
        sample_shape=(14,),
        seed=1,
        workers=workers,
        cache=cache,
    )
    with pm.Model():
        b = pm.Normal("b", 0.0, 1.5, shape=14)
        batch = pm.Data("batch", np.zeros((BATCH, 14)))
        pm.Bernoulli(
            "click",
            logit_p=b[0] + pm.math.dot(batch[:, :13], b[1:]),
            observed=batch[:, 13],
            total_size=len(loader),
        )
        Trainer(dataloader=loader, random_seed=1, progressbar=False).fit(steps)


def fill_cache(path: str, cache: str) -> None:
    """One epoch of the loader alone, which writes every shard to the cache."""
    from pymc.variational.streaming import DataLoader, parquet_source

    loader = DataLoader(parquet_source(path), batch_size=BATCH, sample_shape=(14,), cache=cache)
    for _ in loader.iterate(epochs=1, recycle=True):
        pass


def minibatch_fit(path: str, steps: int, workers: int, cache: str | None = None) -> None:
    import pyarrow.parquet as pq

    import pymc as pm

    from pymc.variational.streaming import default_optimizer

    warnings.simplefilter("ignore")
    table = pq.read_table(path)
    X = np.column_stack([table[f"I{i}"].to_numpy() for i in range(1, 14)]).astype(np.float64)
    y = table["label"].to_numpy().astype(np.float64)
    del table
    with pm.Model():
        X_mb, y_mb = pm.Minibatch(X, y, batch_size=BATCH)
        b = pm.Normal("b", 0.0, 1.5, shape=14)
        pm.Bernoulli(
            "click", logit_p=b[0] + pm.math.dot(X_mb, b[1:]), observed=y_mb, total_size=len(X)
        )
        pm.fit(steps, obj_optimizer=default_optimizer(), random_seed=1, progressbar=False)


def tree_pss_mb(process: psutil.Process) -> float:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total / 2**20


def peak_pss(target, path: str, steps: int, workers: int, cache: str | None) -> tuple[float, float]:
    """Peak PSS (MB) of a fit's process tree, and its wall time."""
    process = multiprocessing.get_context("spawn").Process(
        target=target, args=(path, steps, workers, cache)
    )
    t0 = time.perf_counter()
    process.start()
    watched = psutil.Process(process.pid)
    peak = 0.0
    while process.is_alive():
        try:
            peak = max(peak, tree_pss_mb(watched))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    process.join()
    if process.exitcode:
        raise RuntimeError(f"{target.__name__} failed with exit code {process.exitcode}")
    return peak, time.perf_counter() - t0


def plot(result: dict, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, runs in result["peaks_mb"].items():
        rows = sorted(int(r) for r in runs)
        ax.plot([r / 1e6 for r in rows], [runs[str(r)] for r in rows], marker="o", label=name)
    ax.set_xlabel("rows (millions)")
    ax.set_ylabel("peak PSS of the process tree (MB)")
    ax.set_title("Peak memory of an ADVI fit, batch 4096")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000, 16_000_000])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--encoding", default="default", choices=list(ENCODINGS))
    parser.add_argument(
        "--cache-root",
        type=Path,
        default=default_cache_root() / "memory-rows",
        help="where the row caches of the fits are made (removed at the end)",
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "memory.json")
    )
    args = parser.parse_args(argv)

    # name: (fit, workers, cache: None, "cold" or "warm")
    contenders = {
        "streaming (thread)": (streaming_fit, 0, None),
        "streaming (process)": (streaming_fit, 1, None),
        "streaming (cache, cold)": (streaming_fit, 1, "cold"),
        "streaming (cache, warm)": (streaming_fit, 1, "warm"),
        "pm.Minibatch": (minibatch_fit, 0, None),
    }
    peaks: dict[str, dict[str, float]] = {name: {} for name in contenders}
    args.cache_root.mkdir(parents=True, exist_ok=True)
    caches = Path(tempfile.mkdtemp(prefix="memory-", dir=args.cache_root))
    try:
        for rows in args.rows:
            path = prepare_dataset(rows, encoding=args.encoding).path
            for name, (target, workers, kind) in contenders.items():
                cache = None
                if kind is not None:
                    cache = tempfile.mkdtemp(dir=caches)
                    if kind == "warm":
                        filler = multiprocessing.get_context("spawn").Process(
                            target=fill_cache, args=(path, cache)
                        )
                        filler.start()
                        filler.join()
                peak, seconds = peak_pss(target, path, args.steps, workers, cache)
                if cache is not None:
                    shutil.rmtree(cache, ignore_errors=True)
                peaks[name][str(rows)] = peak
                print(
                    f"{rows:>12,d} rows  {name:<24} peak PSS {peak:8.0f} MB  ({seconds:.0f} s)",
                    flush=True,
                )
    finally:
        shutil.rmtree(caches, ignore_errors=True)
    smallest = str(min(args.rows))
    largest = str(max(args.rows))
    growth = {name: runs[largest] / runs[smallest] for name, runs in peaks.items()}
    print(f"\npeak at {int(largest):,d} rows / peak at {int(smallest):,d} rows:")
    for name, g in growth.items():
        print(f"  {name:<24} {g:.3f}")
    result = {"steps": args.steps, "batch_size": BATCH, "peaks_mb": peaks, "growth": growth}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Steps per second of a streaming fit against ``pm.fit`` + ``pm.Minibatch``, side by side,
on files written the way users write them.

Every contender runs the seed's logistic model (14 coefficients, batch 4096) on the same
Criteo-like rows, in one process, interleaved over several rounds so that all see the
same machine; unless named otherwise, with pymc's plain step, Adam at 0.01 and the loss
computed every step, as ``pm.fit`` runs it. Reported figures are medians over the rounds
and ratios measured in the same run:

- ``ceiling``: the compiled ADVI step alone on a batch that never changes, the bound for
  any data feed;
- ``minibatch``: ``pm.fit`` with ``pm.Minibatch`` over arrays held in RAM;
- ``trainer-nocache``: the Trainer streaming from the files (default producer: a forked
  process), decoding every epoch (``cache=None``);
- ``trainer-first-nocache``: the first epoch of a new Trainer without a cache (the
  producer's start-up included, as in the next one);
- ``trainer-cold``: the first epoch of a new Trainer with an empty row cache, which it
  fills;
- ``minibatch-read-first``: what ``pm.Minibatch`` needs before and during its first epoch
  when the rows lie in the same files: reading them into RAM (pyarrow's readers with their
  defaults, all cores) and one epoch of the compiled step; the counterpart of
  ``trainer-cold`` as a user meets it;
- ``trainer-cold-compile`` against ``minibatch-compile``: the same first epoch and that of
  a new ``pm.fit``, each timed from the call that compiles the step, as a user runs them;
- ``trainer-warm``: the Trainer reading the rows back from a warm cache;
- ``trainer-warm-persistent``: the same with ``persistent_workers=True``, which keeps the
  producer from one timed ``fit`` call to the next;
- ``trainer-warm-default``: the same with the Trainer's defaults (``Convergence()``);
- ``trainer-warm-log10``: the same with the loss computed every 10th step only
  (``log_every_n_steps=10``), against ``pm.fit``, which computes it every step.

The loader alone (one shuffled epoch of ``DataLoader.iterate``, float64 batches, thread
producer) is compared with a raw scan of the same files into a float64 2-D array:
``ParquetFile.iter_batches`` (or pyarrow's CSV reader) + ``to_tensor``, one thread.

Data: ``--rows`` rows in ``--files`` files, written with ``--encoding``: ``default``
(``pq.write_table(table)``: snappy, dictionary, float32), ``zstd``, ``gzip``,
``lz4-plain`` or ``csv`` (see ``benchmarks/common.py``).

Run ``python benchmarks/throughput.py --encoding default`` (``--rows``, ``--steps``,
``--rounds``); it writes ``benchmarks/results/throughput-<encoding>.json``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BATCH_SIZE,
    COLUMNS,
    ENCODINGS,
    default_cache_root,
    medians,
    paired_ratio,
    prepare_dataset,
    print_table,
    seed_model,
    side_by_side,
    write_json,
)

BATCH = BATCH_SIZE


def make_source(data):
    from pymc.variational.streaming import csv_source, parquet_source

    return csv_source(data.path) if data.encoding == "csv" else parquet_source(data.path)


class CacheDirs:
    """Fresh row-cache directories under one root, removed at the end."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="throughput-", dir=root))

    def fresh(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.root))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def new_trainer(source, cache, persistent=False, compiled=True, **options):
    """A Trainer, compiled unless ``compiled`` is False; pymc's plain step (Adam at 0.01)
    unless ``options`` say otherwise."""
    from pymc.variational.streaming import DataLoader, Trainer

    loader = DataLoader(
        source,
        batch_size=BATCH,
        sample_shape=(14,),
        seed=1,
        cache=cache,
        persistent_workers=persistent,
    )
    options = {"convergence": None, **options}
    trainer = Trainer(
        dataloader=loader,
        model=seed_model(len(loader)),
        random_seed=1,
        progressbar=False,
        **options,
    )
    if compiled:
        trainer.compile()
    return trainer


def time_fit(trainer, steps):
    def run():
        t = time.perf_counter()
        trainer.fit(steps)
        return steps / (time.perf_counter() - t)

    return run


def time_trainer(source, steps, cache, persistent=False, **options):
    trainer = new_trainer(source, cache, persistent, **options)
    trainer.fit(2 * trainer.dataloader.batches_per_epoch)  # warm up (and fill the cache)
    return time_fit(trainer, steps)


def time_first_epoch(source, dirs: CacheDirs | None, compiled=True):
    """Steps/s over the first epoch of a new Trainer whose row cache is empty, or without a
    cache when ``dirs`` is None; compiled before timing, or by ``fit`` when ``compiled`` is
    False."""

    def run():
        cache = dirs.fresh() if dirs is not None else None
        trainer = new_trainer(source, cache, compiled=compiled)
        rate = time_fit(trainer, trainer.dataloader.batches_per_epoch)()
        trainer.close()
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
        return rate

    return run


def minibatch_inference(X, y):
    import pymc as pm

    with pm.Model():
        X_mb, y_mb = pm.Minibatch(X, y, batch_size=BATCH)
        b = pm.Normal("b", 0.0, 1.5, shape=14)
        pm.Bernoulli(
            "click", logit_p=b[0] + pm.math.dot(X_mb, b[1:]), observed=y_mb, total_size=len(X)
        )
        return pm.ADVI(random_seed=1)


def time_minibatch_compiled(X, y):
    """Steps/s over the first epoch of a new ``pm.fit``, which compiles the step."""
    from pymc.variational.streaming import default_optimizer

    n = -(-len(X) // BATCH)

    def run():
        inference = minibatch_inference(X, y)
        t = time.perf_counter()
        inference.fit(n, obj_optimizer=default_optimizer(), progressbar=False)
        return n / (time.perf_counter() - t)

    return run


def read_into_ram(data):
    """The files as float64 arrays X and y, read the way a pm.Minibatch user reads them."""
    if data.encoding == "csv":
        types = dict.fromkeys(COLUMNS, pa.float64())
        options = pa_csv.ConvertOptions(include_columns=COLUMNS, column_types=types)
        table = pa.concat_tables(pa_csv.read_csv(f, convert_options=options) for f in data.files)
    else:
        table = pq.read_table(data.files, columns=COLUMNS)
    columns = [table.column(c).to_numpy().astype(np.float64) for c in COLUMNS]
    return np.column_stack(columns[:13]), columns[13]


def time_minibatch_read_first(data, X, y):
    """Steps/s of pm.Minibatch's first epoch counting the read of the files into RAM (the
    step compiled before, as for ``trainer-cold``)."""
    from pymc.variational.streaming import default_optimizer

    inference = minibatch_inference(X, y)
    inference.fit(200, obj_optimizer=default_optimizer(), progressbar=False)
    n = -(-len(X) // BATCH)

    def run():
        t = time.perf_counter()
        X_read, _ = read_into_ram(data)
        assert X_read.shape == X.shape
        inference.refine(n, progressbar=False)
        return n / (time.perf_counter() - t)

    return run


def time_minibatch(X, y, steps):
    from pymc.variational.streaming import default_optimizer

    inference = minibatch_inference(X, y)
    inference.fit(200, obj_optimizer=default_optimizer(), progressbar=False)

    def run():
        # Inference.refine reuses the compiled step: the timed part is pm.fit's own loop.
        t = time.perf_counter()
        inference.refine(steps, progressbar=False)
        return steps / (time.perf_counter() - t)

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


def raw_scan(data):
    """Rows/s of one thread turning every file into float64 2-D blocks."""
    from pymc.variational.streaming.arrow import record_batch_to_array

    def batches(f):
        if data.encoding == "csv":
            types = dict.fromkeys(COLUMNS, pa.float64())
            options = pa_csv.ConvertOptions(include_columns=COLUMNS, column_types=types)
            read = pa_csv.ReadOptions(block_size=1 << 22, use_threads=False)
            return pa_csv.open_csv(f, read_options=read, convert_options=options)
        return pq.ParquetFile(f).iter_batches(batch_size=65536, use_threads=False)

    def run():
        t = time.perf_counter()
        rows = sum(
            len(record_batch_to_array(rb, np.float64)) for f in data.files for rb in batches(f)
        )
        return rows / (time.perf_counter() - t)

    return run


def loader_epoch(source, cache, dirs: CacheDirs | None = None):
    """Rows/s of one shuffled epoch of the loader alone; a fresh cache per call when
    ``cache`` is ``"cold"``."""
    from pymc.variational.streaming import DataLoader

    def run():
        where = dirs.fresh() if cache == "cold" else cache
        loader = DataLoader(source, batch_size=BATCH, sample_shape=(14,), seed=1, cache=where)
        n = loader.batches_per_epoch
        t = time.perf_counter()
        with loader.iterate(recycle=True, workers=0) as it:
            rows = sum(len(next(it)) for _ in range(n))
        rate = rows / (time.perf_counter() - t)
        if cache == "cold":
            shutil.rmtree(where, ignore_errors=True)
        return rate

    return run


def load_in_memory(source):
    blocks = [b for shard in source.shards() for b in source.read_shard(shard, np.float64)]
    data = np.concatenate(blocks)
    return np.ascontiguousarray(data[:, :13]), np.ascontiguousarray(data[:, 13])


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoding", default="default", choices=list(ENCODINGS))
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--cache-root",
        type=Path,
        default=default_cache_root() / "throughput-rows",
        help="where the row caches of the contenders are made (removed at the end)",
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=None,
        help="before each measurement, wait until the machine is this idle (e.g. 0.9)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from pymc.variational.streaming import Convergence

    out = (
        args.out or Path(__file__).resolve().parent / "results" / f"throughput-{args.encoding}.json"
    )

    data = prepare_dataset(args.rows, encoding=args.encoding, files=args.files)
    source = make_source(data)
    X, y = load_in_memory(source)
    dirs = CacheDirs(args.cache_root)
    warm = dirs.fresh()
    try:
        steps = {
            "ceiling": time_ceiling(X, y, args.steps),
            "minibatch": time_minibatch(X, y, args.steps),
            "trainer-nocache": time_trainer(source, args.steps, None),
            "trainer-first-nocache": time_first_epoch(source, None),
            "trainer-cold": time_first_epoch(source, dirs),
            "minibatch-read-first": time_minibatch_read_first(data, X, y),
            "minibatch-compile": time_minibatch_compiled(X, y),
            "trainer-cold-compile": time_first_epoch(source, dirs, compiled=False),
            "trainer-warm": time_trainer(source, args.steps, warm),
            "trainer-warm-persistent": time_trainer(source, args.steps, warm, persistent=True),
            "trainer-warm-default": time_trainer(
                source, args.steps, warm, convergence=Convergence()
            ),
            "trainer-warm-log10": time_trainer(source, args.steps, warm, log_every_n_steps=10),
        }
        loader = {
            "raw-scan": raw_scan(data),
            "loader-nocache": loader_epoch(source, None),
            "loader-cold": loader_epoch(source, "cold", dirs),
            "loader-warm": loader_epoch(source, warm),
        }
        rates = side_by_side({**steps, **loader}, args.rounds, quiet=args.quiet)
    finally:
        dirs.remove()
    median = medians(rates)
    mb, ceiling, scan = median["minibatch"], median["ceiling"], median["raw-scan"]
    paired = {n: paired_ratio(rates, n, "minibatch") for n in steps}
    paired_ceiling = {n: paired_ratio(rates, n, "ceiling") for n in steps}
    paired_scan = {n: paired_ratio(rates, n, "raw-scan") for n in loader}
    compiled = median["trainer-cold-compile"] / median["minibatch-compile"]
    read_first = median["trainer-cold"] / median["minibatch-read-first"]
    paired_read_first = paired_ratio(rates, "trainer-cold", "minibatch-read-first")
    paired_compiled = paired_ratio(rates, "trainer-cold-compile", "minibatch-compile")
    print(
        f"\n{args.encoding}: {args.rows:,d} rows in {args.files} files, medians of "
        f"{args.rounds} rounds (paired: median of the ratios within each round)"
    )
    print_table(
        ["contender", "steps/s", "x minibatch", "x ceiling", "paired x mb", "paired x ceil"],
        [
            [n, median[n], median[n] / mb, median[n] / ceiling, paired[n], paired_ceiling[n]]
            for n in steps
        ],
    )
    print(
        f"first epoch timed from the compiling call: trainer-cold-compile / minibatch-compile "
        f"= {compiled:.2f}x (paired {paired_compiled:.2f}x)"
    )
    print(
        f"first epoch counting pm.Minibatch's read of the files: trainer-cold / "
        f"minibatch-read-first = {read_first:.2f}x (paired {paired_read_first:.2f}x)\n"
    )
    print_table(
        ["loader alone", "M rows/s", "x raw scan", "paired"],
        [[n, median[n] / 1e6, median[n] / scan, paired_scan[n]] for n in loader],
    )
    write_json(
        out,
        {
            "encoding": args.encoding,
            "rows": args.rows,
            "files": args.files,
            "steps_per_round": args.steps,
            "rounds": args.rounds,
            "rates": rates,
            "median": median,
            "ratio_to_minibatch": {n: median[n] / mb for n in steps},
            "ratio_to_ceiling": {n: median[n] / ceiling for n in steps},
            "ratio_to_raw_scan": {n: median[n] / scan for n in loader},
            "paired_ratio_to_minibatch": paired,
            "paired_ratio_to_ceiling": paired_ceiling,
            "paired_ratio_to_raw_scan": paired_scan,
            "first_epoch_compiled_ratio": compiled,
            "paired_first_epoch_compiled_ratio": paired_compiled,
            "first_epoch_read_first_ratio": read_first,
            "paired_first_epoch_read_first_ratio": paired_read_first,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

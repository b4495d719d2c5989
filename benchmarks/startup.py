"""Start-up cost of a loader: building ``len(loader)`` reads footers only.

Times ``DataLoader(parquet_source(folder), ...)`` and ``len(loader)`` on folders of parquet
files, varying the number of files and the rows per file separately. Start-up should grow
with the number of files (one footer each) and not with the number of rows.

Run ``python benchmarks/startup.py``; it writes ``benchmarks/results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_folder(folder: Path, files: int, rows: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    table = pa.table({f"c{j}": rng.normal(size=rows).astype(np.float32) for j in range(14)})
    for k in range(files):
        pq.write_table(
            table, folder / f"part-{k:05d}.parquet", compression="lz4", use_dictionary=False
        )


def time_startup(folder: Path, repeats: int = 3) -> float:
    from pymc.variational.streaming import DataLoader, parquet_source

    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        loader = DataLoader(parquet_source(folder), batch_size=4096, sample_shape=(14,))
        len(loader)
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "startup.json")
    )
    args = parser.parse_args(argv)
    cases = [(10, 1_000), (100, 1_000), (1_000, 1_000), (100, 100_000)]
    result = []
    with tempfile.TemporaryDirectory() as tmp:
        for files, rows in cases:
            folder = Path(tmp) / f"{files}x{rows}"
            write_folder(folder, files, rows)
            seconds = time_startup(folder)
            result.append(
                {"files": files, "rows_per_file": rows, "rows": files * rows, "seconds": seconds}
            )
            print(
                f"{files:>6,d} files x {rows:>7,d} rows = {files * rows:>11,d} rows: {seconds * 1e3:8.1f} ms "
                f"({seconds / files * 1e3:.2f} ms per file)",
                flush=True,
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Where decoding time goes: ways of reading the same files into 2-D numpy rows, side by side.

For each encoding of :data:`common.ENCODINGS` (and plain snappy, and float64 columns), every
reader turns all rows of the files into C-ordered ``(rows, 14)`` arrays of the files' own
float dtype (what the loader decodes into); rates are rows/s, medians over interleaved
rounds, with ratios to ``iter_batches``, the loader's reader before this study.

Readers (parquet):

- ``iter_batches``: ``ParquetFile.iter_batches(65536, use_threads=False)`` + ``to_tensor``;
- ``batch-256k``: the same with batches of 262,144 rows;
- ``no-prebuffer``: ``ParquetFile(pre_buffer=False)``;
- ``buffer-1M``: ``ParquetFile(buffer_size=1 << 20)`` (a buffered input stream);
- ``row-group``: ``read_row_group(use_threads=False)`` + ``to_tensor``;
- ``per-column``: ``iter_batches`` + one ``to_numpy`` per column into the 2-D array;
- ``arrow-threads``: ``iter_batches(use_threads=True)`` (Arrow's pool, both cores);
- ``2-threads``: two Python threads, each decoding every other file with one Arrow thread;
- ``2-processes``: two forked processes, each decoding every other file.

Readers (CSV): the loader's (``block_size`` 4 MB, one thread), 16 MB blocks, and pyarrow's
multithreaded parser.

Run ``python benchmarks/decode.py`` (``--rows``, ``--rounds``); it prints a table per
encoding and writes ``benchmarks/results/decode.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import warnings

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import COLUMNS, medians, prepare_dataset, print_table, side_by_side, write_json

BLOCK = 65_536


def to_rows(rb: pa.RecordBatch) -> np.ndarray:
    return np.asarray(rb.to_tensor(null_to_nan=True, row_major=True))


def per_column(rb: pa.RecordBatch) -> np.ndarray:
    out = np.empty((rb.num_rows, rb.num_columns), rb.column(0).type.to_pandas_dtype())
    for j, col in enumerate(rb.columns):
        out[:, j] = col.to_numpy(zero_copy_only=False)
    return out


def scan_file(f: str, batch=BLOCK, threads=False, convert=to_rows, **open_kwargs) -> int:
    pf = pq.ParquetFile(f, **open_kwargs)
    rows = 0
    for rb in pf.iter_batches(batch_size=batch, columns=COLUMNS, use_threads=threads):
        rows += len(convert(rb))
    return rows


def scan_row_groups(f: str) -> int:
    pf = pq.ParquetFile(f)
    return sum(
        len(
            to_rows(
                pf.read_row_group(rg, columns=COLUMNS, use_threads=False)
                .combine_chunks()
                .to_batches()[0]
            )
        )
        for rg in range(pf.num_row_groups)
    )


def scan_csv(f: str, block_size=1 << 22, threads=False) -> int:
    types = dict.fromkeys(COLUMNS, pa.float64())
    reader = pa_csv.open_csv(
        f,
        read_options=pa_csv.ReadOptions(block_size=block_size, use_threads=threads),
        convert_options=pa_csv.ConvertOptions(include_columns=COLUMNS, column_types=types),
    )
    return sum(len(to_rows(rb)) for rb in reader)


def _scan_share(files, k, scan, out):
    out.send(sum(scan(f) for f in files[k::2]))


def in_processes(files: list[str], scan: Callable[[str], int]) -> int:
    context = multiprocessing.get_context("fork")
    pipes = [context.Pipe(duplex=False) for _ in range(2)]
    procs = [
        context.Process(target=_scan_share, args=(files, k, scan, pipes[k][1])) for k in range(2)
    ]
    for p in procs:
        p.start()
    rows = sum(pipes[k][0].recv() for k in range(2))
    for p in procs:
        p.join()
    return rows


def in_threads(files: list[str], scan: Callable[[str], int]) -> int:
    with ThreadPoolExecutor(2) as pool:
        return sum(pool.map(lambda k: sum(scan(f) for f in files[k::2]), range(2)))


def rate(read_all: Callable[[], int]) -> Callable[[], float]:
    def run() -> float:
        t = time.perf_counter()
        rows = read_all()
        return rows / (time.perf_counter() - t)

    return run


def parquet_readers(files: list[str]) -> dict[str, Callable[[], float]]:
    each = lambda scan: rate(lambda: sum(scan(f) for f in files))  # noqa: E731
    return {
        "iter_batches": each(scan_file),
        "batch-256k": each(lambda f: scan_file(f, batch=1 << 18)),
        "no-prebuffer": each(lambda f: scan_file(f, pre_buffer=False)),
        "buffer-1M": each(lambda f: scan_file(f, buffer_size=1 << 20)),
        "row-group": each(scan_row_groups),
        "per-column": each(lambda f: scan_file(f, convert=per_column)),
        "arrow-threads": each(lambda f: scan_file(f, threads=True)),
        "2-threads": rate(lambda: in_threads(files, scan_file)),
        "2-processes": rate(lambda: in_processes(files, scan_file)),
    }


def csv_readers(files: list[str]) -> dict[str, Callable[[], float]]:
    each = lambda scan: rate(lambda: sum(scan(f) for f in files))  # noqa: E731
    return {
        "iter_batches": each(scan_csv),  # the loader's reader, named as the reference
        "block-16M": each(lambda f: scan_csv(f, block_size=1 << 24)),
        "arrow-threads": each(lambda f: scan_csv(f, threads=True)),
        "2-processes": rate(lambda: in_processes(files, scan_csv)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--encodings",
        nargs="+",
        default=["default", "default-float64", "zstd", "gzip", "lz4-plain", "snappy-plain", "csv"],
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "decode.json")
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    result = {}
    for encoding in args.encodings:
        dtype = np.float64 if encoding.endswith("-float64") else np.float32
        data = prepare_dataset(
            args.rows, encoding=encoding.removesuffix("-float64"), files=args.files, dtype=dtype
        )
        readers = csv_readers(data.files) if encoding == "csv" else parquet_readers(data.files)
        print(f"\n== {encoding} ==", flush=True)
        rates = side_by_side(readers, args.rounds, verbose=False)
        median = medians(rates)
        base = median["iter_batches"]
        print_table(
            ["reader", "M rows/s", "x iter_batches"],
            [[name, m / 1e6, m / base] for name, m in median.items()],
        )
        result[encoding] = {"rows_per_second": rates, "median": median}
    write_json(Path(args.out), {"rows": args.rows, "files": args.files, "encodings": result})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

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
"""What the benchmarks share: Criteo-like rows with a known truth, files written the way
users write them, timing side by side, tables and JSON.

Data
----
13 heavy-tailed, partly correlated, zero-inflated count features (Poisson-lognormal and
rounded-lognormal counts driven by a 3-factor Gaussian copula), transformed as
``x = log1p(count)`` and standardized with the population mean and standard deviation of
all rows (a first pass), plus a label drawn from a logistic model with known
coefficients (intercept -3.7: a click rate of about 3%). Columns ``I1..I13, label``.

:func:`write_dataset` writes them in one of :data:`ENCODINGS`. ``"default"`` is what
``pq.write_table(table)`` writes (snappy, dictionary encoding, float32 columns, pyarrow's
row groups); pandas' ``to_parquet`` and Spark write the same. :func:`prepare_dataset`
keeps complete datasets under ``~/.cache/pymc-streaming/`` and reuses them.

Timing
------
:func:`side_by_side` runs every contender once per round, in a rotating order, so that all
of them see the same machine; report medians and ratios measured in the same run, never
absolute numbers from different runs.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = [f"I{i}" for i in range(1, 14)]
COLUMNS = [*FEATURES, "label"]
BATCH_SIZE = 4096

# Bump when the generating process changes, so that stale datasets are regenerated.
GENERATOR_VERSION = 2
ROW_GROUP_ROWS = 100_000
ROW_GROUPS_PER_FILE = 10
MIN_FILES = 4

#: File formats of :func:`write_dataset`: keyword arguments of ``pq.write_table``, or
#: ``None`` for CSV. ``"<codec>-plain"`` (e.g. ``"snappy-plain"``, ``"none-plain"``) also
#: works: plain-encoded floats compressed with that codec.
ENCODINGS: dict[str, dict | None] = {
    "default": {},  # pyarrow's defaults: snappy, dictionary encoding
    "zstd": {"compression": "zstd"},
    "gzip": {"compression": "gzip"},
    "lz4-plain": {"compression": "lz4", "use_dictionary": False},
    "csv": None,
}

# Per feature: log-scale location and spread of the count rate, probability of a structural
# zero, and whether the count is Poisson(rate) (overdispersed like a negative binomial) or
# floor(rate) (a rounded lognormal, for the huge counters such as Criteo's I5).
FEATURE_MU = np.array([0.3, 2.5, 1.8, 1.5, 8.0, 3.5, 1.5, 2.2, 4.0, -0.8, 0.8, -1.5, 2.0])
FEATURE_SIGMA = np.array([1.0, 1.5, 1.2, 0.9, 1.8, 1.6, 1.4, 1.0, 1.3, 0.8, 1.0, 1.2, 1.1])
ZERO_PROB = np.array([0.45, 0.05, 0.20, 0.20, 0.02, 0.20, 0.05, 0.01, 0.03, 0.40, 0.10, 0.75, 0.20])
ROUNDED_LOGNORMAL = np.zeros(13, dtype=bool)
ROUNDED_LOGNORMAL[[4, 8]] = True

# Loadings of the latent Gaussian copula on 3 factors: I2, I3, I4, I6 move together, as do
# I5, I7, I9, I13, and I1, I10, I11; I8 and I12 are independent of the rest.
LOADINGS = np.zeros((13, 3))
LOADINGS[[1, 2, 3, 5], 0] = [0.9, 0.8, 0.75, 0.85]
LOADINGS[[4, 6, 8, 12], 1] = [0.85, 0.7, 0.9, 0.6]
LOADINGS[[0, 9, 10], 2] = [0.8, 0.7, 0.6]
UNIQUE_SD = np.sqrt(1.0 - (LOADINGS**2).sum(axis=1))

TRUE_INTERCEPT = -3.7
TRUE_COEFS = np.array(
    [0.35, -0.25, 0.20, 0.0, 0.30, -0.15, 0.10, 0.25, 0.0, -0.20, 0.15, 0.05, -0.10]
)


# ----------------------------------------------------------------------------- the truth
def simulate_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw ``n`` rows of the 13 count features, as float64."""
    factors = rng.standard_normal((n, LOADINGS.shape[1]))
    latent = factors @ LOADINGS.T + rng.standard_normal((n, 13)) * UNIQUE_SD
    rates = np.exp(FEATURE_MU + FEATURE_SIGMA * latent)
    counts = np.floor(rates)
    poisson = ~ROUNDED_LOGNORMAL
    counts[:, poisson] = rng.poisson(rates[:, poisson])
    counts[rng.random((n, 13)) < ZERO_PROB] = 0.0
    return counts


def sigmoid(eta: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-eta))


def feature_rng(seed: int, group: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0, group])


def label_rng(seed: int, group: int) -> np.random.Generator:
    return np.random.default_rng([seed, 1, group])


def row_group_sizes(rows: int) -> list[int]:
    """Rows of each generated group (the unit of generation, not necessarily of the file)."""
    sizes = [ROW_GROUP_ROWS] * (rows // ROW_GROUP_ROWS)
    if rows % ROW_GROUP_ROWS:
        sizes.append(rows % ROW_GROUP_ROWS)
    return sizes


def file_layout(num_groups: int, files: int | None = None) -> list[list[int]]:
    """Group indices of each file: ``files`` files, or at least ``MIN_FILES`` with at most
    ``ROW_GROUPS_PER_FILE`` groups each."""
    if files is None:
        files = max(MIN_FILES, math.ceil(num_groups / ROW_GROUPS_PER_FILE))
    files = min(num_groups, files)
    return [part.tolist() for part in np.array_split(np.arange(num_groups), files)]


def log_count_moments(sizes: Sequence[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """First pass: mean and standard deviation of ``log1p(count)`` over all rows."""
    n_total, mean, m2 = 0, np.zeros(13), np.zeros(13)
    for group, n in enumerate(sizes):
        x = np.log1p(simulate_counts(feature_rng(seed, group), n))
        x_mean = x.mean(axis=0)
        delta = x_mean - mean
        n_new = n_total + n
        # Chan et al.'s pairwise update: exact and stable for any number of rows.
        m2 += ((x - x_mean) ** 2).sum(axis=0) + delta**2 * n_total * n / n_new
        mean += delta * n / n_new
        n_total = n_new
    return mean, np.sqrt(m2 / n_total)


def simulate_row_group(
    seed: int, group: int, n: int, mean: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """Second pass: standardized float32 features of one group and their labels."""
    x = ((np.log1p(simulate_counts(feature_rng(seed, group), n)) - mean) / std).astype(np.float32)
    # The truth holds for the float32 values as stored.
    eta = TRUE_INTERCEPT + x.astype(np.float64) @ TRUE_COEFS
    y = (label_rng(seed, group).random(n) < sigmoid(eta)).astype(np.float32)
    return np.column_stack([x, y])


# ----------------------------------------------------------------------------- files
def writer_options(encoding: str) -> dict | None:
    """``pq.write_table`` keyword arguments of an encoding; None for CSV."""
    if encoding in ENCODINGS:
        return ENCODINGS[encoding]
    codec, _, plain = encoding.rpartition("-")
    if plain == "plain" and codec:
        return {"compression": codec, "use_dictionary": False}
    raise ValueError(f"unknown encoding {encoding!r}; use one of {[*ENCODINGS]} or '<codec>-plain'")


def write_dataset(
    folder: Path,
    rows: int,
    seed: int,
    encoding: str = "default",
    files: int | None = None,
    row_group_rows: int | None = None,
    nullable: bool = True,
    dtype: Any = np.float32,
) -> dict[str, Any]:
    """Generate ``rows`` rows into ``folder`` in ``encoding`` and return the manifest,
    which is written last (a folder without one is incomplete).

    Parameters
    ----------
    folder : Path
    rows, seed : int
    encoding : str
        A key of :data:`ENCODINGS`, or ``"<codec>-plain"``.
    files : int, optional
        Number of files; by default at least 4, with at most 10 groups of 100,000 rows each.
    row_group_rows : int, optional
        Parquet row group size; pyarrow's default (as users get it) when None.
    nullable : bool
        Nullable columns, as pandas and Spark write them.
    dtype : numpy dtype
        dtype of the stored columns.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    options = writer_options(encoding)
    suffix = ".csv" if options is None else ".parquet"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("*.parquet"), *folder.glob("*.csv"), *folder.glob("*.tmp")]:
        stale.unlink()
    sizes = row_group_sizes(rows)
    mean, std = log_count_moments(sizes, seed)
    type_ = pa.from_numpy_dtype(np.dtype(dtype))
    schema = pa.schema([pa.field(c, type_, nullable=nullable) for c in COLUMNS])
    names, clicks = [], 0
    for k, groups in enumerate(file_layout(len(sizes), files)):
        block = np.concatenate(
            [simulate_row_group(seed, g, sizes[g], mean, std) for g in groups]
        ).astype(dtype)
        clicks += int(block[:, -1].sum())
        table = pa.Table.from_arrays(
            [pa.array(block[:, j]) for j in range(len(COLUMNS))], schema=schema
        )
        name = f"part-{k:05d}{suffix}"
        tmp = folder / f"{name}.tmp"
        if options is None:
            pa_csv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp, row_group_size=row_group_rows, **options)
        os.replace(tmp, folder / name)
        names.append({"name": name, "rows": len(block)})
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "rows": rows,
        "seed": seed,
        "encoding": encoding,
        "layout": [files, row_group_rows, nullable, np.dtype(dtype).name],
        "files": names,
        "clicks": clicks,
        "click_rate": clicks / rows,
        "log1p_mean": mean.tolist(),
        "log1p_std": std.tolist(),
        "true_intercept": TRUE_INTERCEPT,
        "true_coefs": TRUE_COEFS.tolist(),
    }
    tmp = folder / "_manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / "_manifest.json")
    return manifest


def complete_manifest(folder: Path, wanted: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest of a complete dataset in ``folder`` written with ``wanted``, else None."""
    try:
        manifest = json.loads((folder / "_manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if any(manifest.get(k) != v for k, v in wanted.items()):
        return None
    if not all((folder / f["name"]).exists() for f in manifest.get("files", [])):
        return None
    return manifest


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/pymc-streaming``, or ``~/.cache/pymc-streaming``."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pymc-streaming"


@dataclass(frozen=True)
class Dataset:
    """A generated dataset: where it lies and its manifest."""

    path: str
    rows: int
    encoding: str
    manifest: dict
    generate_seconds: float | None = None

    @property
    def files(self) -> list[str]:
        return [str(Path(self.path) / f["name"]) for f in self.manifest["files"]]


def prepare_dataset(
    rows: int,
    seed: int = 2026,
    encoding: str = "default",
    files: int | None = None,
    row_group_rows: int | None = None,
    nullable: bool = True,
    dtype: Any = np.float32,
    root: Path | None = None,
    name: str | None = None,
) -> Dataset:
    """The dataset of these options, generated into the cache root unless already there."""
    layout = [files, row_group_rows, nullable, np.dtype(dtype).name]
    if name is None:
        name = f"rows-{rows}-{seed}-{encoding}-{files}-{row_group_rows}-{int(nullable)}-{np.dtype(dtype).name}"
    folder = (root or default_cache_root()) / name
    wanted = {
        "generator_version": GENERATOR_VERSION,
        "rows": rows,
        "seed": seed,
        "encoding": encoding,
        "layout": layout,
    }
    manifest = complete_manifest(folder, wanted)
    seconds = None
    if manifest is None:
        print(f"Generating {rows:,d} Criteo-like rows ({encoding}) into {folder} ...", flush=True)
        t = time.perf_counter()
        manifest = write_dataset(
            folder, rows, seed, encoding, files, row_group_rows, nullable, dtype
        )
        seconds = time.perf_counter() - t
        print(f"  done in {seconds:.1f} s", flush=True)
    return Dataset(str(folder), rows, encoding, manifest, seconds)


# ----------------------------------------------------------------------------- models and rows
def seed_model(total_size: int, minibatch: tuple | None = None):
    """The seed's logistic regression: 14 coefficients, Normal(0, 1.5) priors, on a
    ``pm.Data`` placeholder of one batch, or on ``pm.Minibatch`` arrays ``(X, y)``."""
    import pymc as pm

    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=14)
        if minibatch is None:
            batch = pm.Data("batch", np.zeros((BATCH_SIZE, 14)))
            X, y = batch[:, :13], batch[:, 13]
        else:
            X, y = minibatch
        pm.Bernoulli(
            "click", logit_p=b[0] + pm.math.dot(X, b[1:]), observed=y, total_size=total_size
        )
    return model


def parquet_blocks(files: Sequence[str]) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """A function giving ``(X, y)`` float64 blocks of every row of ``files``, read anew
    each call (for Newton's method on rows that need not fit in memory)."""
    import pyarrow.parquet as pq

    def blocks():
        for f in files:
            for rb in pq.ParquetFile(f).iter_batches(batch_size=1 << 20, columns=COLUMNS):
                data = np.column_stack([rb.column(c).to_numpy() for c in COLUMNS]).astype(
                    np.float64
                )
                yield data[:, :13], data[:, 13]

    return blocks


def load_rows(files: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every row in memory, as ``pm.Minibatch`` needs them: ``(X, y)`` float64."""
    X, y = zip(*parquet_blocks(files)())
    return np.ascontiguousarray(np.concatenate(X)), np.concatenate(y)


# ----------------------------------------------------------------------------- timing
def idle_fraction(seconds: float = 0.5) -> float:
    """Fraction of the machine's CPU time spent idle over ``seconds`` (Linux; 1.0
    elsewhere)."""
    try:
        with open("/proc/stat") as f:
            a = [int(x) for x in f.readline().split()[1:]]
        time.sleep(seconds)
        with open("/proc/stat") as f:
            b = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 1.0
    delta = [y - x for x, y in zip(a, b)]
    return (delta[3] + delta[4]) / max(sum(delta), 1)  # idle + iowait


def wait_until_idle(min_idle: float, timeout: float = 600.0) -> bool:
    """Wait until the machine is at least ``min_idle`` idle (other users' jobs have
    paused); False if it never was within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if idle_fraction() >= min_idle:
            return True
    return False


def side_by_side(
    runners: Mapping[str, Callable[[], float]],
    rounds: int,
    verbose: bool = True,
    quiet: float | None = None,
) -> dict[str, list[float]]:
    """Call every runner once per round, in an order rotated each round, and collect the
    rates they return (higher is better).

    With ``quiet``, each call waits until the machine is that idle (a fraction, e.g. 0.9):
    on a shared machine, contenders that need a second core (a producer process) are
    otherwise measured against other people's jobs rather than against each other.
    """
    names = list(runners)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if quiet is not None and not wait_until_idle(quiet):
                print(f"  (the machine was never {quiet:.0%} idle; measuring {name} anyway)")
            rates[name].append(float(runners[name]()))
        if verbose:
            print(
                f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:,.0f}" for n, v in rates.items()),
                flush=True,
            )
    return rates


def medians(rates: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in rates.items()}


def ratios(median: Mapping[str, float], reference: str) -> dict[str, float]:
    return {name: value / median[reference] for name, value in median.items()}


def paired_ratio(rates: Mapping[str, Sequence[float]], name: str, reference: str) -> float:
    """Median over rounds of ``name``'s rate over ``reference``'s in the same round: on a
    shared machine whose load drifts, steadier than the ratio of the medians."""
    return statistics.median(a / b for a, b in zip(rates[name], rates[reference]))


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain text table; floats with two decimals, large numbers with thousands commas."""

    def cell(x: Any) -> str:
        if isinstance(x, float):
            return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}"
        return str(x)

    cells = [[cell(x) for x in row] for row in rows]
    widths = [max(len(h), *(len(r[j]) for r in cells)) for j, h in enumerate(header)]
    print(
        "  ".join(
            h.ljust(w) if j == 0 else h.rjust(w) for j, (h, w) in enumerate(zip(header, widths))
        )
    )
    for r in cells:
        print(
            "  ".join(
                x.ljust(w) if j == 0 else x.rjust(w) for j, (x, w) in enumerate(zip(r, widths))
            )
        )


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")

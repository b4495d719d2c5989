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
"""A local cache of decoded rows: each shard is decoded (and downloaded) once.

The first epoch writes every shard it reads as a row file (raw row-major rows in the
dtype the loader decodes into, see :mod:`~pymc.variational.streaming.rowfile`) to a local
directory; later epochs, and later fits, read them back with ``pread`` instead of
decompressing, decoding or downloading them again. Rows are cached before the
DataLoader's transform, which cannot be hashed; the transform and the checks run on every
read.

Layout of a cache directory::

    <directory>/<key>/meta.json        what the key stands for (shard names redacted)
    <directory>/<key>/000003.rows      the rows of shard 3, complete
    <directory>/<key>/000003.rows.lock held by the one process writing shard 3

``key`` hashes the source's content fingerprint, its columns, categorical levels and row
counts, and the dtype: a changed file, another column selection, other levels or another
dtype never read stale rows. A parquet file's fingerprint is its footer and its stamp
(local mtime; the ETag or Last-Modified an object store or HTTP server reports): only a
file rewritten with a byte-identical footer on a server that reports neither goes unseen.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import warnings

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pymc.variational.streaming.datasets import IterableDataset, Shard
from pymc.variational.streaming.redaction import redact
from pymc.variational.streaming.rowfile import (
    FINITE,
    RowFile,
    open_rows,
    row_file_bytes,
    start_rows,
)

__all__ = ["CacheEntry", "RowCache", "default_cache_dir", "resolve_cache"]

#: Bump when the rows cached for a key would change (the row file format has its own).
KEY_VERSION = 1
#: Free space left on the cache's filesystem by default: 5% of it.
MIN_FREE = 0.05
#: What ``cache="auto"`` lets its directory take: 20% of the filesystem.
AUTO_MAX_BYTES = 0.2
# Only directories named like a key are ours to measure and evict: a directory given by
# the user may hold anything else.
_KEY = re.compile(r"[0-9a-f]{32}")


def default_cache_dir() -> Path:
    """``$PYMC_STREAMING_CACHE``, else ``$XDG_CACHE_HOME/pymc-streaming/rows``, else
    ``~/.cache/pymc-streaming/rows``."""
    given = os.environ.get("PYMC_STREAMING_CACHE")
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pymc-streaming" / "rows"


def _size(n: float) -> str:
    """Bytes for people: ``12.3 GB``."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class RowCache:
    """Where decoded rows are cached, and how much disk they may take.

    Pass one as ``DataLoader(..., cache=RowCache(...))``; a directory, ``True`` or
    ``"auto"`` make one with the defaults.

    Parameters
    ----------
    directory : str or path-like, optional
        Where to cache. Defaults to :func:`default_cache_dir`: ``$PYMC_STREAMING_CACHE``,
        else ``~/.cache/pymc-streaming/rows`` (under ``$XDG_CACHE_HOME`` when set).
    max_bytes : int or float, optional
        Most bytes the cached datasets in ``directory`` may take together: a number of
        bytes, or a fraction (a float in ``(0, 1]``) of the filesystem's size. The least
        recently used datasets are removed to make room. Unlimited by default.
    min_free : int or float, default 0.05
        Bytes that must stay free on the cache's filesystem after writing, or a fraction
        of its size. To make room, least recently used datasets of ``directory`` are
        removed; rows that still do not fit are refused (see ``strict``).
    strict : bool, default True
        When the rows do not fit: raise an error naming the directory, the bytes needed
        and the bytes free (True), or warn and read without the cache (False, what
        ``cache="auto"`` does).

    Notes
    -----
    Rows take ``rows * columns * itemsize`` bytes: float32 files stay float32; CSV rows are
    cached in the placeholder's float dtype; integer columns and loaders with a transform
    decode to float64. A dataset is written during
    the first epoch that reads it, one shard at a time. If the disk fills up meanwhile
    (another program wrote to it), writing stops with a warning and the fit goes on
    reading the source. Several processes may share a directory: each shard is written
    by one of them, and only complete files are read.

    Examples
    --------
    .. code-block:: python

        from pymc.variational.streaming import DataLoader, RowCache, parquet_source

        cache = RowCache("/scratch/rows", max_bytes=50 * 2**30)
        loader = DataLoader(parquet_source("s3://bucket/clicks/"), batch_size=4096, cache=cache)
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        max_bytes: int | float | None = None,
        min_free: int | float = MIN_FREE,
        strict: bool = True,
    ):
        for name, value in (("max_bytes", max_bytes), ("min_free", min_free)):
            whole = isinstance(value, int | np.integer) and not isinstance(value, bool)
            if not (
                (name == "max_bytes" and value is None)
                or (whole and value >= 0)
                or (isinstance(value, float) and 0 < value <= 1)
            ):
                raise ValueError(
                    f"{name} must be a number of bytes (an int >= 0) or a fraction of the "
                    f"filesystem (a float in (0, 1]), got {value!r}"
                )
        self.directory = (
            Path(directory).expanduser() if directory is not None else default_cache_dir()
        )
        self.max_bytes = max_bytes
        self.min_free = min_free
        self.strict = bool(strict)

    def __repr__(self) -> str:
        return (
            f"RowCache({str(self.directory)!r}, max_bytes={self.max_bytes}, "
            f"min_free={self.min_free}, strict={self.strict})"
        )

    def entry(
        self, source: IterableDataset, shards: Iterable[Shard], dtype: np.dtype
    ) -> CacheEntry:
        """The cached rows of ``source``'s ``shards`` decoded in ``dtype``."""
        shards = tuple(shards)
        described = {
            "version": KEY_VERSION,
            "source": type(source).__name__,
            "fingerprint": source.fingerprint(),
            "versions": getattr(source, "file_versions", lambda: None)(),
            "columns": list(source.columns),
            "categories": {k: list(v) for k, v in getattr(source, "categories", {}).items()},
            "shard_rows": [s.num_rows for s in shards],
            "dtype": np.dtype(dtype).str,
        }
        text = json.dumps(described, sort_keys=True, default=str)
        key = hashlib.sha256(text.encode()).hexdigest()[:32]
        meta = described | {"shards": [s.name for s in shards]}
        return CacheEntry(self, key, meta, len(source.columns), dtype, described["shard_rows"])

    def min_free_bytes(self) -> int:
        """The free space kept on the cache's filesystem, in bytes."""
        return self._bytes(self.min_free)

    def max_bytes_limit(self) -> int | None:
        """The most bytes the directory may hold, or None."""
        return None if self.max_bytes is None else self._bytes(self.max_bytes)

    def _bytes(self, value: int | float) -> int:
        if not isinstance(value, float):
            return int(value)
        path = self.directory
        while not path.exists() and path.parent != path:
            path = path.parent
        return int(value * shutil.disk_usage(path).total)

    def used_bytes(self) -> dict[Path, int]:
        """Bytes taken by each cached dataset, least recently used first."""
        found = []
        try:
            listed = list(self.directory.iterdir())
        except FileNotFoundError:
            listed = []
        for d in listed:
            if d.is_dir() and _KEY.fullmatch(d.name):
                found.append((_mtime(d / "meta.json"), d.name, d, _tree_bytes(d)))
        return {d: size for _, _, d, size in sorted(found)}

    def clear(self) -> None:
        """Remove every cached dataset of this directory (and nothing else)."""
        for d in self.used_bytes():
            shutil.rmtree(d, ignore_errors=True)


def resolve_cache(cache: Any, source: IterableDataset) -> RowCache | None:
    """The DataLoader's ``cache`` argument as a RowCache, or None for no cache."""
    if cache is None or cache is False:
        return None
    if isinstance(cache, str) and cache == "auto":
        if not getattr(source, "cacheable", False):
            return None
        return RowCache(max_bytes=AUTO_MAX_BYTES, strict=False)
    if cache is True:
        cache = RowCache()
    elif isinstance(cache, str | os.PathLike):
        cache = RowCache(cache)
    elif not isinstance(cache, RowCache):
        raise TypeError(
            f'cache must be "auto", None, True, a directory or a RowCache, got {cache!r}'
        )
    if not getattr(source, "cacheable", False):
        raise ValueError(
            f"{type(source).__name__} rows cannot be cached: its fingerprint() does not follow "
            "every change of its rows, or its rows are in memory already; use cache=None"
        )
    return cache


class CacheEntry:
    """The cached rows of one source in one dtype: a directory of row files, one per shard.

    Made by :meth:`RowCache.entry`; producers (threads or forked processes) read and
    write through it.
    """

    def __init__(
        self,
        cache: RowCache,
        key: str,
        meta: dict,
        width: int,
        dtype: np.dtype,
        shard_rows: list[int | None],
    ):
        self.cache, self.key, self.meta = cache, key, meta
        self.width, self.dtype = int(width), np.dtype(dtype)
        self.shard_rows = shard_rows
        self.directory = cache.directory / key
        #: False once writing failed in this process (e.g. the disk filled up).
        self.writable = True

    def path(self, index: int) -> Path:
        return self.directory / f"{index:06d}.rows"

    def missing_bytes(self) -> int:
        """Bytes still to write: shards of known size not cached yet."""
        return sum(
            row_file_bytes(rows, self.width, self.dtype)
            for i, rows in enumerate(self.shard_rows)
            if rows is not None and not self.path(i).exists()
        )

    # ------------------------------------------------------------------ space
    def reserve(self) -> bool:
        """Make room for the shards not cached yet, removing least recently used datasets
        of the directory if needed. False when they do not fit and the cache is not
        strict (a warning says why); an ``OSError`` naming the sizes when it is."""
        needed = self.missing_bytes()
        try:
            self.cache.directory.mkdir(parents=True, exist_ok=True)
            if needed:
                keep = self.cache.min_free_bytes()
                used = self.cache.used_bytes()
                others = [d for d in used if d.name != self.key]
                # Remove nothing when removing everything else would not make room.
                hopeless = self._shortfall(needed, keep, freed=sum(used[d] for d in others))
                while not hopeless and self._shortfall(needed, keep) and others:
                    shutil.rmtree(others.pop(0), ignore_errors=True)
                short = self._shortfall(needed, keep)
                if short:
                    return self._refuse(short)
            self.directory.mkdir(exist_ok=True)
            try:
                self._write_meta()
            except OSError:
                if needed:
                    raise
                # Every shard is cached: reading needs no room, only the LRU mark is lost.
        except OSError as err:
            if self.cache.strict:
                raise
            return self._refuse(f"the cache directory cannot be written: {err}")
        return True

    def _shortfall(self, needed: int, keep: int, freed: int = 0) -> str:
        """Why ``needed`` more bytes do not fit, even after removing ``freed`` bytes of
        other datasets; empty when they do."""
        free = shutil.disk_usage(self.cache.directory).free + freed
        if free - needed < keep:
            return (
                f"not enough free space in {str(self.cache.directory)!r} to cache the decoded "
                f"rows: they need {_size(needed)}, {_size(free)} are free, and {_size(keep)} "
                "must stay free (min_free)"
            )
        limit = self.cache.max_bytes_limit()
        used = sum(self.cache.used_bytes().values()) - freed if limit is not None else 0
        if limit is not None and used + needed > limit:
            return (
                f"the decoded rows need {_size(needed)} more in {str(self.cache.directory)!r}, "
                f"which holds {_size(used)} of its max_bytes={_size(limit)}"
            )
        return ""

    def _refuse(self, why: str) -> bool:
        if self.cache.strict:
            raise OSError(
                errno.ENOSPC,
                f"{why}. Free some space, pass cache=<another directory>, lower min_free or raise "
                "max_bytes with cache=RowCache(...), or read without a cache (cache=None)",
            )
        warnings.warn(f"reading without a row cache: {why}", RuntimeWarning, stacklevel=4)
        return False

    def _write_meta(self) -> None:
        """Describe the key for people (no credentials), and mark the entry as used now."""
        tmp = self.directory / f"meta.json.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            tmp.write_text(redact(json.dumps(self.meta, indent=1, default=str)))
            os.replace(tmp, self.directory / "meta.json")
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ reading, writing
    def open(self, index: int) -> RowFile | None:
        """The complete cached rows of shard ``index``, or None."""
        return open_rows(self.path(index), self.width, self.dtype, self.shard_rows[index])

    def write_through(
        self,
        index: int,
        shard: Shard,
        blocks: Iterator[np.ndarray],
        checked: bool = False,
        background: bool = False,
    ) -> Iterator[np.ndarray]:
        """``blocks`` as they come (in the cache's dtype), written to the cache on the way;
        the shard's file appears only once every row was read.

        ``checked`` says that the consumer checks every raw block it is given for NaN and
        inf before asking for the next one: the file then records that its rows are finite
        (an error would have ended the read, and the file with it). ``background`` writes
        on a thread of its own; the consumer must then not change the blocks it is given.
        """
        writer = None
        if self.writable and self._room_for(shard.num_rows):
            try:
                writer = start_rows(
                    self.path(index), self.width, self.dtype, shard.num_rows, background
                )
            except OSError as err:
                self.stop_writing(f"{self.path(index)} cannot be written: {err}")
        if writer is None:  # another process writes it, or no room
            yield from blocks
            return
        try:
            for block in blocks:
                if writer is not None and (block.ndim != 2 or block.shape[1] != self.width):
                    writer.abort()  # the loader reports the shape
                    writer = None
                if writer is not None:
                    try:
                        block = writer.write(block)
                    except OSError as err:  # the writer removed its file
                        writer = None
                        self.stop_writing(f"writing {self.path(index)} failed: {err}")
                yield block
            done, writer = writer, None
            if done is not None:
                try:
                    done.finish(FINITE if checked else 0)
                except OSError as err:
                    self.stop_writing(f"finishing {self.path(index)} failed: {err}")
        finally:
            if writer is not None:  # stopped early: the rows are incomplete
                writer.abort()

    def _room_for(self, rows: int | None) -> bool:
        """Whether a shard of ``rows`` rows fits now, leaving ``min_free``; the directory
        may also have gone (removed by another process to make room)."""
        try:
            free = shutil.disk_usage(self.directory).free
            keep = self.cache.min_free_bytes()
        except OSError as err:
            self.stop_writing(f"the cache directory is gone: {err}")
            return False
        if rows is None or free - row_file_bytes(rows, self.width, self.dtype) >= keep:
            return True
        self.stop_writing(f"only {_size(free)} are free in {str(self.cache.directory)!r}")
        return False

    def stop_writing(self, why: str) -> None:
        """Write no more shards in this process, with a warning saying why."""
        if self.writable:
            self.writable = False
            warnings.warn(
                f"the row cache stops writing: {why}; the rows are read from the source",
                RuntimeWarning,
                stacklevel=2,
            )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _tree_bytes(directory: Path) -> int:
    """Bytes of the files of ``directory``; 0 when another process removed it meanwhile."""
    total = 0
    try:
        listed = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    for f in listed:
        try:
            total += f.stat().st_size
        except OSError:
            pass
    return total

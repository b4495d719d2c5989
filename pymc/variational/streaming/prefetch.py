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
"""Producing shuffled windows ahead of the consumer.

The :class:`~pymc.variational.streaming.DataLoader` says *which* rows form each window;
a producer here decides *where* that work runs:

- ``_InlineProducer``: on the calling thread (``prefetch=0``);
- ``_ThreadProducer``: on a background thread. pyarrow and numpy release the GIL for
  the heavy calls, so decoding overlaps with the consumer;
- ``_ProcessProducer``: in a forked worker process that writes windows into shared
  memory (``workers=1``). The compiled PyMC step holds the GIL for its whole call, so
  this is the only way the producer never waits for it.

:class:`BatchIterator` slices batches out of the windows any of them produce.
"""

from __future__ import annotations

import mmap
import multiprocessing
import queue
import signal
import threading

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pymc.variational.streaming.dataloader import DataLoader

__all__ = ["BatchIterator"]

# A window handed out stays valid until the consumer has taken this many newer ones: the
# one in use and, for callbacks that read the placeholder after a step, the one before.
_HELD_WINDOWS = 2


class _Failure:
    """An exception raised by the producer, carried to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


class _InlineProducer:
    """Windows computed on the consumer's thread when it asks for them."""

    def __init__(self, loader: DataLoader, epoch: int, batch: int, dtype: np.dtype, prefetch: int, recycle: bool, overlap: bool, whole: dict):
        self.pool = _buffer_pool(loader, dtype, 1) if recycle else None
        self.pieces = loader._produce(epoch, batch, dtype, self.pool, overlap, whole)

    def next_piece(self):
        return next(self.pieces)

    def release(self, buffer) -> None:
        if self.pool is not None:
            self.pool.put(buffer)

    def close(self) -> None:
        self.pieces.close()


def _buffer_pool(loader: DataLoader, dtype: np.dtype, extra: int) -> queue.Queue:
    pool: queue.Queue = queue.Queue()
    for _ in range(extra + _HELD_WINDOWS + 1):
        pool.put(np.empty((loader.window_rows, loader.width), dtype))
    return pool


_END = object()


def _put(out: queue.Queue, item, stop: threading.Event) -> bool:
    """Put ``item`` unless stopped first; True when it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


def _run_thread(pieces: Iterator, out: queue.Queue, stop: threading.Event) -> None:
    try:
        for piece in pieces:
            if not _put(out, piece, stop):
                return
        _put(out, _END, stop)
    except BaseException as err:  # handed to the consumer, which re-raises it
        _put(out, _Failure(err), stop)
    finally:
        if hasattr(pieces, "close"):
            pieces.close()


class ThreadedIterator:
    """Run an iterator on a background thread, ``depth`` items ahead of the consumer.

    ``on_close`` is called when closing, after the stop flag is set: use it to wake a
    producer that waits for something other than room in the queue.
    """

    def __init__(self, items: Iterator, depth: int, name: str, on_close=None):
        self.queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self.stop = threading.Event()
        self.on_close = on_close
        self.thread = threading.Thread(target=_run_thread, args=(items, self.queue, self.stop), daemon=True, name=name)
        self.thread.start()

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            try:
                item = self.queue.get(timeout=1.0)
                break
            except queue.Empty:
                if not self.thread.is_alive():
                    if self.queue.empty():
                        raise RuntimeError(f"{self.thread.name} stopped without an item or an error") from None
        if isinstance(item, _Failure):
            raise item.error
        if item is _END:
            raise StopIteration
        return item

    def close(self) -> None:
        self.stop.set()
        if self.on_close is not None:
            self.on_close()
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=10)


class _ThreadProducer(_InlineProducer):
    """Windows computed by a background thread, ``prefetch`` of them queued."""

    def __init__(self, loader: DataLoader, epoch: int, batch: int, dtype: np.dtype, prefetch: int, recycle: bool, overlap: bool, whole: dict):
        self.pool = _buffer_pool(loader, dtype, prefetch) if recycle else None
        spare = (loader.window_rows, loader.width)

        def wake():  # a producer waiting for a free buffer gets a spare one
            if self.pool is not None:
                self.pool.put(np.empty(spare, dtype))

        pieces = loader._produce(epoch, batch, dtype, self.pool, overlap, whole)
        self.pieces = ThreadedIterator(pieces, prefetch, "pymc-prefetch", on_close=wake)


class _SlotPool:
    """The worker's view of the shared slots: ``get`` waits until the consumer frees one."""

    def __init__(self, slots: list[np.ndarray], free):
        self.slots, self.free, self.returned = slots, free, []

    def get(self) -> np.ndarray:
        return self.slots[self.returned.pop() if self.returned else self.free.recv()]

    def put(self, buffer: np.ndarray) -> None:
        self.returned.append(next(k for k, s in enumerate(self.slots) if s is buffer))


def _run_process(loader, epoch, batch, dtype, overlap, whole, slots, free, ready, parent_ends) -> None:
    # Ctrl-C reaches the whole process group; the consumer decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for end in parent_ends:  # inherited by the fork; closed so that EOF can arrive
        end.close()
    pool = _SlotPool(slots, free)
    addresses = [s.__array_interface__["data"][0] for s in slots]
    row_bytes = slots[0].strides[0]
    try:
        for piece_epoch, index, rows, buffer in loader._produce(epoch, batch, dtype, pool, overlap, whole):
            k = next(k for k, s in enumerate(slots) if s is buffer)
            start = (rows.__array_interface__["data"][0] - addresses[k]) // row_bytes
            ready.send((piece_epoch, index, k, start, start + len(rows)))
    except (EOFError, BrokenPipeError, OSError):
        return  # the consumer closed its ends of the pipes
    except BaseException as err:
        try:
            ready.send(_Failure(err))
        except Exception:  # the error could not be pickled: send its text
            ready.send(_Failure(RuntimeError(f"{type(err).__name__}: {err}")))


class _ProcessProducer:
    """Windows computed by a forked process into shared memory.

    The slots are an anonymous shared mapping made before the fork, so nothing needs a
    name, a resource tracker or cleanup beyond closing the pipes. Only small messages
    cross the pipes: which slot holds which rows.
    """

    def __init__(self, loader: DataLoader, epoch: int, batch: int, dtype: np.dtype, prefetch: int, recycle: bool, overlap: bool, whole: dict):
        n_slots = max(prefetch, 1) + _HELD_WINDOWS + 1
        slot_bytes = loader.window_rows * loader.width * dtype.itemsize
        self.memory = mmap.mmap(-1, n_slots * slot_bytes)
        self.slots = [
            np.frombuffer(self.memory, dtype, loader.window_rows * loader.width, k * slot_bytes).reshape(
                loader.window_rows, loader.width
            )
            for k in range(n_slots)
        ]
        context = multiprocessing.get_context("fork")
        free_out, self.free = context.Pipe(duplex=False)
        self.ready, ready_in = context.Pipe(duplex=False)
        for k in range(n_slots):
            self.free.send(k)
        self.process = context.Process(
            target=_run_process,
            args=(loader, epoch, batch, dtype, overlap, whole, self.slots, free_out, ready_in, (self.free, self.ready)),
            daemon=True,
            name="pymc-prefetch",
        )
        self.process.start()
        free_out.close()
        ready_in.close()

    def next_piece(self):
        while not self.ready.poll(1.0):
            if not self.process.is_alive():
                raise RuntimeError(
                    f"the prefetch process stopped (exit code {self.process.exitcode}) without a batch or an error"
                )
        message = self.ready.recv()
        if isinstance(message, _Failure):
            raise message.error
        epoch, index, k, start, stop = message
        return epoch, index, self.slots[k][start:stop], k

    def release(self, k: int) -> None:
        self.free.send(k)

    def close(self) -> None:
        self.free.close()
        self.ready.close()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.slots = []  # the mapping is unmapped once no batch refers to it


class BatchIterator:
    """Endless batches of a :class:`~pymc.variational.streaming.DataLoader`.

    It starts at the loader's position; the loader's position follows the batches it
    hands out, so a new iterator continues where this one stopped. A producer (inline,
    thread or process) shuffles whole windows ahead; ``next()`` only slices one. Call
    :meth:`close`, or use it as a context manager, to stop the producer.

    Parameters
    ----------
    loader : DataLoader
    dtype : numpy.dtype
        dtype of the batches.
    prefetch : int
        Windows produced ahead; ``0`` produces on the calling thread.
    recycle : bool
        Reuse window memory. A batch is then valid only until the iterator has moved two
        windows on; the Trainer, which needs each batch for one step, uses this.
    workers : int
        ``1`` produces in a forked process (Linux and macOS), ``0`` in this one.
    overlap : bool
        Decode on a second thread of the producer while it shuffles.
    whole : dict, optional
        ``{column index: what it feeds}``: columns that must hold whole numbers.
    """

    def __init__(
        self,
        loader: DataLoader,
        dtype,
        prefetch: int,
        recycle: bool = False,
        workers: int = 0,
        overlap: bool = True,
        whole: dict | None = None,
    ):
        self._loader = loader
        dtype, self._field_dtypes = loader._field_dtypes(dtype)
        whole = loader._whole_columns(self._field_dtypes, whole)
        self._fields: dict[str, np.ndarray] = {}
        epoch, batch = loader.position
        self._last: tuple[int, int] | None = None
        self._shape = loader.sample_shape
        self._B = loader.batch_size
        self._chunk = np.empty((0, *self._shape), dtype)
        self._offset = 0
        self._chunk_epoch, self._chunk_index = epoch, batch
        self._held: list = []
        # Shared slots are always reused, so plain iteration gets copies of its batches.
        self._copy = workers > 0 and not recycle
        if workers > 0:
            kind = _ProcessProducer
        elif prefetch > 0:
            kind = _ThreadProducer
        else:
            kind = _InlineProducer
        self._producer = kind(loader, epoch, batch, dtype, prefetch, recycle, overlap, whole)
        self._recycle = recycle or workers > 0
        self._closed = False

    def _next_piece(self):
        try:
            piece = self._producer.next_piece()
        except BaseException:
            self.close()
            raise
        if self._recycle:
            self._held.append(piece[3])
            if len(self._held) > _HELD_WINDOWS:
                self._producer.release(self._held.pop(0))
        return piece

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> np.ndarray:
        if self._offset >= len(self._chunk):
            self._chunk_epoch, self._chunk_index, chunk, _ = self._next_piece()
            if self._field_dtypes is not None:
                where = f"epoch {self._chunk_epoch}, batch {self._chunk_index}"
                self._fields = self._loader._split_fields(chunk, self._field_dtypes, where)
                self._chunk = chunk
            else:
                self._chunk = chunk.reshape((len(chunk), *self._shape))
            self._offset = 0
        a = self._offset
        self._offset = a + self._B
        self._last = (self._chunk_epoch, self._chunk_index + a // self._B)
        self._loader._position = (self._chunk_epoch, self._last[1] + 1)
        if self._field_dtypes is not None:  # split copies already: always safe to keep
            return {f: v[a : a + self._B] for f, v in self._fields.items()}
        batch = self._chunk[a : a + self._B]
        return batch.copy() if self._copy else batch

    @property
    def position(self) -> tuple[int, int]:
        """``(epoch, batch index)`` of the next batch this iterator hands out."""
        return self._loader.position

    def rewind_one(self) -> None:
        """Put the last batch back: the next iterator of the loader starts with it."""
        if self._last is not None:
            self._loader._position = self._last
            self._last = None

    def close(self) -> None:
        """Stop the producer; the loader keeps the position of the next batch."""
        if self._closed:
            return
        self._closed = True
        self._chunk = np.empty((0, *self._shape), self._chunk.dtype)
        self._held = []
        self._producer.close()

    def __enter__(self) -> BatchIterator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

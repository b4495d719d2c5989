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
"""Producing shuffled windows ahead of the consumer, and slicing them into batches.

A producer runs :func:`~pymc.variational.streaming.windows.produce` on a
:class:`~pymc.variational.streaming.order.ReadPlan`; it decides only *where* that work
runs:

- ``InlineProducer``: on the calling thread (``prefetch=0``);
- ``ThreadProducer``: on a background thread. pyarrow and numpy release the GIL for the
  heavy calls, so decoding overlaps with the consumer;
- ``ProcessProducer``: in a forked worker process that writes windows into shared memory
  (``workers=1``). The compiled PyMC step holds the GIL for its whole call, so this is
  the only way the producer never waits for it.

:class:`BatchIterator` slices batches out of the windows any of them produce, and knows
its position; nothing flows back to the loader.
"""

from __future__ import annotations

import atexit
import gc
import mmap
import multiprocessing
import multiprocessing.util  # registers the exit function that kills daemon workers first
import os
import pickle
import queue
import signal
import time
import weakref

from collections.abc import Mapping

import numpy as np

from pymc.variational.streaming.fields import Fields
from pymc.variational.streaming.order import ReadPlan
from pymc.variational.streaming.threads import Failure, ThreadedIterator
from pymc.variational.streaming.windows import produce

__all__ = ["BatchIterator", "InlineProducer", "ProcessProducer", "ThreadProducer"]

# A window handed out stays valid until the consumer has taken this many newer ones: the
# one in use and, for callbacks that read the placeholder after a step, the one before.
HELD_WINDOWS = 2


def _buffer_pool(plan: ReadPlan, extra: int) -> queue.Queue:
    pool: queue.Queue = queue.Queue()
    for _ in range(extra + HELD_WINDOWS + 1):
        pool.put(np.empty((plan.window_rows, plan.width), plan.dtype))
    return pool


class InlineProducer:
    """Windows computed on the consumer's thread when it asks for them."""

    def __init__(
        self,
        plan: ReadPlan,
        epoch: int,
        batch: int,
        stop_epoch,
        prefetch: int,
        recycle: bool,
        overlap: bool,
    ):
        self.pool = _buffer_pool(plan, 0) if recycle else None
        self.pieces = produce(plan, epoch, batch, self.pool, overlap, stop_epoch)

    def next_piece(self):
        """``(epoch, first batch index, rows, buffer token)``; StopIteration at the end."""
        return next(self.pieces)

    def release(self, buffer) -> None:
        """Give back a buffer that no batch handed out refers to any more."""
        if self.pool is not None:
            self.pool.put(buffer)

    def close(self) -> None:
        self.pieces.close()


class ThreadProducer(InlineProducer):
    """Windows computed by a background thread, ``prefetch`` of them queued."""

    def __init__(
        self,
        plan: ReadPlan,
        epoch: int,
        batch: int,
        stop_epoch,
        prefetch: int,
        recycle: bool,
        overlap: bool,
    ):
        self.pool = _buffer_pool(plan, prefetch) if recycle else None
        spare = (plan.window_rows, plan.width)

        def wake():  # a producer waiting for a free buffer gets a spare one
            if self.pool is not None:
                self.pool.put(np.empty(spare, plan.dtype))

        pieces = produce(plan, epoch, batch, self.pool, overlap, stop_epoch)
        self.pieces = ThreadedIterator(pieces, prefetch, "pymc-prefetch", on_close=wake)


class _SlotPool:
    """The worker's view of the shared slots: ``get`` waits until the consumer frees one."""

    def __init__(self, slots: list[np.ndarray], free):
        self.slots, self.free, self.returned = slots, free, []

    def get(self) -> np.ndarray:
        if self.returned:
            k = self.returned.pop()
        else:
            try:
                k = self.free.recv()
            except (EOFError, OSError) as err:
                raise _Closed from err
        if k == _STOP:
            raise _Closed
        return self.slots[k]

    def put(self, buffer: np.ndarray) -> None:
        self.returned.append(next(k for k, s in enumerate(self.slots) if s is buffer))


_END = "end"
# Sent instead of a free slot: stop. A process forked by other code holds copies of the
# pipes, so a worker cannot count on seeing them close.
_STOP = -1
# Sent by a stopped worker once its producers are closed (cache files removed, locks
# released): what is left of its exit, unmapping the memory it shared, needs no waiting.
_CLOSED = "closed"


class _Closed(Exception):
    """The consumer stopped the worker or closed its end of a pipe: not an error."""


def _send(pipe, message) -> None:
    try:
        pipe.send(message)
    except OSError as err:  # the consumer closed its end
        raise _Closed from err


# Producers alive in this process, closed at exit.
_LIVE: weakref.WeakSet = weakref.WeakSet()
_hooked = False


def _close_live_workers() -> None:
    """At exit, once non-daemon threads have ended and before multiprocessing kills daemon
    workers (``atexit`` calls the last registered first): close this process's workers,
    so that a worker writing a cache file removes it rather than leaving it half-written."""
    for producer in list(_LIVE):
        producer.close()


def _run_process(plan, epoch, batch, stop_epoch, overlap, slots, free, ready, parent_ends) -> None:
    # Ctrl-C reaches the whole process group; the consumer decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for end in parent_ends:  # inherited by the fork; closed so that EOF can arrive
        end.close()
    pool = _SlotPool(slots, free)
    addresses = [s.__array_interface__["data"][0] for s in slots]
    row_bytes = slots[0].strides[0]
    try:
        for piece_epoch, index, rows, buffer in produce(
            plan, epoch, batch, pool, overlap, stop_epoch
        ):
            k = next(k for k, s in enumerate(slots) if s is buffer)
            start = (rows.__array_interface__["data"][0] - addresses[k]) // row_bytes
            _send(ready, (piece_epoch, index, k, start, start + len(rows)))
        last = _END
    except _Closed:  # the producers were closed on the way out
        last = _CLOSED
    except BaseException as err:  # the source's errors, OSError and EOFError included
        last = Failure(_portable(err))
    try:
        ready.send(last)
    except OSError:
        pass  # the consumer closed its end


def _portable(err: BaseException) -> BaseException:
    """``err`` if it comes back whole from pickling, else a RuntimeError with its type and
    message: an exception whose ``__init__`` takes other arguments than its message
    pickles but fails to unpickle, which the consumer would report instead of it."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")


class ProcessProducer:
    """Windows computed by a forked process into shared memory.

    The slots are an anonymous shared mapping made before the fork, so nothing needs a
    name, a resource tracker or cleanup beyond closing the pipes. Only small messages
    cross the pipes: which slot holds which rows.
    """

    def __init__(
        self,
        plan: ReadPlan,
        epoch: int,
        batch: int,
        stop_epoch,
        prefetch: int,
        recycle: bool,
        overlap: bool,
    ):
        n_slots = max(prefetch, 1) + HELD_WINDOWS + 1
        slot_items = plan.window_rows * plan.width
        slot_bytes = slot_items * plan.dtype.itemsize
        self.memory = mmap.mmap(-1, n_slots * slot_bytes)
        self.slots = [
            np.frombuffer(self.memory, plan.dtype, slot_items, k * slot_bytes).reshape(
                plan.window_rows, plan.width
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
            args=(
                plan,
                epoch,
                batch,
                stop_epoch,
                overlap,
                self.slots,
                free_out,
                ready_in,
                (self.free, self.ready),
            ),
            daemon=True,
            name="pymc-prefetch",
        )
        # Objects the child never changes stay on shared pages: the cyclic collector would
        # otherwise write to every one of them in the child, copying the parent's heap.
        gc.freeze()
        try:
            self.process.start()
        finally:
            gc.unfreeze()
        free_out.close()
        ready_in.close()
        #: The process that owns the worker; a forked copy of this object must not stop it.
        self.owner = os.getpid()
        global _hooked
        if not _hooked:
            _hooked = True
            atexit.register(_close_live_workers)
        _LIVE.add(self)

    def next_piece(self):
        while not self.ready.poll(1.0):
            if not self.process.is_alive():
                raise RuntimeError(
                    f"the prefetch process stopped (exit code {self.process.exitcode}) without a batch or an error"
                )
        message = self.ready.recv()
        if isinstance(message, Failure):
            raise message.error
        if message in (_END, _CLOSED):  # _CLOSED: closed meanwhile by another thread
            raise StopIteration
        epoch, index, k, start, stop = message
        return epoch, index, self.slots[k][start:stop], k

    def release(self, k: int) -> None:
        try:
            self.free.send(k)
        except BrokenPipeError:
            pass  # the worker produced its last epoch and left: nothing waits for the slot

    def close(self) -> None:
        if self.free.closed or os.getpid() != self.owner:
            return  # closed already, or a copy in a child forked by other code
        try:
            self.free.send(_STOP)
        except OSError:
            pass  # the worker has left
        self.free.close()
        deadline = time.monotonic() + 10
        stopped = _wait_until_closed(self.ready, deadline)
        self.ready.close()
        # A stopped worker is reaped by multiprocessing later (at the next start of a
        # process, or at exit): its exit takes another ~20 ms that nobody needs to wait for.
        if not stopped:  # it had ended (its last epoch, an error), or it is stuck
            self.process.join(timeout=max(deadline - time.monotonic(), 0.1))
            if self.process.is_alive():
                self.process.terminate()
                self.process.join()
        self.slots = []  # the mapping is unmapped once no batch refers to it


def _wait_until_closed(ready, deadline: float) -> bool:
    """Whether the worker reports that it stopped before ``deadline`` (monotonic time);
    the pieces it sent meanwhile are dropped."""
    while True:
        try:
            if not ready.poll(max(deadline - time.monotonic(), 0)):
                return False
            message = ready.recv()  # errors unpickle: the worker sends them _portable
        except (EOFError, OSError):  # it has exited
            return False
        if message == _CLOSED:
            return True


class BatchIterator:
    """Batches of a :class:`~pymc.variational.streaming.DataLoader`, from a position on.

    A producer (inline, thread or process) shuffles whole windows ahead; ``next()`` only
    slices one. The iterator knows its position; it never changes the loader. Call
    :meth:`close`, or use it as a context manager, to stop the producer early.

    Parameters
    ----------
    plan : ReadPlan
        What to read, from :meth:`DataLoader.plan`.
    start : tuple of int
        ``(epoch, batch index)`` of the first batch.
    sample_shape : tuple of int
        Shape of one row, without fields.
    fields : Fields, optional
        Split each batch into a dict of named arrays.
    field_dtypes : dict, optional
        dtype of each field.
    prefetch : int
        Windows produced ahead; ``0`` produces on the calling thread.
    workers : int
        ``1`` produces in a forked process (Linux and macOS), ``0`` in this one.
    recycle : bool
        Reuse window memory. A batch is then valid only until the iterator has moved two
        windows on; the Trainer, which needs each batch for one step, uses this.
    overlap : bool
        Decode on a second thread of the producer while it shuffles.
    stop_epoch : int, optional
        End (StopIteration) where this epoch would begin; endless by default.
    """

    def __init__(
        self,
        plan: ReadPlan,
        start: tuple[int, int],
        sample_shape: tuple[int, ...],
        fields: Fields | None = None,
        field_dtypes: Mapping[str, np.dtype] | None = None,
        prefetch: int = 2,
        workers: int = 0,
        recycle: bool = False,
        overlap: bool = True,
        stop_epoch: int | None = None,
    ):
        epoch, batch = start
        self._plan = plan
        self._B = plan.batch_size
        self._shape = tuple(sample_shape)
        self._fields = fields
        self._field_dtypes = field_dtypes
        self._parts: dict[str, np.ndarray] = {}
        self._chunk = np.empty((0, *self._shape), plan.dtype)
        self._offset = 0
        self._chunk_epoch, self._chunk_index = epoch, batch
        #: ``(epoch, batch index)`` of the next batch this iterator hands out.
        self.position = (epoch, batch)
        #: ``(epoch, batch index)`` of the last batch handed out, or None.
        self.last_position: tuple[int, int] | None = None
        self._held: list = []
        # Shared slots are always reused, so plain iteration gets copies of its batches.
        self._copy = workers > 0 and not recycle
        kind = (
            ProcessProducer if workers > 0 else ThreadProducer if prefetch > 0 else InlineProducer
        )
        self._producer = kind(plan, epoch, batch, stop_epoch, prefetch, recycle, overlap)
        self._recycle = recycle or workers > 0
        self._closed = False
        #: Whether every batch up to ``stop_epoch`` has been handed out.
        self.finished = False

    @property
    def seed(self) -> int:
        """The shuffle seed of the batches."""
        return self._plan.seed

    def _next_piece(self):
        try:
            piece = self._producer.next_piece()
        except BaseException as err:
            self.finished = isinstance(err, StopIteration)
            self.close()
            raise
        if self._recycle:
            self._held.append(piece[3])
            if len(self._held) > HELD_WINDOWS:
                self._producer.release(self._held.pop(0))
        return piece

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> np.ndarray | dict[str, np.ndarray]:
        if self._closed:
            raise StopIteration
        if self._offset >= len(self._chunk):
            self._chunk_epoch, self._chunk_index, chunk, _ = self._next_piece()
            if self._fields is not None:
                self._parts = self._fields.split(chunk, self._field_dtypes)
                self._chunk = chunk
            else:
                self._chunk = chunk.reshape((len(chunk), *self._shape))
            self._offset = 0
        a = self._offset
        self._offset = a + self._B
        self.last_position = (self._chunk_epoch, self._chunk_index + a // self._B)
        self.position = self._plan.next_position(*self.last_position)
        if self._fields is not None:  # split copies already: always safe to keep
            return {f: v[a : a + self._B] for f, v in self._parts.items()}
        batch = self._chunk[a : a + self._B]
        return batch.copy() if self._copy else batch

    def close(self) -> None:
        """Stop the producer."""
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

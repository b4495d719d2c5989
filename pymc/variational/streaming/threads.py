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
"""Running an iterator on a background thread, a few items ahead of its consumer."""

from __future__ import annotations

import queue
import threading

from collections.abc import Callable, Iterator

from pymc.variational.streaming.shutdown import track

__all__ = ["Failure", "ThreadedIterator"]


class Failure:
    """An exception raised by a producer, carried to the consumer, which re-raises it."""

    def __init__(self, error: BaseException):
        self.error = error


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


def _run(items: Iterator, out: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in items:
            if not _put(out, item, stop):
                return
        _put(out, _END, stop)
    except BaseException as err:  # handed to the consumer, which re-raises it
        _put(out, Failure(err), stop)
    finally:
        if hasattr(items, "close"):
            items.close()


class ThreadedIterator:
    """Run an iterator on a background thread, ``depth`` items ahead of the consumer.

    Parameters
    ----------
    items : iterator
    depth : int
        Items produced ahead.
    name : str
        Name of the thread.
    on_close : callable, optional
        Called when closing, after the stop flag is set: use it to wake a producer that
        waits for something other than room in the queue.
    """

    def __init__(
        self, items: Iterator, depth: int, name: str, on_close: Callable[[], None] | None = None
    ):
        self.queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self.stop = threading.Event()
        self.on_close = on_close
        self.thread = threading.Thread(
            target=_run, args=(items, self.queue, self.stop), daemon=True, name=name
        )
        self.thread.start()
        track(self)  # stopped and joined before the interpreter finalizes

    def __iter__(self) -> ThreadedIterator:
        return self

    def __next__(self):
        while True:
            try:
                item = self.queue.get(timeout=0.1)
                break
            except queue.Empty:
                if not self.thread.is_alive() and self.queue.empty():
                    raise RuntimeError(
                        f"{self.thread.name} stopped without an item or an error"
                    ) from None
        if isinstance(item, Failure):
            raise item.error
        if item is _END:
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the thread and wait for it (up to 10 s)."""
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

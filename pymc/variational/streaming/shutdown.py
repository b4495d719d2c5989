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
"""Stopping background reads before the interpreter finalizes.

pyarrow reads Python file objects (every fsspec filesystem but the local one: ``hf://``,
``http://``, ``s3://``...) partly on its own C++ threads, which call into Python. A
script that takes one batch and exits leaves the loader's producer in the middle of such
a read; when the interpreter finalizes, a thread that wakes up in Python is killed
mid-call and the process aborts with "Fatal Python error: PyGILState_Release".

So every producer thread is registered here and, when the interpreter starts shutting
down (from ``threading``'s exit hook, before ``atexit`` callbacks tear down HTTP clients),
all of them are stopped and joined, and remote reads still in flight are let finish
while new ones are refused.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref

from typing import Any

__all__ = ["EXIT_TIMEOUT", "GuardedFile", "stop_all", "track"]

logger = logging.getLogger("pymc")

#: Seconds granted at exit to the producers and the remote reads in flight.
EXIT_TIMEOUT = 30.0

_live: weakref.WeakSet = weakref.WeakSet()
_hooked = False
_reads = threading.Condition()
_in_flight = 0
_exiting = False


def track(producer: Any) -> None:
    """Stop ``producer`` (anything with ``stop``, ``thread`` and ``on_close``, as
    :class:`~pymc.variational.streaming.threads.ThreadedIterator`) at interpreter exit."""
    global _hooked
    _live.add(producer)
    if _hooked:
        return
    _hooked = True
    try:
        # threading's exit hook runs in threading._shutdown(): before atexit callbacks,
        # which may close what a read in flight uses (huggingface_hub closes its HTTP
        # client there). concurrent.futures registers its own shutdown the same way.
        threading._register_atexit(stop_all)  # noqa: SLF001 (the stdlib's own hook, no public form)
    except (AttributeError, RuntimeError):  # another Python, or already shutting down
        atexit.register(stop_all)


def stop_all(timeout: float = EXIT_TIMEOUT) -> None:
    """Stop every live producer, wait for them and for remote reads in flight."""
    global _exiting
    with _reads:
        _exiting = True  # remote reads started from now on fail at once
    live = [p for p in list(_live) if p.thread.is_alive()]
    for producer in live:  # all flags first: nested producers wait on each other
        producer.stop.set()
        if producer.on_close is not None:
            producer.on_close()
    deadline = time.monotonic() + timeout
    for producer in live:
        producer.thread.join(max(0.0, deadline - time.monotonic()))
    with _reads:
        while _in_flight and time.monotonic() < deadline:
            _reads.wait(deadline - time.monotonic())
        busy = _in_flight
    stuck = [p.thread.name for p in live if p.thread.is_alive()]
    if stuck or busy:
        logger.warning(
            f"at exit, {len(stuck)} producer thread(s) and {busy} remote read(s) were still "
            f"running after {timeout:.0f} s; close iterators (it.close()) before exiting"
        )


def _enter() -> None:
    global _in_flight
    with _reads:
        if _exiting:
            raise OSError("remote read refused: the interpreter is exiting")
        _in_flight += 1


def _leave() -> None:
    global _in_flight
    with _reads:
        _in_flight -= 1
        _reads.notify_all()


class GuardedFile:
    """A remote file handed to pyarrow: its reads are counted, and refused once the
    interpreter is exiting, so that :func:`stop_all` can wait for the last ones."""

    def __init__(self, fh: Any):
        self._fh = fh

    def read(self, *args):
        _enter()
        try:
            return self._fh.read(*args)
        finally:
            _leave()

    def readinto(self, buffer):
        _enter()
        try:
            return self._fh.readinto(buffer)
        finally:
            _leave()

    def __getattr__(self, name: str):  # seek, tell, close, closed, size, mode, ...
        return getattr(self._fh, name)

    def __enter__(self) -> GuardedFile:
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()

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
"""Retrying reads that fail for a moment: 5xx answers, dropped connections, timeouts."""

from __future__ import annotations

import logging
import time

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pymc.variational.streaming.read_errors import is_transient, read_error, retry_after
from pymc.variational.streaming.redaction import redact

__all__ = ["RetryPolicy", "as_retry_policy", "is_transient"]

logger = logging.getLogger("pymc")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, transient read errors are retried.

    Parameters
    ----------
    tries : int, default 4
        Attempts in all, the first included; ``1`` disables retrying.
    wait : float, default 0.5
        Seconds before the first retry; each further retry waits twice as long.
    max_wait : float, default 30
        Upper bound on one wait.
    """

    tries: int = 4
    wait: float = 0.5
    max_wait: float = 30.0

    def __post_init__(self):
        if not isinstance(self.tries, int) or isinstance(self.tries, bool) or self.tries < 1:
            raise ValueError(f"RetryPolicy.tries must be an integer >= 1, got {self.tries!r}")
        if self.wait < 0 or self.max_wait < 0:
            raise ValueError("RetryPolicy waits must be non-negative")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (counted from 1)."""
        return min(self.wait * 2 ** (attempt - 1), self.max_wait)

    def should_retry(self, error: BaseException, attempt: int, what: str) -> bool:
        """Sleep and return True when ``error`` is transient and tries remain."""
        if attempt >= self.tries or not is_transient(error):
            return False
        # A server that says when to come back (429, 503 with Retry-After) is believed.
        delay = max(self.delay(attempt), min(retry_after(error) or 0.0, self.max_wait))
        logger.warning(
            redact(
                f"Reading {what} failed ({type(error).__name__}: {error}); "
                f"retry {attempt} of {self.tries - 1} in {delay:.2g}s"
            )
        )
        time.sleep(delay)
        return True

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``, retried while it fails transiently."""
        attempt = 1
        while True:
            try:
                return fn()
            except Exception as err:
                if not self.should_retry(err, attempt, what):
                    raise
                attempt += 1

    def call_named(self, fn: Callable[[], T], where: str, own: tuple = ()) -> T:
        """``fn()``, retried while it fails transiently; a final failure is raised as an
        error naming ``where`` (redacted, unchained: see ``read_error``), except errors
        of the types in ``own``, which name it already."""
        try:
            return self.call(fn, where)
        except own:
            raise
        except Exception as err:
            if isinstance(getattr(err, "transient", None), bool):  # made by read_error already
                raise
            failure = read_error(err, where)
        raise failure


def as_retry_policy(retry: RetryPolicy | int | None) -> RetryPolicy:
    """A :class:`RetryPolicy` from what a source's ``retry=`` argument accepts."""
    if retry is None:
        return RetryPolicy()
    if isinstance(retry, RetryPolicy):
        return retry
    if isinstance(retry, int) and not isinstance(retry, bool) and retry >= 1:
        return RetryPolicy(tries=int(retry))
    raise TypeError(f"retry must be a RetryPolicy or a number of tries >= 1, got {retry!r}")

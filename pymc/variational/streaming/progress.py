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
"""``pm.fit``'s rich progress bar, with rows per second and the held-out score."""

from __future__ import annotations

import time

import numpy as np

from pymc.progress_bar import CustomProgress, default_progress_theme
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["ProgressBar"]


class ProgressBar:
    """The progress of one ``fit``: steps, time, average loss, rows per second.

    Parameters
    ----------
    show : bool
    n : int
        Steps in this fit.
    batch_size : int
    score : bool
        Whether the method reports a loss.
    """

    def __init__(self, show: bool, n: int, batch_size: int, score: bool):
        self.n, self.batch_size, self.score, self.show = n, batch_size, score, show
        self.bar = CustomProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[loss]}"),
            TextColumn("{task.fields[speed]}"),
            TextColumn("{task.fields[val]}"),
            console=Console(theme=default_progress_theme),
            disable=not show,
        )

    def __enter__(self) -> ProgressBar:
        self.bar.__enter__()
        self.task = self.bar.add_task("Fitting", total=self.n, loss="", speed="", val="")
        self.t0 = time.perf_counter()
        return self

    def update(self, done: int, losses: np.ndarray, i: int) -> None:
        """Show ``done`` steps, with the mean of the last 1000 recorded losses up to ``i``."""
        if not self.show:
            return
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        loss = ""
        if self.score and i >= 0:
            window = losses[max(0, i - 999) : i + 1]
            window = window[~np.isnan(window)]  # steps without a recorded loss
            if len(window):
                loss = f"Average Loss = {window.mean():,.5g}"
        self.bar.update(
            self.task,
            completed=done,
            loss=loss,
            speed=f"{done * self.batch_size / elapsed:,.0f} rows/s",
        )

    def show_val(self, value: float) -> None:
        """Show the latest held-out score."""
        if self.show:
            self.bar.update(self.task, val=f"held-out lpd = {value:,.4g}")

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

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
"""Held-out scoring and early stopping for a streaming fit."""

from __future__ import annotations

import math

from collections.abc import Callable

import numpy as np
import pytensor.tensor as pt

from pymc.logprob.basic import logp
from pymc.pytensorf import compile as pytensor_compile
from pymc.pytensorf import reseed_rngs
from pytensor.tensor.random.type import RandomGeneratorType

from pymc.variational.streaming.dataloader import DataLoader
from pymc.variational.streaming.feeds import Feed
from pymc.variational.streaming.likelihoods import likelihood_of
from pymc.variational.streaming.matching import PlaceholderFiller, warn_untransformed
from pymc.variational.streaming.rules import MissingValuesError

__all__ = ["EarlyStopping", "HeldOutScore", "Validation"]


class HeldOutScore:
    """Mean log predictive density of held-out rows under the current approximation.

    For every observed variable fed by the placeholders, each held-out row scores
    ``log(1/S * sum_s p(y_row | theta_s))`` over ``S`` draws ``theta_s`` from the
    approximation; the score is the mean over rows, summed over observed variables.
    Higher is better. The likelihood is not scaled by ``total_size``: it is a per-row
    figure, comparable across data sizes.

    Parameters
    ----------
    approx : Approximation
        The approximation being fitted.
    feed : Feed
        The placeholders that the training loader fills.
    dataloader : DataLoader
        Held-out rows, every one of them in storage order at each evaluation (the loader's
        ``shuffle`` and ``drop_last`` do not apply). Its columns (or the columns of its
        fields) are matched to the training loader's by name, in any order.
    draws : int, default 100
        Posterior draws ``S`` per evaluation.
    """

    def __init__(self, approx, feed: Feed, dataloader: DataLoader, draws: int = 100):
        # Built now, compiled on first use: the columns they read must be in the rows.
        self._row_logps = [
            logp(likelihood_of(rv), feed.model.rvs_to_values[rv]) for rv in feed.fed_observed()
        ]
        # Columns matched by name, as predict() does: by position, columns in another order
        # would be scored silently wrong.
        self._filler = PlaceholderFiller(
            feed,
            dataloader,
            self._row_logps,
            "val_dataloader",
            "the held-out score reads",
            "<the Trainer's DataLoader>",
        )
        # Counted to the user who built the Trainer (HeldOutScore, Validation, Trainer).
        warn_untransformed(feed.loader, dataloader, "val_dataloader", stacklevel=4)
        self.approx, self.feed, self.dataloader, self.draws = approx, feed, dataloader, int(draws)
        self._fn: Callable | None = None

    def _compile(self) -> Callable:
        model, approx = self.feed.model, self.approx
        scores = []
        for row_logp in self._row_logps:
            draws = approx.sample_node(row_logp, size=self.draws)  # (draws, *rows)
            lpd = pt.logsumexp(draws, axis=0) - math.log(self.draws)
            scores.append(pt.mean(lpd))
        with model:
            fn = pytensor_compile([], pt.sum(pt.stack(scores)))
        self._rngs = [v for v in fn.get_shared() if isinstance(v.type, RandomGeneratorType)]
        return fn

    def __call__(self, seed: int | tuple[int, ...] | None = None) -> float:
        """Score one epoch of the held-out loader; the training batch is put back after.

        ``seed`` fixes the posterior draws: the Trainer passes ``(its seed, step)``, so a
        check gives the same score in a fit continued or resumed from a checkpoint.
        """
        if self._fn is None:
            self._fn = self._compile()
        if seed is not None:
            reseed_rngs(self._rngs, list(seed) if isinstance(seed, tuple) else seed)
        saved = self.feed.values()
        set_batch = self.feed.setter()
        total, rows = 0.0, 0
        try:
            # Every row, whatever drop_last says; group codes checked as in training.
            with self.dataloader.iterate(
                dtype=self._filler.dtype(),
                prefetch=0,
                workers=0,
                rules=self._filler.rules,
                epochs=1,
                storage_order=True,
            ) as batches:
                for batch in batches:
                    values, n = self._filler(batch)
                    set_batch(values)
                    total += float(self._fn()) * n
                    rows += n
        except MissingValuesError as err:
            self._filler.raise_missing(err)
        finally:
            self.feed.restore(saved)
        return total / rows


class EarlyStopping:
    """Stop a fit when a monitored figure stops improving.

    Parameters
    ----------
    monitor : {"val_lpd", "loss"}, default "val_lpd"
        ``"val_lpd"``: the held-out score, checked every ``val_check_interval`` steps
        (higher is better; needs a ``val_dataloader``). ``"loss"``: the loss averaged over
        each epoch of the training loader (lower is better).
    tolerance : float, default 1e-3
        Smallest relative improvement that counts.
    patience : int, default 3
        Checks without improvement before stopping.

    Examples
    --------
    .. code-block:: python

        trainer = Trainer(
            dataloader=train, val_dataloader=held_out, val_check_interval=1000,
            early_stopping=EarlyStopping(monitor="val_lpd", patience=3),
        )
    """

    def __init__(self, monitor: str = "val_lpd", tolerance: float = 1e-3, patience: int = 3):
        if monitor not in ("val_lpd", "loss"):
            raise ValueError(f'monitor must be "val_lpd" or "loss", got {monitor!r}')
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience!r}")
        self.monitor, self.tolerance, self.patience = monitor, float(tolerance), int(patience)
        self.best: float | None = None
        self.bad_checks = 0

    def state_dict(self) -> dict:
        """The best value so far and the checks since, for a checkpoint."""
        return {"monitor": self.monitor, "best": self.best, "bad_checks": self.bad_checks}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`."""
        if state["monitor"] != self.monitor:
            raise ValueError(
                f"this early-stopping state monitors {state['monitor']!r}, not {self.monitor!r}"
            )
        self.best, self.bad_checks = state["best"], int(state["bad_checks"])

    def update(self, value: float, step: int) -> None:
        """Record one check; raise ``StopIteration`` once patience runs out."""
        sign = 1.0 if self.monitor == "val_lpd" else -1.0
        if self.best is None or sign * (value - self.best) > self.tolerance * abs(self.best):
            self.best, self.bad_checks = value, 0
            return
        self.bad_checks += 1
        if self.bad_checks >= self.patience:
            raise StopIteration(
                f"early stopping at step {step:,d}: {self.monitor} has not improved on {self.best:.6g} "
                f"by more than {self.tolerance:g} (relative) for {self.patience} checks"
            )


class Validation:
    """The checks a Trainer runs every few steps: held-out score and early stopping.

    Parameters
    ----------
    approx : Approximation
    feed : Feed
    val_dataloader : DataLoader, optional
    interval : int
        Steps between held-out checks.
    draws : int
        Posterior draws per held-out check.
    early_stopping : EarlyStopping, optional
    reports_loss : bool
        Whether the inference method reports a loss (``monitor="loss"`` needs one).
    log_every : int
        Steps between computed losses (``monitor="loss"`` needs some in every epoch).
    """

    def __init__(
        self,
        approx,
        feed: Feed,
        val_dataloader,
        interval,
        draws,
        early_stopping,
        reports_loss: bool,
        log_every: int = 1,
        seed: int = 0,
    ):
        if not (
            isinstance(interval, int | np.integer)
            and not isinstance(interval, bool)
            and interval > 0
        ):
            raise ValueError(
                f"val_check_interval must be a positive number of steps, got {interval!r}"
            )
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            raise TypeError(
                f"early_stopping must be an EarlyStopping, got {type(early_stopping).__name__}"
            )
        self.interval = int(interval)
        self.early_stopping = early_stopping
        self.seed = int(seed)
        #: Early stopping judges the checks after this step only: a Convergence fit sets
        #: the start of its averaging, before which the scales are still growing.
        self.not_before = 0
        #: ``(step, held-out mean log predictive density)`` of every check.
        self.history: list[tuple[int, float]] = []
        self.held_out = (
            HeldOutScore(approx, feed, val_dataloader, draws)
            if val_dataloader is not None
            else None
        )
        #: Steps between events: held-out checks, epoch ends for ``monitor="loss"``.
        self.periods = [self.interval] if self.held_out is not None else []
        self.epoch_steps = 0
        if early_stopping is None:
            return
        if early_stopping.monitor == "val_lpd" and self.held_out is None:
            raise ValueError('EarlyStopping(monitor="val_lpd") needs a val_dataloader')
        if early_stopping.monitor == "loss":
            if not reports_loss:
                raise ValueError(
                    'EarlyStopping(monitor="loss") needs a method that reports a loss (ADVI)'
                )
            if feed.loader.batches_per_epoch is None:
                raise ValueError(
                    'EarlyStopping(monitor="loss") needs a loader that knows its number of rows'
                )
            self.epoch_steps = feed.loader.batches_per_epoch
            if log_every > self.epoch_steps:
                raise ValueError(
                    f'EarlyStopping(monitor="loss") compares the losses of each epoch '
                    f"({self.epoch_steps} steps), but log_every_n_steps={log_every} computes none "
                    f"in some: use at most {self.epoch_steps}"
                )
            self.periods.append(self.epoch_steps)

    def on_step(self, step: int, recent_losses: Callable[[int], np.ndarray]) -> float | None:
        """Run the checks due after ``step``; returns the held-out score when one was taken.

        ``recent_losses(k)`` gives the last ``k`` recorded losses. Raises
        ``StopIteration`` when early stopping ends the fit.
        """
        value = None
        if self.held_out is not None and step % self.interval == 0:
            value = self.held_out(seed=(self.seed, step))
            self.history.append((step, value))
            if self.early_stopping is not None and self.early_stopping.monitor == "val_lpd":
                if step > self.not_before:
                    self.early_stopping.update(value, step)
        if self.epoch_steps and step % self.epoch_steps == 0 and step > self.not_before:
            # The losses computed in the epoch (NaN marks the steps that computed none).
            self.early_stopping.update(float(np.nanmean(recent_losses(self.epoch_steps))), step)
        return value

    def state_dict(self) -> dict:
        """The history and the early-stopping state, for a checkpoint."""
        stopping = self.early_stopping.state_dict() if self.early_stopping is not None else None
        return {"history": self.history, "early_stopping": stopping}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`."""
        self.history = [(int(s), float(v)) for s, v in state["history"]]
        if self.early_stopping is not None and state["early_stopping"] is not None:
            self.early_stopping.load_state_dict(state["early_stopping"])

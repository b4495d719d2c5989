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
"""The Trainer: one compiled variational step, fed a fresh batch before every call."""

from __future__ import annotations

import logging
import math
import os
import warnings

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from pymc.model import Model
from pymc.variational.approximations import Approximation
from pymc.variational.inference import Inference

from pymc.variational.streaming.checkpoint import (
    check_identity,
    check_variables,
    describe_identity,
    read_checkpoint,
    restore_variables,
    write_checkpoint,
)
from pymc.variational.streaming.convergence import Convergence, ConvergenceReport
from pymc.variational.streaming.dataloader import DataLoader
from pymc.variational.streaming.feeds import Feed
from pymc.variational.streaming.guard import BatchCheck, FiniteGuard
from pymc.variational.streaming.optimization import Optimization, make_inference
from pymc.variational.streaming.predict import predict
from pymc.variational.streaming.prefetch import BatchIterator
from pymc.variational.streaming.progress import ProgressBar
from pymc.variational.streaming.streams import TrainingStream
from pymc.variational.streaming.validation import EarlyStopping, Validation

__all__ = ["Trainer", "TrainerState"]

logger = logging.getLogger("pymc")

# Parameters are copied this often, so that a NaN can roll back to finite values.
_SNAPSHOT_EVERY = 100
#: The Trainer's default ``convergence``.
DEFAULT_CONVERGENCE = Convergence()


class TrainerState(NamedTuple):
    """Where a Trainer stands: steps taken and the ``(epoch, batch)`` of the next batch."""

    step: int
    epoch: int
    batch: int


class Trainer:
    """Fit a variational approximation to data streamed by a :class:`DataLoader`.

    The Trainer owns the optimization loop: it compiles the variational step once, then
    before every step writes the next batch of the loader into the model's ``pm.Data``
    placeholder. The placeholder is filled before the first step, so step 0 already sees
    real data, and no callback is needed to feed it.

    Parameters
    ----------
    method : str or Inference, default "advi"
        ``"advi"``, ``"fullrank_advi"``, ``"svgd"``, ``"asvgd"``, or an
        :class:`~pymc.variational.inference.Inference` built on the model.
    dataloader : DataLoader
        Source of the batches.
    data_name : str or None, default "batch"
        Name of the ``pm.Data`` placeholder that receives each batch. Its trailing shape
        must equal ``dataloader.sample_shape`` and it should not fix the batch dimension.
        ``None`` for a loader with ``fields``: each field then fills the ``pm.Data`` of
        the same name, all of them before every step.
    model : Model, optional
        Defaults to the model on the ``with`` context.
    random_seed : int, optional
        Seed of the whole fit: the approximation's Monte Carlo draws and, unless the
        loader was given its own ``seed``, the order of the batches.
    progressbar : bool, default True
        Show a progress bar with the average loss and rows per second.
    inf_kwargs : dict, optional
        Passed to the inference class, e.g. ``{"n_particles": 50}`` for SVGD.
    start : dict, optional
        Starting point of the approximation.
    val_dataloader : DataLoader, optional
        Held-out rows, their columns matched to the training loader's by name. Every
        ``val_check_interval`` steps their mean log predictive density under ``val_draws``
        draws of the approximation is recorded in ``val_history`` and shown in the bar.
    val_check_interval : int, default 1000
        Steps between validation checks.
    val_draws : int, default 100
        Posterior draws per validation check.
    early_stopping : EarlyStopping, optional
        Stop when the held-out score or the epoch-averaged loss stops improving. Off by
        default.
    convergence : Convergence or None, default Convergence()
        How ADVI reaches the exact variational optimum: small starting sds, a decaying
        step size, scale steps with a control variate and averaged iterates (see
        :class:`Convergence`). It applies to ``method="advi"`` when no ``obj_optimizer``
        is given; ``None`` runs pymc's plain step with Adam at 0.01.
    log_every_n_steps : int, default 1
        Compute the loss on every ``log_every_n_steps``-th step only. The other steps run
        a compiled step without the loss output (the same updates and state), about twice
        as fast for small models. Then ``approx.hist`` holds the computed losses only
        (``trainer.losses`` has one entry per step, NaN where none was computed), the
        progress bar averages the computed ones, a non-finite loss is caught when it is
        computed and non-finite parameters every 100 steps, and ``EarlyStopping("loss")``
        compares the mean of the losses computed in each epoch.
    **kwargs
        Passed to the step, as in :func:`pymc.fit`: ``obj_optimizer`` (default
        :func:`default_optimizer`), ``total_grad_norm_constraint``, ``obj_n_mc``,
        ``tf_n_mc``, ``test_optimizer``, ``more_updates``, ``compile_kwargs``, ...

    Attributes
    ----------
    approx : Approximation
        The approximation being fitted; ``approx.hist`` holds the computed losses. After a
        fit, its parameters are the averaged iterates when ``convergence`` applies.
    convergence_report : ConvergenceReport or None
        Whether the last fit of mean-field ADVI converged, measured on its iterates; a
        warning says so when it did not.
    inference : Inference
        The underlying PyMC inference object.
    feed : Feed
        The placeholders that the loader fills.

    Examples
    --------
    .. code-block:: python

        import numpy as np
        import pymc as pm
        from pymc.variational.streaming import DataLoader, Trainer, parquet_source

        loader = DataLoader(parquet_source("criteo/"), batch_size=4096, sample_shape=(14,))
        with pm.Model() as model:
            b = pm.Normal("b", 0.0, 1.5, shape=14)
            batch = pm.Data("batch", np.zeros((4096, 14)))
            logit = b[0] + pm.math.dot(batch[:, :13], b[1:])
            pm.Bernoulli("click", logit_p=logit, observed=batch[:, 13], total_size=len(loader))
            approx = Trainer(method="advi", dataloader=loader, data_name="batch").fit(20_000)
    """

    def __init__(
        self,
        method: str | Inference = "advi",
        dataloader: DataLoader | None = None,
        data_name: str | None = "batch",
        model: Model | None = None,
        random_seed: int | None = None,
        progressbar: bool = True,
        *,
        inf_kwargs: dict | None = None,
        start: dict | None = None,
        val_dataloader: DataLoader | None = None,
        val_check_interval: int = 1000,
        val_draws: int = 100,
        early_stopping: EarlyStopping | None = None,
        convergence: Convergence | None = DEFAULT_CONVERGENCE,
        log_every_n_steps: int = 1,
        **kwargs,
    ):
        if isinstance(method, DataLoader):
            raise TypeError(
                "Trainer's first argument is the method ('advi', 'fullrank_advi', 'svgd', 'asvgd'); "
                "pass the loader by name: Trainer(dataloader=loader)"
            )
        if not isinstance(dataloader, DataLoader):
            raise TypeError(
                "Trainer needs dataloader=DataLoader(...), got "
                f"{type(dataloader).__name__ if dataloader is not None else 'nothing'}"
            )
        self.dataloader = dataloader
        self.data_name = data_name
        self.progressbar = progressbar
        self.inference = make_inference(method, model, random_seed, inf_kwargs, start)
        self.optimization = Optimization(self.inference, kwargs, convergence, log_every_n_steps)
        self.score = self.optimization.score
        self.model = self.inference.approx.model
        self.feed = Feed(self.model, dataloader, data_name)
        self.feed.check_model()
        self._label_rules, self._untraced_labels = self.feed.label_rules()
        self._check_batch = BatchCheck(self.feed, self._label_rules)  # for step(batch)
        #: Seed of the order of the batches (see ``DataLoader.resolve_seed``).
        self.data_seed = dataloader.resolve_seed(random_seed)
        self._steps_done = 0
        self._position = (0, 0)
        self._guard = FiniteGuard()
        self._stream = TrainingStream()
        #: Loss of every step, NaN where none was computed (``approx.hist`` drops those).
        self.losses = np.empty(0)
        self._monitor = self.optimization.drift_monitor()
        self.convergence_report: ConvergenceReport | None = None
        #: Why the last fit stopped before its ``n`` steps, or None.
        self.stop_reason: str | None = None
        self.validation = Validation(
            self.approx,
            self.feed,
            val_dataloader,
            val_check_interval,
            val_draws,
            early_stopping,
            self.score,
            self.optimization.log_every,
            seed=self.data_seed,
        )
        if self.optimization.convergence is not None:
            self.validation.not_before = self.optimization.convergence.average_after

    # ------------------------------------------------------------------ public state
    @property
    def approx(self) -> Approximation:
        return self.inference.approx

    @property
    def val_history(self) -> list[tuple[int, float]]:
        """``(step, held-out mean log predictive density)`` of every validation check."""
        return self.validation.history

    @property
    def early_stopping(self) -> EarlyStopping | None:
        return self.validation.early_stopping

    @property
    def placeholders(self) -> dict:
        """``{name: pm.Data}`` of the placeholders the loader fills."""
        return self.feed.placeholders

    @property
    def state(self) -> TrainerState:
        return TrainerState(self._steps_done, *self._position)

    def compile(self):
        """Compile the variational step (done once; the optimizer state lives in it)."""
        return self.optimization.compile()

    # ------------------------------------------------------------------ checkpoints
    def _state_variables(self) -> list:
        return self.optimization.state_variables(self.feed.placeholders.values())

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write everything needed to continue this fit exactly into one ``.npz`` file.

        It holds the variational parameters, the optimizer state, the state of the step's
        random generators, the step count and loss history, the position in the stream,
        the validation history and early-stopping state, and the data's fingerprint
        (content only: no paths, no credentials). It contains no pickled objects.

        Parameters
        ----------
        path : str or path-like
            Where to write; the file is replaced atomically.
        """
        self.optimization.use_raw()  # the raw iterates are what continues
        try:
            self._write_checkpoint(path)
        finally:
            self.optimization.show_averages()

    def _write_checkpoint(self, path: str | os.PathLike) -> None:
        meta = {
            **self.optimization.describe(),
            "steps": self._steps_done,
            "position": list(self._position),
            "data_seed": self.data_seed,
            "loader": self.dataloader.state_dict(),
            "validation": self.validation.state_dict(),
            "monitor": self._monitor.state_dict() if self._monitor is not None else None,
            **describe_identity(self.model, self.dataloader.transform),
        }
        arrays = {"losses": self.losses}
        if self._monitor is not None:
            arrays |= {f"monitor_{k}": v for k, v in self._monitor.arrays().items()}
        write_checkpoint(path, self._state_variables(), meta, arrays)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by :meth:`save_checkpoint`.

        The model and Trainer must be built as they were when it was saved; the
        checkpoint is refused, with the reason, when the variables or the data differ.
        The data may have moved: it is recognised by its content.
        """
        meta, variables, extra = read_checkpoint(path)
        self.optimization.check_checkpoint(path, meta)
        check_variables(path, self._state_variables(), meta, variables)
        check_identity(path, meta, self.model, self.dataloader.transform)
        self.dataloader.check_state_dict(meta["loader"])
        self.optimization.use_raw()
        restore_variables(path, self._state_variables(), meta, variables)
        self._steps_done = int(meta["steps"])
        self._position = tuple(int(x) for x in meta["position"])
        self.data_seed = int(meta["data_seed"])
        self.losses = np.empty(0)
        self._record(extra["losses"])
        self.validation.load_state_dict(meta["validation"])
        if self._monitor is not None and meta["monitor"] is not None:
            self._monitor.load(
                meta["monitor"], {k[8:]: v for k, v in extra.items() if k.startswith("monitor_")}
            )
        self._guard.forget()
        self.optimization.show_averages()

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        dataloader: DataLoader,
        var_names: str | Sequence[str],
        draws: int = 100,
        random_seed: int | None = None,
        out: str | os.PathLike | None = None,
    ) -> dict[str, np.ndarray] | str:
        """Posterior predictive means and sds for every row of ``dataloader``, in one pass.

        Each batch is written into the placeholders, ``draws`` draws of the fitted
        approximation are taken, and for every name in ``var_names`` the mean and sd over
        the draws of its expected value are kept: for an observed variable, the mean of
        its likelihood (the click probability of a Bernoulli, the rate of a Poisson); for
        a ``pm.Deterministic``, its value. Memory does not grow with the number of rows
        when ``out`` is given.

        Parameters
        ----------
        dataloader : DataLoader
            The rows to predict for, each once, in storage order. Columns (or fields) are
            matched to the Trainer's by name, and those not read (labels) may be missing.
            Categorical codes must mean the same levels: build the source with
            ``categorical={"g": trainer.dataloader.categories["g"]}``; other codes are refused.
        var_names : str or list of str
            Observed variables or deterministics of the model that have one value per row.
        draws : int, default 100
            Posterior draws per batch.
        random_seed : int, optional
            Seed of the draws.
        out : str or path-like, optional
            Write the predictions to this parquet file, batch by batch (columns ``name``
            and ``name_sd``), instead of returning them. The file appears only once
            complete.

        Returns
        -------
        dict or str
            ``{name: means, name + "_sd": sds}``, arrays with one entry per row in
            storage order; or the path written.

        Examples
        --------
        .. code-block:: python

            new_rows = DataLoader(parquet_source("new/", columns=features), batch_size=65536)
            trainer.predict(new_rows, var_names="click", out="click-probabilities.parquet")
        """
        return predict(self.approx, self.feed, dataloader, var_names, draws, random_seed, out)

    # ------------------------------------------------------------------ stepping
    def step(self, batch) -> float:
        """One step on ``batch``, checked and recorded as by :meth:`fit`; returns its loss (NaN
        without one) scaled to ``batch_size`` rows. A non-finite loss raises, rolling nothing back."""
        cycle = self.compile()
        rows = self._check_batch(batch)
        self.optimization.use_raw()
        self.feed.setter()(self.feed.cast(batch))
        self.feed.check_labels(self._untraced_labels)
        fn, logs = cycle[(self._steps_done + 1) % len(cycle)]
        loss = float(fn()) * (self.dataloader.batch_size / rows) if logs else math.nan
        self._steps_done += 1
        self._record(np.array([loss]))
        self.optimization.show_averages()
        self._guard.check_step(self._state_variables, self._steps_done, loss, logs)
        return loss

    def fit(
        self,
        n: int = 10_000,
        callbacks: Sequence[Callable] | None = None,
        progressbar: bool | None = None,
        ckpt_path: str | os.PathLike | None = None,
    ) -> Approximation:
        """Run ``n`` steps, continuing from any earlier call, and return the approximation.

        The computed losses are appended to ``approx.hist``. Ctrl-C stops after the current
        step and keeps what was learned; the next ``fit`` continues with the same optimizer
        state and the next batch. With ``DataLoader(persistent_workers=True)`` the producer
        stays for the next ``fit``; :meth:`close` stops it.

        Parameters
        ----------
        n : int, default 10000
            Number of steps.
        callbacks : list of callable, optional
            Called after every step as ``callback(approx, losses, i)``, as in
            :meth:`pymc.variational.Inference.fit`; raising ``StopIteration`` ends the fit.
        progressbar : bool, optional
            Overrides the Trainer's ``progressbar``.
        ckpt_path : str or path-like, optional
            A checkpoint from :meth:`save_checkpoint` to continue from, e.g. in a new
            process. Continuing is exact: 300 steps, a checkpoint and 300 more give the
            same parameters as 600 steps at once. A missing file is an error.

        Returns
        -------
        Approximation
        """
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be a non-negative number of steps, got {n!r}")
        n = int(n)
        try:  # np.empty: a fit(10**9) that stops early touches only the pages it used
            losses = np.empty(n)
        except (MemoryError, ValueError):  # numpy's "array is too big" beyond 2**63 bytes
            raise ValueError(f"fit({n:,d}): no memory for a loss per step; fit in parts") from None
        if ckpt_path is not None:
            self.load_checkpoint(ckpt_path)
        cycle = self.compile()  # before the fork: compiling beside a worker copied ~100 MB
        stream = self._stream.open(
            self.dataloader, self._position, self.feed.dtype, self._label_rules, self.data_seed
        )
        self.optimization.use_raw()
        show = self.progressbar if progressbar is None else progressbar
        self.stop_reason = None
        self._done_in_loop = self._fetched = 0
        original = self.feed.values()  # put back: a short batch may not fit pm.Data's dims
        kept = False  # persistent workers stay for the next fit unless a read was cut short
        try:  # the watch too: a state found non-finite still closes the stream
            self._guard.watch(self._state_variables(), self._steps_done, self._position)
            with ProgressBar(show, n, self.dataloader.batch_size, self.score) as bar:
                self._loop(cycle, stream, losses, list(callbacks or []), bar, n)
            kept = self.dataloader.persistent_workers
        except StopIteration as stop:
            kept = self.dataloader.persistent_workers
            self.stop_reason = str(stop) or f"a callback stopped at step {self._steps_done:,d}"
            logger.info(self.stop_reason)
        except KeyboardInterrupt:
            self.stop_reason = f"interrupted at step {self._steps_done:,d}"
            logger.info(f"Interrupted at step {self._steps_done:,d}; the fit keeps what it learned")
        finally:
            self.feed.restore(original)
            if not kept:
                self._stream.close()
            self._record(losses[: self._done_in_loop])
            # The last batch fetched but never stepped on is the next one to use.
            if self._fetched:
                self._position = (
                    stream.position if self._done_in_loop == self._fetched else stream.last_position
                )
            if self._guard.rolled_back is not None:
                self._roll_back(*self._guard.rolled_back)
            self.optimization.show_averages()
        self._check_convergence()
        return self.approx

    def close(self) -> None:
        """Stop the producer kept for the next fit (``persistent_workers``; also on collection)."""
        self._stream.close()

    def _loop(self, cycle, stream: BatchIterator, losses, callbacks, bar, n) -> None:
        """The hot loop: set the batch, step; everything else at events every few steps."""
        feed = self.feed.setter()
        untraced = self._untraced_labels
        check_labels = (lambda: self.feed.check_labels(untraced)) if untraced else None
        rows_of = (
            len if self.feed.single is not None else (lambda batch: len(next(iter(batch.values()))))
        )
        B, period = self.dataloader.batch_size, len(cycle)
        approx, base = self.approx, self._steps_done
        next_event = 0
        for i in range(n):
            batch = next(stream)
            self._fetched = i + 1
            feed(batch)
            if check_labels is not None:
                check_labels()
            step_fn, logs = cycle[(base + i + 1) % period]
            try:
                out = step_fn()
            except (AssertionError, ValueError, IndexError) as err:  # costs nothing until raised
                self.feed.explain_step_error(err, rows_of(batch))
                raise
            losses[i] = math.nan  # unless this step computes one
            if logs:
                rows = rows_of(batch)
                losses[i] = out if rows == B else out * (B / rows)  # one scale for short batches
                if not math.isfinite(out):
                    self._done_in_loop = i
                    self._guard.fail(base + i + 1, out)
            self._done_in_loop = i + 1
            self._steps_done = base + i + 1
            if i == next_event:
                next_event = self._on_event(i, base, losses, bar, stream)
            for callback in callbacks:
                callback(approx, losses[: i + 1], base + i + 1)
        bar.update(n, losses, n - 1)

    def _on_event(self, i: int, base: int, losses, bar: ProgressBar, stream: BatchIterator) -> int:
        """Everything that is not a step: snapshots, progress, validation, early stopping,
        the drift monitor. Returns the loop index of the next event."""
        step = base + i + 1
        periods = [_SNAPSHOT_EVERY, *self.validation.periods]
        if step % _SNAPSHOT_EVERY == 0 or i == 0:
            if not self._guard.finite():  # a finite loss says nothing of the next update
                self._guard.fail(step, None)
            self._guard.snapshot(step, stream.position)
            bar.update(i + 1, losses, i)
        value = self.validation.on_step(
            step, lambda k: np.concatenate([self.losses[-k:], losses[: i + 1]])[-k:]
        )
        if value is not None:
            bar.show_val(value)
        if self._monitor is not None:
            periods.append(self._monitor.every)
            if step % self._monitor.every == 0:
                self._monitor.record(
                    step, np.concatenate([p.get_value(borrow=True) for p in self.approx.params])
                )
        return i + min(period - step % period for period in periods)

    def _check_convergence(self) -> None:
        """After a fit of mean-field ADVI: warn, with the numbers, when it has not converged."""
        if self._monitor is None or self._steps_done == 0:
            return
        mean, std = self.approx.mean.eval(), self.approx.std.eval()
        report = self.convergence_report = self._monitor.report(self._steps_done, mean, std)
        if not report.converged:
            warnings.warn(report.warning(self._steps_done), UserWarning, stacklevel=3)

    def _roll_back(self, step: int, position: tuple[int, int]) -> None:
        """Make the record agree with a state the guard rolled back to after ``step``."""
        self._steps_done, self._position, self.losses = step, position, self.losses[:step]
        self._record(np.empty(0))
        if self._monitor is not None:
            self._monitor.truncate(step)

    def _record(self, losses: np.ndarray) -> None:
        self.losses = np.concatenate([self.losses, losses])
        if self.score:  # as in pm.fit, methods without a loss keep an empty history
            self.inference.hist = self.losses[~np.isnan(self.losses)]
        self.approx.hist = self.inference.hist

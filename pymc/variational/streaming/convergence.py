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
"""Reaching the exact variational optimum, and saying when a fit has not.

Adam at a constant step size keeps every mean moving by about the step size around the
optimum. That jitter does not shrink with the number of rows N while the posterior sd
does (as 1/sqrt(N)), so a long stream of data ends many posterior sd from the answer.
The default ADVI fit therefore (measured in ``benchmarks/fidelity.py``):

- starts every sd small (``initial_sd``), so that the scales need not crawl down from 1;
- runs Adam at ``learning_rate`` for the first ``decay_after`` global steps, then decays
  the means' step size as ``learning_rate * decay_after / t``, restarting Adam's moments
  once, after step ``decay_after``, so that the large gradients of the first steps no
  longer hold the steps down;
- moves the scales on every ``scale_every``-th step only, at a constant step size, with a
  control variate that removes the minibatch noise from their gradient (``eps * grad log p``
  at the mean, on the same batch: zero in expectation, since ``eps`` is drawn independently
  of the batch);
- reports the average of every parameter over the global steps after ``average_after``
  (Polyak-Ruppert averaging), kept inside the compiled step.

Everything is a function of the global step, held in a shared variable with the
optimizer's state, so ``fit(a)`` then ``fit(b)`` equals ``fit(a + b)`` bit for bit and a
checkpoint carries it. :class:`DriftMonitor` records the raw iterates every few steps and
says at the end of a fit whether they are still drifting.
"""

from __future__ import annotations

import math

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pytensor
import pytensor.tensor as pt

from pymc.variational.operators import KL
from pymc.variational.updates import get_or_compute_grads
from pytensor.gradient import disconnected_grad
from pytensor.graph.replace import graph_replace

__all__ = [
    "ControlVariateKL",
    "Convergence",
    "ConvergenceReport",
    "DriftMonitor",
    "OptimizerState",
    "scheduled_adam",
    "softplus_inverse",
]

_BETA1, _BETA2, _EPSILON = 0.9, 0.999, 1e-8


@dataclass(frozen=True)
class Convergence:
    """How the Trainer's ADVI fit reaches the exact variational optimum.

    Parameters
    ----------
    learning_rate : float, default 0.01
        Adam's step size for the means, up to ``decay_after``.
    decay_after : int, default 1000
        Global step after which the means' step size decays as ``1 / t`` and Adam's moments
        restart once.
    scale_every : int, default 8
        The scales (``rho`` of mean-field ADVI) move on every ``scale_every``-th global step,
        with the control variate, which costs one more gradient on those steps. Models with
        groups seen in few batches get their sds sooner with 4 (about 10% fewer steps per
        second); 16 is cheaper and needs longer fits for the sds (measured in
        ``benchmarks/fidelity.py``).
    scale_learning_rate : float, default 0.01
        Adam's step size for the scales, constant: they start small and must be able to
        climb (``log(sd / initial_sd) / scale_learning_rate`` scale steps).
    initial_sd : float, default 1e-3
        Starting sd of every variable.
    average_after : int, default 4000
        The fit reports the average of the iterates after this global step.
    tolerance_mean, tolerance_sd : float, default 0.25 and 0.10
        The convergence check warns when the estimated error of the averaged means exceeds
        ``tolerance_mean`` fitted sd, or that of the sds ``tolerance_sd`` (relative). The
        error is estimated as half the drift between the two halves of the averaging
        window (each half errs by about sqrt(2) times the whole window).

    Notes
    -----
    Tuned and measured on GLM-like posteriors (``benchmarks/fidelity.py``). A model with a
    slow direction, such as a non-centred hierarchical model whose group mean and group
    effects trade off, may need a longer constant-step phase (larger ``decay_after`` and
    ``average_after``); the drift check then warns while the means still move.
    """

    learning_rate: float = 0.01
    decay_after: int = 1000
    scale_every: int = 8
    scale_learning_rate: float = 0.01
    initial_sd: float = 1e-3
    average_after: int = 4000
    tolerance_mean: float = 0.25
    tolerance_sd: float = 0.10

    def __post_init__(self):
        for name in ("decay_after", "scale_every", "average_after"):
            value = getattr(self, name)
            least = 1 if name == "scale_every" else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(
                    f"Convergence({name}=...) must be an integer >= {least}, got {value!r}"
                )
        if not (self.learning_rate > 0 and self.scale_learning_rate > 0 and self.initial_sd > 0):
            raise ValueError("Convergence: the learning rates and initial_sd must be positive")


def softplus_inverse(sd: np.ndarray | float) -> np.ndarray:
    """``rho`` such that ``softplus(rho) == sd`` (pymc's mean-field scale parametrization)."""
    sd = np.asarray(sd, dtype=np.float64)
    return np.where(sd > 30, sd, np.log(np.expm1(np.minimum(sd, 30))))


class OptimizerState:
    """The shared variables of :func:`scheduled_adam`: the global step ``t`` and, for each
    parameter, Adam's two moments, its count of updates and its running average."""

    def __init__(self):
        self.t = pytensor.shared(np.float64(0.0), name="global_step")
        self._vars: dict = {}
        #: ``{parameter: its running average}``
        self.averages: dict = {}

    def var(self, param, role: str, scalar: bool = False):
        key = (param, role)
        if key not in self._vars:
            value = np.float64(0.0) if scalar else np.zeros_like(param.get_value(borrow=True))
            shape = {} if scalar else {"shape": param.type.shape}
            self._vars[key] = pytensor.shared(value, name=f"{param.name}_{role}", **shape)
        return self._vars[key]


def scheduled_adam(
    settings: Convergence, state: OptimizerState, frozen: Sequence[str] = ()
) -> Callable:
    """An ``obj_optimizer`` for pymc: Adam on the schedule of ``settings``.

    Parameters named in ``frozen`` are not moved (their moments only restart on time), but
    their running averages advance. Called twice with one ``state`` (a step that moves the
    scales and one that does not), the two share every variable.
    """
    lr, scale_lr = settings.learning_rate, settings.scale_learning_rate
    start, after = float(settings.decay_after), float(settings.average_after)

    def optimizer(loss_or_grads, params):
        grads = get_or_compute_grads(loss_or_grads, params)
        t = state.t + 1.0
        restart = pt.eq(t, start + 1.0)  # Adam's moments start again after the warm-up
        decayed = lr * pt.minimum(1.0, start / t) if start > 0 else pt.constant(lr)
        weight = pt.switch(t <= after, 1.0, 1.0 / (t - after + 1.0))
        updates = OrderedDict()
        for param, grad in zip(params, grads):
            m, v, n = (
                state.var(param, "m"),
                state.var(param, "v"),
                state.var(param, "n", scalar=True),
            )
            m0, v0, n0 = (pt.switch(restart, pt.zeros_like(x), x) for x in (m, v, n))
            new = param
            if param.name in frozen:
                updates[m], updates[v], updates[n] = m0, v0, n0
            else:
                count = n0 + 1.0
                m1 = _BETA1 * m0 + (1.0 - _BETA1) * grad
                v1 = _BETA2 * v0 + (1.0 - _BETA2) * grad**2
                rate = scale_lr if param.name == "rho" else decayed  # the scales keep their step
                step = (
                    rate
                    * pt.sqrt(1.0 - _BETA2**count)
                    / (1.0 - _BETA1**count)
                    * m1
                    / (pt.sqrt(v1) + _EPSILON)
                )
                new = param - step
                updates[param], updates[m], updates[v], updates[n] = new, m1, v1, count
            average = state.var(param, "average")
            updates[average] = average + weight * (new - average)
            state.averages[param] = average
        updates[state.t] = t
        return updates

    return optimizer


class ControlVariateKL(KL):
    """The KL objective of ADVI with a control variate in the scales' gradient.

    The reparametrized gradient of the ELBO in the sd of variable ``j`` is
    ``eps_j * g_j(mu + sd * eps) + 1 / sd_j``, with ``g`` the gradient of the (``total_size``
    scaled) minibatch log joint. Its noise is mostly ``eps_j`` times the minibatch noise of
    ``g``, which averaging over steps removes only slowly. Subtracting ``eps_j * g_j(mu)`` on
    the same batch removes it (its expectation is zero: ``eps`` is independent of the
    batch). The term enters the loss with value zero and that gradient, so the reported
    loss and the means' gradient are unchanged.
    """

    def apply(self, f):
        loss = super().apply(f)
        approx = self.approx
        log_joint = approx.to_flat_input(approx.model.varlogp + approx.model.datalogp)
        extra = 0.0
        for group in approx.groups:
            at_mean = graph_replace(log_joint, {group.input: group.mean}, strict=False)
            grad_at_mean = disconnected_grad(pt.grad(at_mean, group.mean))
            eps = group.symbolic_initial.mean(0)  # the draw(s) of this step
            sd = group.std
            extra = extra + pt.sum(
                (sd - disconnected_grad(sd)) * disconnected_grad(eps * grad_at_mean)
            )
        return loss + extra / approx.symbolic_normalizing_constant


#: More steps than this many averaging windows: the drift is travel, not noise.
_TRAVELLING = 20


@dataclass(frozen=True)
class ConvergenceReport:
    """What :class:`DriftMonitor` concluded at the end of a fit.

    Attributes
    ----------
    converged : bool
    mean_drift : float
        Largest change of a mean between the two halves of the window, in fitted sd.
    sd_drift : float
        Largest relative change of an sd between the two halves of the window.
    window : tuple of int
        The global steps the check looked at.
    more_steps : int
        Further steps after which the drift would likely be within tolerance (0 when
        converged).
    reason : str
    """

    converged: bool
    mean_drift: float
    sd_drift: float
    window: tuple[int, int]
    more_steps: int
    reason: str

    def warning(self, steps: int) -> str:
        """What the Trainer says after a fit of ``steps`` steps that has not converged."""
        head = f"the fit has not converged after {steps:,d} steps: {self.reason}. "
        tail = f"(trainer.fit({self.more_steps}) continues; trainer.convergence_report has the measures)"
        if math.isnan(self.mean_drift):
            # Nothing is known yet, least of all how far the fit is from the optimum.
            return (
                head + f"The check needs at least {self.more_steps:,d} more steps to judge, and "
                f"the fit may be far from the optimum until then {tail}."
            )
        if self.more_steps > _TRAVELLING * (self.window[1] - self.window[0]):
            # Noise would shrink within a few windows: this much drift is the means still
            # travelling, at a step size that has decayed; more steps would barely move them.
            return (
                head + "The means are still travelling towards the optimum, too far for the "
                "decayed step size to finish the way. Put the data on a unit scale (standardize "
                "features with column_stats(...).standardizer(), centre a Normal likelihood's "
                "data), or start again with a longer constant-step phase, e.g. "
                "Convergence(decay_after=10_000, average_after=15_000) (trainer.convergence_report "
                "has the measures)."
            )
        return (
            head + f"About {self.more_steps:,d} more steps are needed if what remains is noise; "
            f"a fit still travelling needs more {tail}."
        )


class DriftMonitor:
    """Block averages of the raw iterates, to tell at the end of a fit whether they drift.

    Every ``every`` steps the means and ``rho`` are added to the current block; a block
    closes every ``block`` steps. If a fit has converged, what moves is noise, and the
    averages over the two halves of the window differ by about twice the error of the
    whole window's average: that error, in fitted sd, is what the tolerances bound.

    Parameters
    ----------
    settings : Convergence
    averaging : bool
        Whether the fit averages the iterates after ``settings.average_after``; otherwise the
        window is the second half of the run.
    every, block, min_blocks : int
        Sampling period, block length and the fewest blocks worth a verdict.
    """

    def __init__(
        self,
        settings: Convergence,
        averaging: bool,
        every: int = 10,
        block: int = 250,
        min_blocks: int = 8,
    ):
        self.settings, self.averaging = settings, averaging
        self.every, self.block, self.min_blocks = every, block, min_blocks
        self.blocks: list[tuple[int, np.ndarray]] = []  # (last step, block mean of [mu, rho])
        self._sum: np.ndarray | None = None
        self._count = 0
        self.first_step: int | None = None

    def record(self, step: int, values: np.ndarray) -> None:
        """Add the raw iterate after global ``step`` (called every ``every`` steps)."""
        if self.first_step is None:
            self.first_step = step
        self._sum = values.copy() if self._sum is None else self._sum + values
        self._count += 1
        if step % self.block == 0:
            self.blocks.append((step, self._sum / self._count))
            self._sum, self._count = None, 0

    def truncate(self, step: int) -> None:
        """Forget what was recorded after global ``step`` (the fit was rolled back)."""
        self.blocks = [(end, values) for end, values in self.blocks if end <= step]
        self._sum, self._count = None, 0
        if self.first_step is not None and self.first_step > step:
            self.first_step = None

    def report(self, step: int, mean: np.ndarray, sd: np.ndarray) -> ConvergenceReport:
        """The verdict after global ``step``, given the reported means and sds."""
        s = self.settings
        first = self.first_step or 0
        start = s.average_after if self.averaging else first + (step - first) // 2
        blocks = [values for end, values in self.blocks if end - self.block >= start]
        if len(blocks) < self.min_blocks:
            more = max(start + self.min_blocks * self.block - step, self.block)
            reason = (
                f"too short to tell: {len(blocks)} blocks of {self.block} steps after step {start:,d} "
                f"(the check needs {self.min_blocks})"
            )
            return ConvergenceReport(False, math.nan, math.nan, (start, step), int(more), reason)
        d = len(mean)
        stack = np.array(blocks)
        half = len(blocks) // 2
        early, late = stack[:half].mean(axis=0), stack[half:].mean(axis=0)
        mean_drift = np.abs(late[:d] - early[:d]) / sd
        sd_drift = np.abs(
            np.log(np.logaddexp(0.0, late[d:])) - np.log(np.logaddexp(0.0, early[d:]))
        )
        # Noise: each half's average errs by about sqrt(2) times the whole window's, so the
        # drift between halves is about twice the error of the reported average.
        error_mean, error_sd = mean_drift.max() / 2, sd_drift.max() / 2
        ratio = max(error_mean / s.tolerance_mean, error_sd / s.tolerance_sd, 1.0)
        reasons = []
        if error_mean > s.tolerance_mean:
            reasons.append(
                f"means still move by {mean_drift.max():.2f} sd (variable {int(mean_drift.argmax())})"
            )
        if error_sd > s.tolerance_sd:
            reasons.append(
                f"sds still move by {sd_drift.max():.0%} (variable {int(sd_drift.argmax())})"
            )
        # Reported values that are not the window's average jitter with the step size.
        offset = np.abs(mean - stack[:, :d].mean(axis=0)) / sd
        if not self.averaging and offset.max() > s.tolerance_mean:
            reasons.append(
                f"the reported means are {offset.max():.2f} sd from the average of the iterates "
                f"(variable {int(offset.argmax())}): average them (Convergence) or lower the step size"
            )
        # A noise-limited error falls as 1 / sqrt(window): more steps in proportion.
        more = max(math.ceil((step - start) * (ratio**2 - 1)), 1) if reasons else 0
        return ConvergenceReport(
            not reasons,
            float(mean_drift.max()),
            float(sd_drift.max()),
            (start, step),
            more,
            "; ".join(reasons) or "ok",
        )

    def state_dict(self) -> dict:
        """The blocks so far, for a checkpoint (the fit does not depend on them)."""
        return {
            "first_step": self.first_step,
            "ends": [end for end, _ in self.blocks],
            "count": self._count,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "blocks": np.array([values for _, values in self.blocks]),
            "partial": np.asarray(self._sum if self._sum is not None else []),
        }

    def load(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        self.first_step = state["first_step"]
        self.blocks = list(zip(state["ends"], list(arrays["blocks"])))
        self._count = int(state["count"])
        self._sum = arrays["partial"].copy() if self._count else None

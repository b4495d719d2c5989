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
"""The variational objective and its compiled step: what the Trainer's loop calls.

An :class:`Optimization` builds the inference object, compiles its step once (the
optimizer state lives in the compiled function's shared variables) and lists the state a
checkpoint must carry. It knows nothing about data: the Trainer fills the placeholders
before calling :meth:`Optimization.step`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings

from collections.abc import Callable

import numpy as np

from pymc.model import Model, modelcontext
from pymc.pytensorf import collect_default_updates
from pymc.pytensorf import compile as pytensor_compile
from pymc.variational.approximations import MeanFieldGroup
from pymc.variational.inference import ADVI, ASVGD, SVGD, FullRankADVI, Inference
from pymc.variational.updates import adam

from pymc.variational.streaming.convergence import (
    ControlVariateKL,
    Convergence,
    DriftMonitor,
    OptimizerState,
    scheduled_adam,
    softplus_inverse,
)

__all__ = ["STEP_KWARGS", "Optimization", "default_optimizer", "make_inference"]

METHODS = {"advi": ADVI, "fullrank_advi": FullRankADVI, "svgd": SVGD, "asvgd": ASVGD}
#: Keyword arguments of ``ObjectiveFunction.step_function`` that a Trainer passes on.
STEP_KWARGS = {
    "obj_n_mc",
    "tf_n_mc",
    "obj_optimizer",
    "test_optimizer",
    "more_obj_params",
    "more_tf_params",
    "more_updates",
    "total_grad_norm_constraint",
    "compile_kwargs",
    "more_replacements",
}


def default_optimizer(learning_rate: float = 0.01):
    """Adam at ``learning_rate=0.01``, the Trainer's default ``obj_optimizer``.

    ``pm.fit``'s default, ``adagrad_window`` at ``1e-3``, moves an intercept too slowly
    for click data: on Criteo-like rows (intercept near -3.5) it is still near -0.4 after
    5,000 steps. Adam at 0.01 reaches the neighbourhood of the optimum within a few
    thousand steps of batch 4096 (see ``benchmarks/criteo.py``).
    """
    return adam(learning_rate=learning_rate)


def _resolve_model(model: Model | None) -> Model:
    try:
        return modelcontext(model)
    except TypeError as err:
        raise TypeError(
            "Trainer needs a PyMC model: create the Trainer inside `with pm.Model() as model:` "
            "or pass model=model"
        ) from err


def make_inference(
    method: str | Inference,
    model: Model | None,
    random_seed: int | None,
    inf_kwargs: dict | None,
    start: dict | None,
) -> Inference:
    """The inference object for ``method`` (a name or one already built)."""
    if isinstance(method, Inference):
        own = method.approx.model
        if model is not None and model is not own:
            raise ValueError(
                "model= names another model than the one the Inference instance was built on "
                f"({type(method).__name__}(model=...)): it would fit its own. Pass one of them"
            )
        if inf_kwargs or start is not None:
            raise ValueError(
                "inf_kwargs= and start= configure an inference the Trainer builds; the "
                f"{type(method).__name__} instance given is built already: pass them to it"
            )
        return method
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"method must be one of {sorted(METHODS)} or an Inference instance, got {method!r}"
        )
    inf_kwargs = dict(inf_kwargs or {})
    if start is not None:
        inf_kwargs["start"] = start
    if random_seed is None:
        return METHODS[method](model=_resolve_model(model), **inf_kwargs)
    inf_kwargs["random_seed"] = random_seed
    # pymc's Empirical approximation (SVGD) jitters its initial particles with numpy's
    # global generator, whatever random_seed says: seed that too, for this call only.
    saved = np.random.get_state()
    np.random.seed(np.random.SeedSequence([int(random_seed), 0xE3]).generate_state(1)[0])
    try:
        return METHODS[method](model=_resolve_model(model), **inf_kwargs)
    finally:
        np.random.set_state(saved)


def _warn_plain_step(inference, mean_field: bool, given, in_force) -> None:
    """Say when the fit runs pymc's plain step, whose accuracy nothing checks: a constant
    step size leaves the iterates moving with the minibatch noise, which grows with
    N / batch size (full-rank ADVI at 1M rows: 8 posterior sd off after 10,000 steps)."""
    method = type(inference).__name__
    if given is not None and in_force is None and given != Convergence():
        why = "applies to mean-field ADVI only" if not mean_field else "needs its own optimizer"
        warnings.warn(
            f"convergence={given!r} is not used: it {why}, and this fit runs "
            f"{method} with {'pymc' if mean_field else 'its'} plain step"
            f"{' and the obj_optimizer given' if mean_field else ''}.",
            UserWarning,
            stacklevel=4,
        )
    if not mean_field:
        warnings.warn(
            f"{method} runs pymc's plain step with a constant step size: its iterates keep "
            "moving with the minibatch noise, which grows with len(loader) / batch_size, and "
            "no convergence check applies (only mean-field ADVI, method='advi', gets the "
            "schedule, averaging and check). Compare the result with method='advi', or end "
            "with a smaller learning rate (obj_optimizer=pm.adam(learning_rate=...)).",
            UserWarning,
            stacklevel=4,
        )


class Optimization:
    """The compiled variational step over an inference object, and its state.

    Parameters
    ----------
    inference : Inference
    step_kwargs : dict
        Options of ``step_function`` (see :data:`STEP_KWARGS`).
    convergence : Convergence or None
        The schedule, scale steps and averaging of :mod:`convergence`. It applies to
        mean-field ADVI with the default optimizer; otherwise (another method, or an
        ``obj_optimizer`` given) the step is pymc's, with ``obj_optimizer`` defaulting to
        :func:`default_optimizer`.
    log_every : int
        Compute the loss on every ``log_every``-th global step only; the other steps run a
        compiled step without the loss output (same updates, same state).
    """

    def __init__(
        self,
        inference: Inference,
        step_kwargs: dict,
        convergence: Convergence | None,
        log_every: int = 1,
    ):
        if not (isinstance(log_every, int) and not isinstance(log_every, bool)) or log_every < 1:
            raise ValueError(f"log_every_n_steps must be a positive integer, got {log_every!r}")
        if convergence is not None and not isinstance(convergence, Convergence):
            raise TypeError(
                f"convergence must be a Convergence or None, got {type(convergence).__name__}"
            )
        unknown = set(step_kwargs) - STEP_KWARGS
        if unknown:
            hint = "; callbacks go to fit(n, callbacks=[...])" if "callbacks" in unknown else ""
            raise TypeError(
                f"Trainer got unexpected keyword argument(s) {sorted(unknown)}; step options are "
                f"{sorted(STEP_KWARGS)}, and options of the inference class go in inf_kwargs="
                f"{hint}"
            )
        self.inference = inference
        self.step_kwargs = dict(step_kwargs)
        self.compile_kwargs = self.step_kwargs.pop("compile_kwargs", None) or {}
        approx = inference.approx
        mean_field = isinstance(inference, ADVI) and all(
            isinstance(g, MeanFieldGroup) for g in approx.groups
        )
        #: The convergence settings in force, or None for pymc's plain step.
        self.convergence = (
            convergence if mean_field and "obj_optimizer" not in step_kwargs else None
        )
        _warn_plain_step(inference, mean_field, convergence, self.convergence)
        self.step_kwargs.setdefault("obj_optimizer", default_optimizer())
        if isinstance(inference, ASVGD):
            self.step_kwargs.setdefault("obj_n_mc", 500)  # as ASVGD.fit does
        #: Whether the method reports a loss (ADVI does; SVGD and ASVGD do not).
        self.score = bool(inference.objective.op.returns_loss)
        self.log_every = int(log_every) if self.score else 1
        self.state: OptimizerState | None = None
        #: ``cycle[t % len(cycle)]`` is ``(step function, whether it returns the loss)`` of
        #: global step ``t`` (counted from 1).
        self.cycle: list[tuple[Callable, bool]] = []
        self._raw: list[np.ndarray] | None = None
        if self.convergence is not None:
            for param in approx.params:
                if param.name == "rho":
                    param.set_value(
                        np.full_like(
                            param.get_value(), softplus_inverse(self.convergence.initial_sd)
                        )
                    )

    def compile(self) -> list[tuple[Callable, bool]]:
        """Compile every step function once, together: their shared variables (parameters,
        optimizer state, random generators) are one state, seeded once."""
        if self.cycle:
            return self.cycle
        inference, kwargs = self.inference, dict(self.step_kwargs)
        settings = self.convergence
        if settings is None:
            variants = {False: inference.objective.updates(**kwargs)}
            scale_every = 1
        else:
            self.state = OptimizerState()
            kwargs.pop("obj_optimizer")
            plain = scheduled_adam(settings, self.state, frozen=("rho",))
            moving = scheduled_adam(settings, self.state)
            scales = ControlVariateKL(inference.approx)(None)
            variants = {
                False: inference.objective.updates(obj_optimizer=plain, **kwargs),
                True: scales.updates(obj_optimizer=moving, **kwargs),
            }
            scale_every = settings.scale_every
        seed = inference.approx.rng.randint(2**30, dtype=np.int64)
        functions = {}
        period = math.lcm(scale_every, self.log_every)
        for t in range(period):
            key = (
                t % scale_every == 0 and settings is not None,
                self.score and t % self.log_every == 0,
            )
            if key not in functions:
                updates = variants[key[0]]
                outputs = updates.loss if key[1] else []
                # pymc advances the random generators of what a function outputs, not of
                # what it only updates: without the loss output, the step would draw the
                # same noise every time (as pymc's own step_function(score=False) does).
                rngs = collect_default_updates(outputs=list(updates.values()))
                updates = {**updates, **{k: v for k, v in rngs.items() if k not in updates}}
                functions[key] = pytensor_compile(
                    [], outputs, updates=updates, random_seed=seed, **self.compile_kwargs
                )
            self.cycle.append((functions[key], key[1]))
        return self.cycle

    def describe(self) -> dict:
        """What a checkpoint must match to continue this step: method and convergence."""
        settings = self.convergence
        return {
            "method": type(self.inference).__name__,
            "convergence": dataclasses.asdict(settings) if settings is not None else None,
        }

    def check_checkpoint(self, path: str | os.PathLike, meta: dict) -> None:
        """Refuse a checkpoint saved by a step of another method or other settings."""
        now, where = self.describe(), f"checkpoint {os.fspath(path)!r}"
        if meta["method"] != now["method"]:
            raise ValueError(
                f"{where} was saved from a {meta['method']} fit; this Trainer runs {now['method']}"
            )
        saved = meta.get("convergence", now["convergence"])  # older checkpoints: not recorded
        if saved != now["convergence"]:
            raise ValueError(
                f"{where} was saved by a fit with convergence={saved}; this Trainer has "
                f"{now['convergence']}: build it with the same Convergence(...) (or None) to resume"
            )

    def state_variables(self, data) -> list:
        """Every shared variable a step updates or reads but ``data`` (the placeholders):
        variational parameters, optimizer state and random generators, in graph order."""
        data, seen, out = set(data), set(), []
        for fn, _ in self.compile():
            for var in fn.get_shared():
                if var not in data and var not in seen:
                    seen.add(var)
                    out.append(var)
        return out

    def drift_monitor(self) -> DriftMonitor | None:
        """A monitor of the iterates, for mean-field ADVI (whose parameters are mu and rho)."""
        if [p.name for p in self.inference.approx.params] != ["mu", "rho"]:
            return None
        return DriftMonitor(
            self.convergence or Convergence(), averaging=self.convergence is not None
        )

    # --------------------------------------------------------------- averaging
    def show_averages(self) -> None:
        """Put the averaged parameters into the approximation, keeping the raw iterates."""
        if self.state is None or self._raw is not None:
            return
        params = self.inference.approx.params
        self._raw = [p.get_value() for p in params]
        if self.state.t.get_value() > self.convergence.average_after:
            for p in params:
                p.set_value(self.state.averages[p].get_value())

    def use_raw(self) -> None:
        """Put the raw iterates back: they are what the next step continues from."""
        if self._raw is None:
            return
        for p, value in zip(self.inference.approx.params, self._raw):
            p.set_value(value)
        self._raw = None

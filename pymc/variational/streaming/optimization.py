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

from collections.abc import Callable

import numpy as np

from pymc.model import Model, modelcontext
from pymc.variational.inference import ADVI, ASVGD, SVGD, FullRankADVI, Inference

import pymc as pm

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
    return pm.adam(learning_rate=learning_rate)


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


class Optimization:
    """One compiled variational step over an inference object.

    Parameters
    ----------
    inference : Inference
    step_kwargs : dict
        Options of ``step_function`` (see :data:`STEP_KWARGS`); ``obj_optimizer``
        defaults to :func:`default_optimizer`.
    """

    def __init__(self, inference: Inference, step_kwargs: dict):
        unknown = set(step_kwargs) - STEP_KWARGS
        if unknown:
            raise TypeError(
                f"Trainer got unexpected keyword argument(s) {sorted(unknown)}; step options are "
                f"{sorted(STEP_KWARGS)}, and options of the inference class go in inf_kwargs="
            )
        self.inference = inference
        self.step_kwargs = dict(step_kwargs)
        self.step_kwargs.setdefault("obj_optimizer", default_optimizer())
        if isinstance(inference, ASVGD):
            self.step_kwargs.setdefault("obj_n_mc", 500)  # as ASVGD.fit does
        #: Whether the method reports a loss (ADVI does; SVGD and ASVGD do not).
        self.score = bool(inference.objective.op.returns_loss)
        self._step_fn: Callable | None = None

    def compile(self) -> Callable:
        """The compiled step, built once: its shared variables hold the optimizer state."""
        if self._step_fn is None:
            self._step_fn = self.inference.objective.step_function(
                score=self.score, **self.step_kwargs
            )
        return self._step_fn

    def state_variables(self, data) -> list:
        """Every shared variable the step updates or reads but ``data`` (the placeholders):
        variational parameters, optimizer state and random generators, in graph order."""
        data = set(data)
        return [v for v in self.compile().get_shared() if v not in data]

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
"""What an observed variable's likelihood is: the distribution behind ``total_size``
scaling, and the support of discrete ones (read from the graph), which the loader checks
the data against.
"""

from __future__ import annotations

import math

import numpy as np

from pymc.distributions.censored import CensoredRV
from pymc.distributions.distribution import DiracDeltaRV
from pymc.distributions.mixture import _BaseMixtureRV
from pymc.distributions.truncated import TruncatedRV
from pymc.variational.minibatch_rv import MinibatchRandomVariable
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import graph_inputs
from pytensor.tensor.basic import get_underlying_scalar_constant_value
from pytensor.tensor.exceptions import NotScalarConstantError
from pytensor.tensor.random.op import RandomVariable

__all__ = ["constant_value", "likelihood_of", "support_of"]

# Lowest and highest value of discrete likelihoods, by the name of their RandomVariable.
_SUPPORT = {
    "bernoulli": (0, 1),
    "poisson": (0, math.inf),
    "negative_binomial": (0, math.inf),
    "geometric": (1, math.inf),
}


def likelihood_of(rv) -> object:
    """The distribution behind an observed variable, unwrapping ``total_size`` scaling."""
    return rv.owner.inputs[0] if isinstance(rv.owner.op, MinibatchRandomVariable) else rv


def constant_value(x) -> float | None:
    """The value of ``x`` if it is one number known without data (a parameter given as a
    constant, also after the ``expand_dims`` that distributions add)."""
    try:
        return float(get_underlying_scalar_constant_value(x))
    except NotScalarConstantError:
        pass
    if all(isinstance(root, Constant) for root in graph_inputs([x])):
        value = np.asarray(x.eval())
        if value.size == 1:
            return float(value.reshape(()))
    return None


def support_of(rv) -> tuple[float, float] | None:
    """``(lowest, highest)`` value of a discrete likelihood when known from its graph."""
    return _support(likelihood_of(rv).owner)


def _support(node) -> tuple[float, float] | None:
    op = getattr(node, "op", None)
    if isinstance(op, RandomVariable):
        return _named_support(op.name, op.dist_params(node))
    if isinstance(op, DiracDeltaRV):
        c = constant_value(node.inputs[-1])
        return None if c is None else (c, c)
    if isinstance(op, _BaseMixtureRV):  # zero-inflated and hurdle likelihoods, pm.Mixture
        parts = [_support(c.owner) for c in node.inputs[2:]]
        if not parts or None in parts:
            return None
        return min(p[0] for p in parts), max(p[1] for p in parts)
    if isinstance(op, CensoredRV | TruncatedRV):
        if isinstance(op, CensoredRV):
            base = _support(node.inputs[0].owner)
        else:  # the base's parameters follow the rng and size inputs
            base = _named_support(getattr(op.base_rv_op, "name", None), node.inputs[2:-2])
        if base is None:
            return None
        lower, upper = (constant_value(x) for x in node.inputs[-2:])
        # ceil and floor: a discrete value is whole, so a bound of 2.5 admits 3, not 2.5
        lower = base[0] if lower is None else max(base[0], np.ceil(lower))
        upper = base[1] if upper is None else min(base[1], np.floor(upper))
        return float(lower), float(upper)
    return None


def _named_support(name, params) -> tuple[float, float] | None:
    if name in _SUPPORT:
        return _SUPPORT[name]
    if name in ("binomial", "beta_binomial"):
        n = constant_value(params[0])
        return (0, n if n is not None else math.inf)
    if name == "categorical":
        k = params[0].type.shape[-1]
        return (0, k - 1) if k is not None else (0, math.inf)
    if name == "discrete_uniform":
        lower, upper = (constant_value(x) for x in params[:2])
        return (-math.inf if lower is None else lower, math.inf if upper is None else upper)
    return None

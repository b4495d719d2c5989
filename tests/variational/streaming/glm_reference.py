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
"""The exact answer a streaming ADVI fit of a GLM should reach, by Newton on all rows.

For a generalized linear model with a Normal(0, prior_sd) prior on every coefficient, the
posterior at N rows is Gaussian to high accuracy once N is large. Then:

- its mode (the MAP) is the posterior mean, and the mean-field ADVI optimum's means;
- the posterior sd of coefficient j is sqrt((H^-1)_jj), with H the Hessian of the negative
  log posterior at the MAP;
- the mean-field optimum's sd of coefficient j is 1 / sqrt(H_jj) (a Gaussian's best
  factorized approximation in KL(q || p) matches the diagonal of its precision).

Errors of a fit are measured in posterior sd for the means and relatively for the sds.
Used by the tests at small N and by ``benchmarks/fidelity.py`` at millions of rows; rows
may be given in blocks, so N is limited by time, not memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["GLMReference", "glm_reference"]


@dataclass(frozen=True)
class GLMReference:
    """MAP, posterior sds and mean-field optimum sds of a GLM, and the Hessian."""

    map: np.ndarray
    posterior_sd: np.ndarray
    mean_field_sd: np.ndarray
    hessian: np.ndarray
    rows: int

    def errors(self, mean: np.ndarray, sd: np.ndarray) -> tuple[float, float]:
        """Worst ``|mean - MAP| / posterior sd`` and worst ``|sd / mean-field sd - 1|``."""
        return (
            float(np.max(np.abs(mean - self.map) / self.posterior_sd)),
            float(np.max(np.abs(sd / self.mean_field_sd - 1.0))),
        )


def _logistic(eta: np.ndarray, y: np.ndarray):
    p = 1.0 / (1.0 + np.exp(-eta))
    return y - p, p * (1.0 - p), np.sum(y * eta - np.logaddexp(0.0, eta))


def _poisson(eta: np.ndarray, y: np.ndarray):
    rate = np.exp(eta)
    return y - rate, rate, np.sum(y * eta - rate)


FAMILIES: dict[str, Callable] = {"bernoulli": _logistic, "poisson": _poisson}


def glm_reference(
    blocks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
    family: str = "bernoulli",
    prior_sd: float = 1.5,
    intercept: bool = True,
    tol: float = 1e-10,
    max_iter: int = 50,
) -> GLMReference:
    """Newton's method on every row, for ``y ~ family(link^-1(b0 + X @ b))``.

    Parameters
    ----------
    blocks : callable
        Returns an iterable of ``(X, y)`` blocks covering every row once; called once per
        Newton iteration (a function, so that rows can be streamed from disk each time).
    family : {"bernoulli", "poisson"}
        With the canonical (logit, log) link.
    prior_sd : float
        Sd of the Normal(0, prior_sd) prior on every coefficient, the intercept included.
    intercept : bool
        Whether the first coefficient is an intercept (a column of ones is prepended).
    """
    terms = FAMILIES[family]
    beta = None
    for _ in range(max_iter):
        grad = hess = None
        rows = 0
        for X, y in blocks():
            X = np.asarray(X, dtype=np.float64)
            design = np.column_stack([np.ones(len(X)), X]) if intercept else X
            if beta is None:
                beta = np.zeros(design.shape[1])
            residual, weight, _ = terms(design @ beta, np.asarray(y, dtype=np.float64))
            g, h = design.T @ residual, (design * weight[:, None]).T @ design
            grad, hess = (g, h) if grad is None else (grad + g, hess + h)
            rows += len(X)
        precision = np.eye(len(beta)) / prior_sd**2
        grad = grad - beta / prior_sd**2
        hess = hess + precision
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    else:
        raise RuntimeError(f"Newton did not converge in {max_iter} iterations")
    # The Hessian at the MAP itself, after the last step.
    hess = np.eye(len(beta)) / prior_sd**2
    for X, y in blocks():
        X = np.asarray(X, dtype=np.float64)
        design = np.column_stack([np.ones(len(X)), X]) if intercept else X
        _, weight, _ = terms(design @ beta, np.asarray(y, dtype=np.float64))
        hess = hess + (design * weight[:, None]).T @ design
    return GLMReference(
        map=beta,
        posterior_sd=np.sqrt(np.diag(np.linalg.inv(hess))),
        mean_field_sd=1.0 / np.sqrt(np.diag(hess)),
        hessian=hess,
        rows=rows,
    )

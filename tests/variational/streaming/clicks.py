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
"""Click data and the click model that several test files fit: a logistic regression
with its label in the last column of one ``pm.Data`` placeholder named ``"batch"``."""

import numpy as np

import pymc as pm


def click_rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of 3 standard-normal features and a 0/1 label drawn from a known logit."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    logit = -1.0 + X @ np.array([0.8, -0.5, 0.3])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return X, y


def click_model(loader, width: int = 4, name: str = "click") -> pm.Model:
    """Intercept + features @ b with Normal(0, 1.5) priors, the Bernoulli ``name`` on the
    placeholder's last column, scaled to ``len(loader)`` rows."""
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=width)
        batch = pm.Data("batch", np.zeros((loader.batch_size, width)))
        logit = b[0] + pm.math.dot(batch[:, : width - 1], b[1:])
        pm.Bernoulli(name, logit_p=logit, observed=batch[:, width - 1], total_size=len(loader))
    return model

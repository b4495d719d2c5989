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
"""A checkpoint is refused when it was saved from another model or on other rows: its
arrays hold the same shapes, but they would mean something else."""

import functools
import json
import re

import numpy as np
import pytest

import pymc as pm

from pymc.variational.streaming import DataLoader, Trainer, array_source
from pymc.variational.streaming.checkpoint import describe_model, describe_transform

ROWS, BATCH = 400, 50

# Fits of a few steps, only to have something to save.
pytestmark = pytest.mark.filterwarnings("ignore:the fit has not converged:UserWarning")


def scale_by_three(a):
    return a * 3.0


def scale_by_two(a):
    return a * 2.0


def scale(a, by):
    return a * by


def regression_trainer(kind="saved", transform=None):
    """``y ~ N(b[0] + b[1] x, 1)``, ``b ~ N(0, 5)`` with ``shape=2``, and variants of it
    whose parameters have the same flattened shape."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=ROWS)
    rows = np.column_stack([x, 1 + 2 * x + rng.normal(size=ROWS)])
    loader = DataLoader(
        array_source(rows, columns=["x", "y"]), batch_size=BATCH, transform=transform
    )
    with pm.Model() as model:
        batch = pm.Data("batch", np.zeros((BATCH, 2)))
        if kind == "renamed":
            mu = pm.Normal("alpha", 0, 5) + pm.Normal("beta", 0, 5) * batch[:, 0]
        elif kind == "halfnormal":
            b = pm.HalfNormal("b", 5, shape=2)
            mu = b[0] + b[1] * batch[:, 0]
        else:
            b = pm.Normal("b", 0, 5, shape=2)
            mu = b[0] + b[1] * batch[:, 0]
        if kind == "studentt":
            pm.StudentT("obs", nu=3, mu=mu, sigma=1, observed=batch[:, 1], total_size=ROWS)
        else:
            pm.Normal("obs", mu, 1, observed=batch[:, 1], total_size=ROWS)
    return Trainer(
        dataloader=loader, model=model, random_seed=1, progressbar=False, convergence=None
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint of the plain model, after 5 steps, and its means."""
    path = tmp_path_factory.mktemp("ckpt") / "fit.npz"
    trainer = regression_trainer()
    trainer.fit(5)
    trainer.save_checkpoint(path)
    return path, trainer.approx.mean.eval()


@pytest.mark.parametrize(
    "kind, message",
    [
        (
            "renamed",
            "it has free variable 'b' ~ Normal of shape (2,) where this model has "
            "'alpha' ~ Normal of shape ()",
        ),
        (
            # The saved means would be read in log space: b = exp(mean).
            "halfnormal",
            "it has free variable 'b' ~ Normal of shape (2,) where this model has "
            "'b' ~ HalfNormal of shape (2,) sampled as 'b_log__'",
        ),
        (
            "studentt",
            "it has observed variable 'obs' ~ Normal where this model has 'obs' ~ StudentT",
        ),
    ],
)
def test_a_checkpoint_of_another_model_is_refused(saved, kind, message):
    path, _ = saved
    trainer = regression_trainer(kind)
    before = [p.get_value() for p in trainer.approx.params]
    with pytest.raises(ValueError, match="was saved from another model: " + re.escape(message)):
        trainer.load_checkpoint(path)
    # Refused before anything was changed.
    for param, value in zip(trainer.approx.params, before):
        np.testing.assert_array_equal(param.get_value(), value)
    assert trainer.state.step == 0


def test_the_same_model_built_again_resumes(saved):
    path, mean = saved
    trainer = regression_trainer()
    trainer.load_checkpoint(path)
    np.testing.assert_array_equal(trainer.approx.mean.eval(), mean)
    assert trainer.state.step == 5


@pytest.mark.parametrize(
    "transform, message",
    [
        (scale_by_three, "after no transform, but this DataLoader has transform=scale_by_three:"),
        (lambda a: a, "after no transform, but this DataLoader has transform=<lambda>:"),
    ],
)
def test_a_checkpoint_saved_without_the_loaders_transform_is_refused(saved, transform, message):
    path, _ = saved
    with pytest.raises(ValueError, match=re.escape(message) + " the rows the fit learned"):
        regression_trainer(transform=transform).fit(5, ckpt_path=path)


def test_a_checkpoint_saved_with_another_transform_is_refused(tmp_path):
    trainer = regression_trainer(transform=functools.partial(scale, by=3.0))
    trainer.fit(5)
    trainer.save_checkpoint(tmp_path / "fit.npz")
    for other, message in [
        (None, "after transform=partial, but this DataLoader has no transform:"),
        (functools.partial(scale, by=2.0), "has transform=partial with other code or constants:"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            regression_trainer(transform=other).load_checkpoint(tmp_path / "fit.npz")
    # The same transform, built again, resumes.
    again = regression_trainer(transform=functools.partial(scale, by=3.0))
    again.load_checkpoint(tmp_path / "fit.npz")
    assert again.state.step == 5


def test_a_transform_is_described_by_what_it_computes():
    def code(transform):
        return describe_transform(transform)["code"]

    assert describe_transform(None) is None
    assert describe_transform(scale_by_three)["name"] == "scale_by_three"
    # Another constant, another function, another closure value: another digest.
    assert code(scale_by_three) != code(scale_by_two)
    assert code(np.log) != code(np.exp)
    assert code(lambda a: np.log(a)) != code(lambda a: np.exp(a))
    factor = [3.0, 2.0]
    assert code(lambda a: a * factor[0]) == code(lambda a: a * factor[0])
    defaults = [(lambda a, k=k: a * k) for k in factor]
    assert code(defaults[0]) != code(defaults[1])
    closures = [functools.partial(lambda k: lambda a: a * k, k)() for k in factor]
    assert code(closures[0]) != code(closures[1])
    # The same code under another name computes the same rows.
    renamed = lambda a: a * 3.0  # noqa: E731
    assert code(renamed) == code(scale_by_three)


def test_describe_model_records_transforms_and_likelihoods():
    trainer = regression_trainer("halfnormal")
    assert describe_model(trainer.model) == {
        "free": [{"name": "b", "dist": "HalfNormal", "shape": [2], "value": "b_log__"}],
        "observed": [{"name": "obs", "dist": "Normal"}],
    }


def test_a_checkpoint_without_a_model_record_loads_with_a_warning(saved, tmp_path):
    # Written before the model was recorded: shapes are checked, the rest cannot be.
    path, mean = saved
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["model"], meta["transform"]
    arrays["meta"] = np.array(json.dumps(meta))
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    trainer = regression_trainer()
    with pytest.warns(UserWarning, match="does not record its model.*only the shapes"):
        trainer.load_checkpoint(old)
    np.testing.assert_array_equal(trainer.approx.mean.eval(), mean)

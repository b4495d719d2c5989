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
"""The loss only when wanted: log_every_n_steps=k computes it on every k-th step only."""

import warnings

import numpy as np
import pytest

import pymc as pm

from pymc.variational.streaming import DataLoader, EarlyStopping, Trainer, array_source


def trainer_for(n=6000, batch=200, **kwargs):
    y = np.random.default_rng(42).normal(1.7, 1.0, size=n)
    loader = DataLoader(array_source(y), batch_size=batch, sample_shape=(), seed=3)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        data = pm.Data("batch", np.zeros(batch))
        pm.Normal("y", mu, 1.0, observed=data, total_size=len(loader))
    return Trainer(dataloader=loader, model=model, random_seed=5, progressbar=False, **kwargs)


def quiet_fit(trainer, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # short fits: "not converged"
        return trainer.fit(n)


@pytest.mark.parametrize("convergence", [True, False], ids=["default", "plain"])
def test_skipping_the_loss_changes_nothing_but_the_record(convergence):
    # The steps without the loss output run the same updates on the same state: the
    # parameters are bit-identical, and the recorded losses are those of every 10th step.
    options = {} if convergence else {"convergence": None}
    every = trainer_for(**options)
    tenth = trainer_for(log_every_n_steps=10, **options)
    quiet_fit(every, 357)
    quiet_fit(tenth, 357)
    for a, b in zip(every.approx.params, tenth.approx.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())
    np.testing.assert_array_equal(tenth.approx.hist, every.approx.hist[9::10])
    assert len(tenth.losses) == 357 and np.isnan(tenth.losses).sum() == 357 - 35
    # Continuing keeps the global cycle: steps 360, 370, ... are the logged ones.
    quiet_fit(tenth, 23)
    quiet_fit(every, 23)
    np.testing.assert_array_equal(tenth.approx.hist, every.approx.hist[9::10])


def test_non_finite_parameters_are_caught_without_the_loss():
    trainer = trainer_for(
        log_every_n_steps=1000, convergence=None, obj_optimizer=pm.sgd(learning_rate=1e6)
    )
    with pytest.raises(
        FloatingPointError, match=r"appeared in the state by step \d+ .*rolled back to its finite"
    ):
        trainer.fit(500)
    assert all(np.isfinite(p.get_value()).all() for p in trainer.approx.params)


def test_early_stopping_on_the_loss_uses_the_computed_ones():
    # 30 batches per epoch and the loss every 7th step: the value compared at the end of
    # the first epoch is the mean of the 4 losses computed in it.
    stopper = EarlyStopping(monitor="loss", tolerance=10.0, patience=2)
    trainer = trainer_for(log_every_n_steps=7, early_stopping=stopper, convergence=None)
    approx = quiet_fit(trainer, 10_000)
    assert trainer.state.step == 90
    np.testing.assert_allclose(stopper.best, np.mean(approx.hist[:4]))


def test_early_stopping_on_the_loss_needs_a_loss_in_every_epoch():
    with pytest.raises(
        ValueError, match=r"losses of each epoch \(30 steps\), but log_every_n_steps=31"
    ):
        trainer_for(log_every_n_steps=31, early_stopping=EarlyStopping("loss"))

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
import numpy as np
import pytest

import pymc as pm

from pymc.variational.streaming import DataLoader, EarlyStopping, Trainer, array_source


def normal_setup(n_train=2000, n_val=500, batch_size=200):
    rng = np.random.default_rng(42)
    y = rng.normal(1.7, 1.0, size=n_train + n_val)
    train = DataLoader(array_source(y[:n_train]), batch_size=batch_size, sample_shape=(), seed=0)
    val = DataLoader(
        array_source(y[n_train:]), batch_size=batch_size, sample_shape=(), shuffle=False
    )
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        data = pm.Data("batch", np.zeros(batch_size))
        pm.Normal("y", mu, 1.0, observed=data, total_size=len(train))
    return y[:n_train], y[n_train:], train, val, model


def test_held_out_lpd_matches_the_posterior_predictive():
    y_train, y_val, train, val, model = normal_setup()
    trainer = Trainer(
        dataloader=train,
        model=model,
        random_seed=1,
        progressbar=False,
        obj_optimizer=pm.adam(learning_rate=0.03),
        val_dataloader=val,
        val_check_interval=2000,
        val_draws=2000,
    )
    trainer.fit(6000)
    # Conjugate model: the posterior predictive is N(m, 1 + v).
    precision = 1 / 100 + len(y_train)
    m, v = y_train.sum() / precision, 1 / precision
    expected = np.mean(-0.5 * (y_val - m) ** 2 / (1 + v) - 0.5 * np.log(2 * np.pi * (1 + v)))
    steps = [s for s, _ in trainer.val_history]
    assert steps == [2000, 4000, 6000]
    np.testing.assert_allclose(trainer.val_history[-1][1], expected, atol=0.01)
    # The first check, at step 2000, is still worse than the converged one.
    assert trainer.val_history[0][1] < trainer.val_history[-1][1] + 0.005


def test_validation_leaves_the_training_batch_in_place():
    _, _, train, val, model = normal_setup()
    seen = []
    trainer = Trainer(
        dataloader=train, model=model, progressbar=False, val_dataloader=val, val_check_interval=10
    )
    trainer.fit(
        10, callbacks=[lambda approx, losses, i: seen.append(model["batch"].get_value().copy())]
    )
    reference = list(train.iter_epoch(0))[9]
    np.testing.assert_array_equal(seen[-1], reference)


def test_early_stopping_on_the_held_out_score():
    _, _, train, val, model = normal_setup()
    # A tolerance no check can beat: the first check sets the best, two more end the fit.
    stopper = EarlyStopping(monitor="val_lpd", tolerance=10.0, patience=2)
    trainer = Trainer(
        dataloader=train,
        model=model,
        progressbar=False,
        val_dataloader=val,
        val_check_interval=50,
        early_stopping=stopper,
    )
    approx = trainer.fit(10_000)
    assert trainer.state.step == 150
    assert len(approx.hist) == 150
    assert [s for s, _ in trainer.val_history] == [50, 100, 150]


def test_early_stopping_on_the_epoch_loss():
    _, _, train, _, model = normal_setup()
    stopper = EarlyStopping(monitor="loss", tolerance=10.0, patience=3)
    trainer = Trainer(dataloader=train, model=model, progressbar=False, early_stopping=stopper)
    trainer.fit(10_000)
    # 10 batches per epoch: checks after epochs 1 to 4, the last three without improvement.
    assert trainer.state.step == 40


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"early_stopping": EarlyStopping("val_lpd")}, ValueError, "needs a val_dataloader"),
        (
            {"val_check_interval": 0},
            ValueError,
            "val_check_interval must be a positive number of steps",
        ),
        ({"early_stopping": "yes"}, TypeError, "early_stopping must be an EarlyStopping"),
    ],
)
def test_bad_validation_arguments(kwargs, error, match):
    _, _, train, _, model = normal_setup()
    with pytest.raises(error, match=match):
        Trainer(dataloader=train, model=model, **kwargs)


def test_val_loader_must_match_the_batches():
    _, _, train, _, model = normal_setup()
    wide = DataLoader(array_source(np.zeros((10, 2))), batch_size=5)
    with pytest.raises(
        ValueError, match="val_dataloader must yield batches shaped like the training loader's"
    ):
        Trainer(dataloader=train, model=model, val_dataloader=wide)
    with pytest.raises(ValueError, match='monitor must be "val_lpd" or "loss"'):
        EarlyStopping("accuracy")

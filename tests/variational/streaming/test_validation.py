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
import re
import warnings

import numpy as np
import pytest

import pymc as pm

from pymc.variational.streaming import (
    Convergence,
    DataLoader,
    EarlyStopping,
    HeldOutScore,
    Trainer,
    array_source,
)


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


def normal_logpdf(y, mean, var):
    return -0.5 * np.log(2 * np.pi * var) - 0.5 * (y - mean) ** 2 / var


def test_held_out_score_is_the_log_of_the_mean_predictive_density():
    # q(mu) = N(m, s^2) set by hand, wide enough that the three candidate formulas differ:
    # the lpd, log E_q[p(y | mu)] = log N(y | m, 1 + s^2); the plug-in log N(y | m, 1); and
    # the mean log density E_q[log p(y | mu)] = log N(y | m, 1) - s^2 / 2.
    _, y_val, train, val, model = normal_setup()
    trainer = Trainer(dataloader=train, model=model, progressbar=False, random_seed=3)
    m, s, draws = 1.5, 1.5, 20_000
    mu, rho = trainer.approx.params
    mu.set_value(np.array([m]))
    rho.set_value(np.array([np.log(np.expm1(s))]))
    score = HeldOutScore(trainer.approx, trainer.feed, val, draws=draws)()
    lpd = normal_logpdf(y_val, m, 1 + s**2).mean()
    # Monte Carlo error of log(mean of S weights w = p(y | mu)), by the delta method:
    # sd(w) / (sqrt(S) E[w]), with E[w^2] = N(y | m, 1/2 + s^2) / (2 sqrt(pi)).
    ew = np.exp(normal_logpdf(y_val, m, 1 + s**2))
    ew2 = np.exp(normal_logpdf(y_val, m, 0.5 + s**2)) / (2 * np.sqrt(np.pi))
    mc_sd = np.mean(np.sqrt(ew2 - ew**2) / ew) / np.sqrt(draws)
    assert abs(score - lpd) < 4 * mc_sd
    plug_in = normal_logpdf(y_val, m, 1.0).mean()
    assert abs(plug_in - lpd) > 20 * mc_sd
    assert abs((plug_in - s**2 / 2) - lpd) > 20 * mc_sd


def test_held_out_checks_run_on_schedule():
    _, _, train, val, model = normal_setup()
    trainer = Trainer(
        dataloader=train,
        model=model,
        random_seed=1,
        progressbar=False,
        val_dataloader=val,
        val_check_interval=700,
        val_draws=50,
    )
    trainer.fit(1000)
    trainer.fit(1200)
    assert [s for s, _ in trainer.val_history] == [700, 1400, 2100]
    assert len({v for _, v in trainer.val_history}) == 3


def test_held_out_scores_follow_the_seed_through_continuations_and_checkpoints(tmp_path):
    # Few draws make the score's Monte Carlo noise visible: only seeded draws agree.
    def trainer():
        _, _, train, val, model = normal_setup()
        return Trainer(
            dataloader=train,
            model=model,
            random_seed=1,
            progressbar=False,
            val_dataloader=val,
            val_check_interval=30,
            val_draws=3,
        )

    whole = trainer()
    whole.fit(150)
    again = trainer()
    again.fit(150)
    assert again.val_history == whole.val_history
    split = trainer()
    split.fit(40)
    split.save_checkpoint(tmp_path / "fit.npz")
    split.fit(110)
    assert split.val_history == whole.val_history
    resumed = trainer()
    resumed.fit(110, ckpt_path=tmp_path / "fit.npz")
    assert resumed.val_history == whole.val_history
    # The draws differ from check to check (a seed per step), so do the scores.
    assert len({v for _, v in whole.val_history}) == 5


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
        convergence=None,  # pymc's plain step: checks count from the first
    )
    approx = trainer.fit(10_000)
    assert trainer.state.step == 150
    assert len(approx.hist) == 150
    assert [s for s, _ in trainer.val_history] == [50, 100, 150]
    # The value it kept is the first check's score, and it saw two checks after it.
    assert stopper.best == trainer.val_history[0][1] and stopper.bad_checks == 2


def test_early_stopping_on_the_epoch_loss():
    _, _, train, _, model = normal_setup()
    stopper = EarlyStopping(monitor="loss", tolerance=10.0, patience=3)
    trainer = Trainer(
        dataloader=train, model=model, progressbar=False, early_stopping=stopper, convergence=None
    )
    approx = trainer.fit(10_000)
    # 10 batches per epoch: checks after epochs 1 to 4, the last three without improvement.
    assert trainer.state.step == 40
    # What was compared is the mean loss of each epoch; the first one is the best kept.
    assert stopper.best == np.mean(approx.hist[:10])


def test_early_stopping_waits_for_the_averaging_of_a_convergence_fit():
    # Before averaging starts the scales are still growing from initial_sd, and a flat
    # loss says nothing of them: checks count only after average_after (here 300).
    _, _, train, _, model = normal_setup()
    stopper = EarlyStopping(monitor="loss", tolerance=10.0, patience=2)
    trainer = Trainer(
        dataloader=train,
        model=model,
        progressbar=False,
        early_stopping=stopper,
        convergence=Convergence(decay_after=100, average_after=300),
    )
    approx = trainer.fit(10_000)
    # 10 batches per epoch: the epoch ending at 310 sets the best, 320 and 330 end the fit.
    assert trainer.state.step == 330
    assert stopper.best == np.mean(approx.hist[300:310])


def feed(stopper, values):
    """Update ``stopper`` with ``values`` at steps 1, 2, ...; the step it stopped at, or None."""
    for step, value in enumerate(values, start=1):
        try:
            stopper.update(value, step)
        except StopIteration:
            return step
    return None


@pytest.mark.parametrize(
    "monitor, sign", [("val_lpd", 1.0), ("loss", -1.0)], ids=["higher-is-better", "lower-is-better"]
)
def test_early_stopping_counts_checks_without_improvement(monitor, sign):
    # Scores as the monitor sees them: improvements reset the count, patience 3 stops.
    values = [sign * v for v in (1.0, 2.0, 1.5, 2.0, 3.0, 2.9, 3.0, 2.5)]
    stopper = EarlyStopping(monitor, tolerance=1e-3, patience=3)
    assert feed(stopper, values) == 8
    assert stopper.best == sign * 3.0
    # The other direction: every value after the first is worse, so it stops at check 4.
    flipped = EarlyStopping(monitor, tolerance=1e-3, patience=3)
    assert feed(flipped, [-v for v in values]) == 4
    assert flipped.best == -sign * 1.0


def test_early_stopping_tolerance_is_relative():
    # Best 100: an improvement must exceed 1e-3 * 100 = 0.1 to count.
    stopper = EarlyStopping("val_lpd", tolerance=1e-3, patience=2)
    assert feed(stopper, [100.0, 100.09]) is None
    assert stopper.best == 100.0 and stopper.bad_checks == 1
    stopper.update(100.11, 3)
    assert stopper.best == 100.11 and stopper.bad_checks == 0
    loss = EarlyStopping("loss", tolerance=1e-3, patience=2)
    assert feed(loss, [100.0, 99.95, 99.85]) is None
    assert loss.best == 99.85 and loss.bad_checks == 0


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
    message = (
        "the columns ['x0', 'x1'] of val_dataloader (sample_shape=(2,)) differ from the "
        "Trainer's ['x0'] (sample_shape=()); unless both are rows of one dimension they must "
        "be the same"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Trainer(dataloader=train, model=model, val_dataloader=wide)
    with pytest.raises(ValueError, match='monitor must be "val_lpd" or "loss"'):
        EarlyStopping("accuracy")


def regression_setup(transform=None, fields=None):
    """A linear regression on columns ``x``, ``y`` (or fields ``X``, ``y``), fitted briefly."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1200, 2))
    y = 0.5 + x @ np.array([1.5, -0.8]) + rng.normal(0.0, 0.5, size=1200)
    rows = np.column_stack([x, y])
    columns = ["x1", "x2", "y"]
    train = DataLoader(
        array_source(rows[:800], columns=columns),
        batch_size=200,
        seed=0,
        transform=transform,
        fields=fields,
    )
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 2.0, shape=3)
        if fields is None:
            batch = pm.Data("batch", np.zeros((200, 3)))
            X, Y = batch[:, :2], batch[:, 2]
        else:
            X, Y = pm.Data("X", np.zeros((200, 2))), pm.Data("y", np.zeros(200))
        pm.Normal("y_obs", b[0] + pm.math.dot(X, b[1:]), 0.5, observed=Y, total_size=len(train))
    trainer = Trainer(
        dataloader=train,
        data_name=None if fields else "batch",
        model=model,
        random_seed=1,
        progressbar=False,
        convergence=None,
        obj_optimizer=pm.adam(learning_rate=0.05),
    )
    trainer.fit(300)
    return trainer, rows[800:]


def held_out(rows, order, **kwargs):
    """Held-out ``rows`` (columns x1, x2, y) stored with their columns in ``order``."""
    index = [["x1", "x2", "y"].index(c) for c in order]
    return DataLoader(
        array_source(rows[:, index], columns=order), batch_size=100, shuffle=False, **kwargs
    )


def test_held_out_columns_are_matched_by_name():
    trainer, rows = regression_setup()
    mean = trainer.approx.mean.eval()
    resid = rows[:, 2] - mean[0] - rows[:, :2] @ mean[1:]
    plug_in = normal_logpdf(resid, 0.0, 0.25).mean()

    def score(order):
        val = held_out(rows, order)
        return HeldOutScore(trainer.approx, trainer.feed, val, draws=50)(seed=(1, 2))

    same = score(["x1", "x2", "y"])
    # Near the plug-in score of the fitted means: the held-out rows are scored as rows.
    assert abs(same - plug_in) < 0.1
    np.testing.assert_allclose(score(["y", "x1", "x2"]), same, rtol=1e-12)
    np.testing.assert_allclose(score(["x2", "x1", "y"]), same, rtol=1e-12)
    renamed = DataLoader(array_source(rows, columns=["x1", "income", "y"]), batch_size=100)
    message = (
        "val_dataloader has no column 'x2', which the held-out score reads; it has "
        "['x1', 'income', 'y']"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        HeldOutScore(trainer.approx, trainer.feed, renamed)


def test_held_out_field_columns_are_matched_by_name():
    fields = {"X": ["x1", "x2"], "y": "y"}
    trainer, rows = regression_setup(fields=fields)

    def score(order, fields):
        val = held_out(rows, order, fields=fields)
        return HeldOutScore(trainer.approx, trainer.feed, val, draws=50)(seed=(1, 2))

    same = score(["x1", "x2", "y"], fields)
    # Stored in another order, and listed in that order: by position, x1 and x2 would swap.
    stored = score(["x2", "x1", "y"], {"X": ["x2", "x1"], "y": "y"})
    np.testing.assert_allclose(stored, same, rtol=1e-12)
    np.testing.assert_allclose(score(["x1", "x2", "y"], {"X": ["x2", "x1"], "y": "y"}), same)
    val = held_out(rows, ["x1", "x2", "y"], fields={"X": ["x1", "y"], "y": "x2"})
    message = (
        "field 'X' has columns ['x1', 'y'] in val_dataloader and ['x1', 'x2'] in the "
        "Trainer's (it lacks ['x2']): a field needs the same columns, in any order"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        HeldOutScore(trainer.approx, trainer.feed, val)


def test_held_out_rows_without_the_training_transform_warn():
    def shift(rows):
        return rows + np.array([1.0, 0.0, 0.0])

    trainer, rows = regression_setup(transform=shift)
    message = (
        "the Trainer's DataLoader transforms its rows (transform=...) and val_dataloader does "
        "not, so the model sees rows unlike those it was fitted on: pass the same transform "
        "to val_dataloader"
    )
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$") as record:
        HeldOutScore(trainer.approx, trainer.feed, held_out(rows, ["x1", "x2", "y"]))
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        HeldOutScore(
            trainer.approx, trainer.feed, held_out(rows, ["x1", "x2", "y"], transform=shift)
        )


def test_the_held_out_score_reads_every_row_whatever_drop_last_says():
    # A val_dataloader built like the training one (shuffle, drop_last) scored a random
    # subset of the rows: 1,000 of 1,999 in a user's run.
    trainer, rows = regression_setup()
    rows = rows[:350]  # of the 400 held out: batches of 100 and a short one

    def score(rows, **options):
        val = DataLoader(array_source(rows, columns=["x1", "x2", "y"]), batch_size=100, **options)
        return HeldOutScore(trainer.approx, trainer.feed, val, draws=50)(seed=(1, 2))

    every = score(rows, shuffle=False)
    np.testing.assert_allclose(score(rows, shuffle=True, drop_last=True, seed=4), every, rtol=1e-9)
    assert abs(score(rows[:300], shuffle=False) - every) > 1e-4  # the rows drop_last leaves

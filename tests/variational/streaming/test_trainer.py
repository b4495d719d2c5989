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
import multiprocessing
import re
import time
import warnings

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pymc as pm

from pymc.variational.streaming import (
    Convergence,
    DataLoader,
    Trainer,
    array_source,
    parquet_source,
)


def normal_model(loader, total_size="loader", name="batch"):
    """y ~ N(mu, 1), mu ~ N(0, 10): conjugate, so the posterior is known exactly."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        y = pm.Data(name, np.zeros(loader.batch_size))
        size = len(loader) if total_size == "loader" else total_size
        pm.Normal("y", mu, 1.0, observed=y, total_size=size)
    return model


def normal_loader(n=20_000, batch_size=500, seed=0):
    y = np.random.default_rng(42).normal(1.7, 1.0, size=n)
    return y, DataLoader(
        array_source(y, columns=["y"]), batch_size=batch_size, sample_shape=(), seed=seed
    )


def test_conjugate_normal_matches_the_analytic_posterior():
    # A posterior sd of 0.022 is far below the starting sd of 0.69; Adam at 0.03 gets there
    # in a few thousand steps (the default 0.01 takes about 8000).
    y, loader = normal_loader(2000, batch_size=200)
    model = normal_model(loader)
    trainer = Trainer(
        dataloader=loader,
        model=model,
        random_seed=1,
        progressbar=False,
        obj_optimizer=pm.adam(learning_rate=0.03),
    )
    approx = trainer.fit(6000)
    precision = 1 / 10.0**2 + len(y)
    post_mean, post_sd = y.sum() / precision, precision**-0.5
    draws = approx.sample(4000, random_seed=2).posterior["mu"].values.ravel()
    np.testing.assert_allclose(draws.mean(), post_mean, atol=2 * post_sd)
    np.testing.assert_allclose(draws.std(), post_sd, rtol=0.3)
    assert len(approx.hist) == 6000


def logistic_data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    beta = np.array([-2.0, 0.8, -0.5, 0.3, 0.0, 1.1])
    y = rng.random(n) < 1 / (1 + np.exp(-(beta[0] + X @ beta[1:])))
    return X, y.astype(float), beta


def logistic_model(loader, batch_size):
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=6)
        batch = pm.Data("batch", np.zeros((batch_size, 6)))
        logit = b[0] + pm.math.dot(batch[:, :5], b[1:])
        pm.Bernoulli("click", logit_p=logit, observed=batch[:, 5], total_size=len(loader))
    return model


def test_logistic_regression_matches_minibatch_and_sklearn(tmp_path):
    from sklearn.linear_model import LogisticRegression

    n = 200_000
    X, y, beta = logistic_data(n)
    table = pa.table({**{f"x{j}": X[:, j] for j in range(5)}, "label": y})
    for k in range(4):
        pq.write_table(
            table.slice(k * n // 4, n // 4), tmp_path / f"part-{k}.parquet", row_group_size=20_000
        )
    loader = DataLoader(parquet_source(tmp_path), batch_size=4096, sample_shape=(6,), seed=0)
    assert len(loader) == n
    with logistic_model(loader, 4096):
        streamed = Trainer(method="advi", dataloader=loader, random_seed=1, progressbar=False).fit(
            3000
        )
    stream_mean = streamed.mean.eval()

    with pm.Model():
        X_mb, y_mb = pm.Minibatch(X, y, batch_size=4096)
        b = pm.Normal("b", 0.0, 1.5, shape=6)
        pm.Bernoulli("click", logit_p=b[0] + pm.math.dot(X_mb, b[1:]), observed=y_mb, total_size=n)
        in_ram = pm.fit(
            3000,
            method="advi",
            obj_optimizer=pm.adam(learning_rate=0.01),
            random_seed=1,
            progressbar=False,
        )
    ram_mean = in_ram.mean.eval()

    sk = LogisticRegression(C=1e6, max_iter=1000).fit(X, y)
    sk_coef = np.r_[sk.intercept_, sk.coef_[0]]

    assert np.corrcoef(stream_mean, sk_coef)[0, 1] > 0.999
    assert np.abs(stream_mean - sk_coef).max() < 0.05
    assert np.corrcoef(stream_mean, ram_mean)[0, 1] > 0.999
    assert np.abs(stream_mean - beta).max() < 0.1


def recording_callback(record):
    def callback(approx, losses, i):
        record.append(approx_batch(approx).copy())

    return callback


def approx_batch(approx):
    return approx.model["batch"].get_value()


def test_ragged_last_batch_is_fed_and_scaled():
    n, B = 1037, 100
    y, _ = normal_loader(n)
    loader = DataLoader(array_source(y), batch_size=B, sample_shape=(), shuffle=False)
    model = normal_model(loader)
    data_logp = model.compile_logp(vars=[model["y"]], sum=True)
    seen, logps = [], []

    def record(approx, losses, i):
        # After step i the placeholder still holds the batch that step used.
        seen.append(approx_batch(approx).copy())
        logps.append(data_logp({"mu": 0.5}))

    Trainer(dataloader=loader, model=model, progressbar=False).fit(12, callbacks=[record])
    assert [len(b) for b in seen] == [100] * 10 + [37, 100]
    np.testing.assert_array_equal(np.concatenate(seen[:11]), y)
    # Each batch, the short one included, is scaled to n rows: n times its mean row logp.
    for batch, logp in zip(seen, logps):
        rows = -0.5 * (batch - 0.5) ** 2 - 0.5 * np.log(2 * np.pi)
        np.testing.assert_allclose(logp, n * rows.mean())


def test_placeholder_holds_data_before_the_first_step():
    # Step 0 of a fit must see the first batch, not what the placeholder held before: its
    # loss equals that of a step taken by hand on the first batch, from the same state.
    y = np.random.default_rng(42).normal(1.7, 1.0, size=1000)

    def fresh():
        loader = DataLoader(array_source(y), batch_size=100, sample_shape=(), shuffle=False)
        return Trainer(
            dataloader=loader, model=normal_model(loader), random_seed=4, progressbar=False
        )

    fitted = fresh().fit(1).hist[0]
    by_hand = fresh().step(y[:100])
    on_zeros = fresh().step(np.zeros(100))
    assert fitted == by_hand
    assert abs(on_zeros - by_hand) > 1.0  # the loss does tell the batches apart


def test_fit_twice_continues_exactly():
    def run(splits):
        _, loader = normal_loader(5000, batch_size=128, seed=3)
        trainer = Trainer(
            dataloader=loader, model=normal_model(loader), random_seed=5, progressbar=False
        )
        for n in splits:
            approx = trainer.fit(n)
        return approx, trainer

    whole, whole_trainer = run([600])
    parts, parts_trainer = run([300, 300])
    for a, b in zip(whole.params, parts.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())
    np.testing.assert_array_equal(whole.hist, parts.hist)
    assert len(parts.hist) == 600
    assert parts_trainer.state == whole_trainer.state
    assert parts_trainer.state.step == 600


def test_interrupt_keeps_what_was_learned_and_continues():
    def interrupt_at(k):
        def callback(approx, losses, i):
            if i == k:
                raise KeyboardInterrupt

        return callback

    _, loader = normal_loader(5000, batch_size=128, seed=3)
    trainer = Trainer(
        dataloader=loader, model=normal_model(loader), random_seed=5, progressbar=False
    )
    approx = trainer.fit(600, callbacks=[interrupt_at(250)])
    assert len(approx.hist) == 250 and trainer.state.step == 250
    assert np.isfinite(approx.hist).all()
    approx = trainer.fit(350)

    _, loader = normal_loader(5000, batch_size=128, seed=3)
    reference = Trainer(
        dataloader=loader, model=normal_model(loader), random_seed=5, progressbar=False
    ).fit(600)
    np.testing.assert_array_equal(approx.hist, reference.hist)
    for a, b in zip(approx.params, reference.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())


def test_stop_iteration_from_a_callback_ends_the_fit():
    def stop(approx, losses, i):
        if i == 40:
            raise StopIteration("enough")

    _, loader = normal_loader(2000, batch_size=100)
    approx = Trainer(dataloader=loader, model=normal_model(loader), progressbar=False).fit(
        100, callbacks=[stop]
    )
    assert len(approx.hist) == 40


ROLLED_BACK = (
    r"appeared in the (loss|state) by step (\d+) .*rolled back to its finite state after step (\d+)"
)


def assert_same_fit(a, b):
    """Two Trainers stand at the same step and position with the same parameters and record."""
    assert a.state == b.state
    np.testing.assert_array_equal(a.approx.hist, b.approx.hist)
    for x, y in zip(a.approx.params, b.approx.params):
        np.testing.assert_array_equal(x.get_value(), y.get_value())


def test_nan_rolls_the_whole_fit_back_to_its_last_finite_state():
    _, loader = normal_loader(2000, batch_size=100)

    def trainer():
        return Trainer(
            dataloader=loader,
            model=normal_model(loader),
            random_seed=3,
            progressbar=False,
            obj_optimizer=pm.sgd(learning_rate=1e6),
        )

    failing = trainer()
    with pytest.raises(FloatingPointError, match=ROLLED_BACK) as info:
        failing.fit(500)
    _, failed, at = re.search(ROLLED_BACK, str(info.value)).groups()
    assert int(at) < int(failed)
    # Rolled back means: exactly where a fit of `at` steps stands.
    reference = trainer()
    reference.fit(int(at))
    assert_same_fit(failing, reference)


def test_an_infinite_adam_moment_is_caught_and_rolled_back():
    # One row of 1e300 makes Adam's second moment infinite: its parameter then stops moving
    # (m / sqrt(inf) = 0) while every loss stays finite. The guard checks the whole state.
    rng = np.random.default_rng(0)
    x = rng.normal(size=3000)
    y = (rng.random(3000) < 0.5).astype(float)
    x[1234], y[1234] = 1e300, 1.0  # in batch 12 of 100 rows, read in storage order
    loader = DataLoader(
        array_source(np.column_stack([x, y])), batch_size=100, shuffle=False, seed=0
    )

    def trainer():
        with pm.Model() as model:
            b = pm.Normal("b", 0.0, 1.0, shape=2)
            batch = pm.Data("batch", np.zeros((100, 2)))
            pm.Bernoulli(
                "y", logit_p=b[0] + b[1] * batch[:, 0], observed=batch[:, 1], total_size=3000
            )
        return Trainer(dataloader=loader, model=model, random_seed=1, progressbar=False)

    failing = trainer()
    with pytest.raises(FloatingPointError, match=ROLLED_BACK) as info:
        failing.fit(300)
    what, failed, at = re.search(ROLLED_BACK, str(info.value)).groups()
    assert (what, failed, at) == ("state", "100", "1")  # found at the first check after it
    reference = trainer()
    reference.fit(1)
    assert_same_fit(failing, reference)


@pytest.mark.parametrize(
    "method, kwargs",
    [
        ("advi", {}),
        ("fullrank_advi", {}),
        ("svgd", {"inf_kwargs": {"n_particles": 10}}),
        ("asvgd", {"obj_n_mc": 20}),
    ],
)
def test_every_method_learns_the_mean(method, kwargs):
    y, loader = normal_loader(5000, batch_size=250)
    precision = 1 / 10.0**2 + len(y)
    post_mean, post_sd = y.sum() / precision, precision**-0.5
    # A Trainer that kept feeding its first batch would land at that batch's mean, more
    # than 5 posterior sd away: the tolerance below tells the two apart.
    first = next(iter(loader.iter_epoch(0)))
    assert abs(first.mean() - post_mean) > 5 * post_sd
    model = normal_model(loader)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ASVGD warns that it is experimental
        trainer = Trainer(
            method=method,
            dataloader=loader,
            model=model,
            random_seed=3,
            progressbar=False,
            **kwargs,
        )
        approx = trainer.fit(800)
    mean = approx.sample(2000, random_seed=1).posterior["mu"].values.mean()
    # pymc's ASVGD is not reproducible even with random_seed (pm.fit(method="asvgd",
    # random_seed=3) twice differs, measured on pymc 5.28.5) and its means spread over
    # about 7 posterior sd from run to run: for it the bound only shows that it learned.
    # SVGD is reproducible: the Trainer seeds the particles' jitter (see make_inference).
    tolerance = 25 if method == "asvgd" else 3.5
    assert abs(mean - post_mean) < tolerance * post_sd, (method, (mean - post_mean) / post_sd)
    assert len(approx.hist) == (800 if method in ("advi", "fullrank_advi") else 0)


def test_non_whole_labels_into_a_discrete_likelihood_are_refused():
    X, y, _ = logistic_data(1000)
    data = np.column_stack([X, y + 0.25])
    loader = DataLoader(array_source(data), batch_size=100, sample_shape=(6,))
    model = logistic_model(loader, 100)
    # The column is traced through batch[:, 5]: the loader checks every block, naming it.
    with pytest.raises(
        ValueError,
        match=r"array rows 0:1000: column 'x5' holds non-whole numbers \(0.25 .*observed variable 'click'",
    ):
        Trainer(dataloader=loader, model=model, progressbar=False).fit(5)


def test_untraceable_discrete_feeds_are_checked_every_batch():
    X, y, _ = logistic_data(1000)
    labels = y.copy()
    labels[537] = 0.5  # batch 5 of an unshuffled epoch
    loader = DataLoader(
        array_source(np.column_stack([X, labels])), batch_size=100, sample_shape=(6,), shuffle=False
    )
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=6)
        batch = pm.Data("batch", np.zeros((100, 6)))
        # An expression, not a column: the loader cannot tell which column to check.
        pm.Bernoulli(
            "click",
            logit_p=b[0] + pm.math.dot(batch[:, :5], b[1:]),
            observed=batch[:, 5] * 1.0,
            total_size=len(loader),
        )
    trainer = Trainer(dataloader=loader, model=model, progressbar=False)
    with pytest.raises(
        ValueError, match=r"observed variable 'click' is discrete.*non-whole numbers"
    ):
        trainer.fit(20)
    assert trainer.state.step == 5


def test_trainer_needs_a_model():
    _, loader = normal_loader(100, batch_size=10)
    with pytest.raises(
        TypeError, match=r"inside `with pm.Model\(\) as model:` or pass model=model"
    ):
        Trainer(dataloader=loader)


def test_trainer_takes_the_model_from_the_context():
    _, loader = normal_loader(1000, batch_size=100)
    with normal_model(loader) as model:
        trainer = Trainer(dataloader=loader, progressbar=False)
    assert trainer.model is model


@pytest.mark.parametrize(
    "build, error, match",
    [
        (
            lambda loader: dict(data_name="nope"),
            ValueError,
            r"data_name='nope' is not a pm.Data variable of the model; the model's pm.Data variables are \['batch'\]",
        ),
        (lambda loader: dict(method="nuts"), ValueError, "method must be one of"),
        (lambda loader: dict(dataloader=None), TypeError, "Trainer needs dataloader=DataLoader"),
        (
            lambda loader: dict(learning_rate=0.1),
            TypeError,
            r"unexpected keyword argument\(s\) \['learning_rate'\]",
        ),
        (
            lambda loader: dict(callbacks=[print]),
            TypeError,
            r"\['callbacks'\].*; callbacks go to fit\(n, callbacks=\[\.\.\.\]\)",
        ),
    ],
)
def test_bad_trainer_arguments(build, error, match):
    _, loader = normal_loader(100, batch_size=10)
    model = normal_model(loader)
    kwargs = dict(dataloader=loader, model=model, progressbar=False) | build(loader)
    with pytest.raises(error, match=match):
        Trainer(**kwargs)


def test_placeholder_shape_must_match_the_batches():
    loader = DataLoader(array_source(np.zeros((100, 3))), batch_size=10)
    with pm.Model() as model:
        pm.Normal(
            "y", pm.Normal("mu"), observed=pm.Data("batch", np.zeros((10, 4))), total_size=100
        )
    with pytest.raises(
        ValueError,
        match=r"pm.Data 'batch' has shape \(10, 4\), but the loader's batches have shape \(batch_size, \*row shape\) = \(10, 3\)",
    ):
        Trainer(dataloader=loader, model=model)
    with pm.Model() as fixed:
        pm.Normal(
            "y",
            pm.Normal("mu"),
            observed=pm.Data("batch", np.zeros((10, 3)), shape=(10, 3)),
            total_size=105,
        )
    ragged = DataLoader(array_source(np.zeros((105, 3))), batch_size=10)
    with pytest.raises(ValueError, match="fixes its first dimension to 10"):
        Trainer(dataloader=ragged, model=fixed)


def test_total_size_is_checked():
    _, loader = normal_loader(1000, batch_size=100)
    with pytest.warns(
        UserWarning,
        match=r"'y' is fed by pm.Data 'batch' but has no total_size.*len\(loader\) \(= 1000\)",
    ):
        Trainer(dataloader=loader, model=normal_model(loader, total_size=None))
    with pytest.warns(
        UserWarning, match=r"'y' has total_size=999, but the loader holds len\(loader\)=1000 rows"
    ):
        Trainer(dataloader=loader, model=normal_model(loader, total_size=999))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(dataloader=loader, model=normal_model(loader))


def test_checkpoint_resumes_bit_for_bit(tmp_path):
    def new_trainer():
        _, loader = normal_loader(5000, batch_size=128, seed=3)
        return Trainer(
            dataloader=loader, model=normal_model(loader), random_seed=5, progressbar=False
        )

    reference = new_trainer().fit(600)
    first = new_trainer()
    first.fit(300)
    first.save_checkpoint(tmp_path / "fit.npz")
    # Another fit in between must not leak into the checkpoint.
    first.fit(50)
    resumed = new_trainer()
    approx = resumed.fit(300, ckpt_path=tmp_path / "fit.npz")
    for a, b in zip(approx.params, reference.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())
    np.testing.assert_array_equal(approx.hist, reference.hist)
    assert resumed.state.step == 600


def prefetch_children(but=()) -> list[int]:
    alive = multiprocessing.active_children()  # reaps those that have exited
    return [p.pid for p in alive if p.name == "pymc-prefetch" and p.pid not in but]


def exited(pids, within: float = 5.0) -> bool:
    """Whether the workers ``pids`` have exited within ``within`` s: a stopped worker
    exits by itself right after ``close()`` returns."""
    deadline = time.monotonic() + within
    while set(pids) & set(prefetch_children()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_no_producer_outlives_a_fit_by_default():
    _, loader = normal_loader(5000, batch_size=128, seed=3)
    loader.workers = 1
    others = prefetch_children()  # of earlier tests, not yet collected
    trainer = Trainer(dataloader=loader, model=normal_model(loader), progressbar=False)
    trainer.fit(50)
    assert exited(prefetch_children(but=others))


def test_persistent_workers_are_kept_between_fits_only_where_they_stand(tmp_path):
    # A fit leaves its producer running, so the next fit starts without a new one; a
    # checkpoint of another position gets a new producer, and the right batches.
    def new_trainer():
        _, loader = normal_loader(5000, batch_size=128, seed=3)
        loader.workers, loader.persistent_workers = 1, True
        return Trainer(
            dataloader=loader, model=normal_model(loader), random_seed=5, progressbar=False
        )

    reference_trainer = new_trainer()
    reference = reference_trainer.fit(600)
    reference_trainer.close()
    others = prefetch_children()  # of earlier tests, not yet collected
    trainer = new_trainer()
    trainer.fit(300)
    trainer.save_checkpoint(tmp_path / "fit.npz")
    producers = prefetch_children(but=others)
    trainer.fit(100)
    assert len(producers) == 1 and prefetch_children(but=others) == producers
    approx = trainer.fit(300, ckpt_path=tmp_path / "fit.npz")  # back to step 300
    for a, b in zip(approx.params, reference.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())
    np.testing.assert_array_equal(approx.hist, reference.hist)
    assert exited(producers)
    (producer,) = prefetch_children(but=others)
    trainer.close()
    assert exited([producer])


def test_a_changed_setting_of_the_loader_starts_a_new_producer():
    _, loader = normal_loader(5000, batch_size=128, seed=3)
    loader.workers, loader.persistent_workers = 1, True
    trainer = Trainer(dataloader=loader, model=normal_model(loader), progressbar=False)
    seen = []

    def record(approx, losses, i):
        seen.append(trainer.placeholders["batch"].get_value().copy())

    trainer.fit(20, callbacks=[record])
    loader.transform = lambda rows: rows + 1000.0
    trainer.fit(20, callbacks=[record])
    trainer.close()
    assert all(np.abs(b).max() < 100 for b in seen[:20])
    assert all(b.min() > 900 for b in seen[20:])


def test_checkpoint_on_other_data_is_refused(tmp_path):
    _, loader = normal_loader(5000, batch_size=128)
    trainer = Trainer(dataloader=loader, model=normal_model(loader), progressbar=False)
    trainer.fit(10)
    trainer.save_checkpoint(tmp_path / "fit.npz")
    _, other = normal_loader(4000, batch_size=128)
    with pytest.raises(ValueError, match="saved on different data"):
        Trainer(dataloader=other, model=normal_model(other), progressbar=False).fit(
            10, ckpt_path=tmp_path / "fit.npz"
        )
    X, y, _ = logistic_data(5000)
    wide = DataLoader(array_source(np.column_stack([X, y])), batch_size=128, sample_shape=(6,))
    with pytest.raises(
        ValueError,
        match=r"variable rho has shape \(1,\) and dtype float64, but the model's has shape \(6,\).*the model differs",
    ):
        Trainer(
            dataloader=wide, model=logistic_model(wide, 128), progressbar=False
        ).load_checkpoint(tmp_path / "fit.npz")


RESUME_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_trainer import normal_loader, normal_model
from pymc.variational.streaming import Trainer

_, loader = normal_loader(5000, batch_size=128, seed=3)
trainer = Trainer(dataloader=loader, model=normal_model(loader), random_seed=5, progressbar=False)
approx = trainer.fit(300, ckpt_path={ckpt!r})
np.savez({out!r}, *[p.get_value() for p in approx.params], hist=approx.hist)
"""


def test_checkpoint_resumes_in_a_new_process(tmp_path):
    import os
    import subprocess
    import sys

    def new_trainer():
        _, loader = normal_loader(5000, batch_size=128, seed=3)
        return Trainer(
            dataloader=loader, model=normal_model(loader), random_seed=5, progressbar=False
        )

    first = new_trainer()
    first.fit(300)
    first.save_checkpoint(tmp_path / "fit.npz")
    script = RESUME_SCRIPT.format(
        tests=os.path.dirname(__file__),
        ckpt=str(tmp_path / "fit.npz"),
        out=str(tmp_path / "out.npz"),
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=600)
    reference = new_trainer().fit(600)
    with np.load(tmp_path / "out.npz") as out:
        for k, p in enumerate(reference.params):
            np.testing.assert_array_equal(out[f"arr_{k}"], p.get_value())
        np.testing.assert_array_equal(out["hist"], reference.hist)


@pytest.mark.parametrize("workers", [0, 1], ids=["thread", "process"])
def test_sigint_stops_cleanly_and_fit_continues(workers):
    import os
    import signal
    import threading

    def interrupt_later(approx, losses, i):
        if i == 200:
            # A real Ctrl-C: the signal arrives from outside the loop.
            threading.Timer(0.0, os.kill, args=(os.getpid(), signal.SIGINT)).start()

    _, loader = normal_loader(20_000, batch_size=128, seed=3)
    loader.workers = workers
    trainer = Trainer(
        dataloader=loader, model=normal_model(loader), random_seed=5, progressbar=False
    )
    threads_before = set(threading.enumerate())
    children_before = {p.pid for p in psutil.Process().children()}
    approx = trainer.fit(100_000, callbacks=[interrupt_later])
    stopped_at = trainer.state.step
    assert 200 <= stopped_at < 100_000
    assert len(approx.hist) == stopped_at and np.isfinite(approx.hist).all()
    # The producer (thread or forked process) has ended; a stopped worker exits by itself
    # and is reaped once multiprocessing is asked for its children.
    leftover = [
        t for t in threading.enumerate() if t not in threads_before and t.name.startswith("pymc-")
    ]
    assert leftover == []
    children = [p for p in psutil.Process().children() if p.pid not in children_before]
    assert exited([p.pid for p in children])
    assert [p for p in children if psutil.pid_exists(p.pid)] == []
    trainer.fit(100)
    assert trainer.state.step == stopped_at + 100
    # The stream went on where it stopped: no batch was skipped or repeated.
    batches_per_epoch = loader.batches_per_epoch
    assert trainer.state.epoch * batches_per_epoch + trainer.state.batch == stopped_at + 100


def test_fields_fill_one_placeholder_each():
    from sklearn.linear_model import LogisticRegression

    X, y, _ = logistic_data(100_000)
    columns = [f"x{j}" for j in range(5)] + ["label"]
    loader = DataLoader(
        array_source(np.column_stack([X, y]), columns=columns),
        batch_size=2048,
        fields={"X": columns[:5], "y": "label"},
        seed=0,
    )
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=6)
        X_data = pm.Data("X", np.zeros((2048, 5)))
        y_data = pm.Data("y", np.zeros(2048, dtype="int32"))
        pm.Bernoulli(
            "click",
            logit_p=b[0] + pm.math.dot(X_data, b[1:]),
            observed=y_data,
            total_size=len(loader),
        )
    trainer = Trainer(
        dataloader=loader, data_name=None, model=model, random_seed=1, progressbar=False
    )
    seen = []
    approx = trainer.fit(
        3000,
        callbacks=[
            lambda approx, losses, i: (
                seen.append(model["y"].get_value(borrow=True).dtype) if i < 3 else None
            )
        ],
    )
    assert seen == [np.dtype("int32")] * 2
    sk = LogisticRegression(C=1e6, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(approx.mean.eval(), np.r_[sk.intercept_, sk.coef_[0]], atol=0.05)
    with pytest.raises(ValueError, match="pass data_name=None"):
        Trainer(dataloader=loader, data_name="X", model=model)


def test_defaults_convergence_a_forked_producer_and_one_compilation(tmp_path):
    # The README's claims: ADVI's default is the Convergence() scheme, and convergence=None
    # is pymc's plain step with Adam at 0.01; for local data the Trainer produces in a
    # forked worker process; the step functions are compiled once.
    y = np.random.default_rng(42).normal(1.7, 1.0, size=4000)
    pq.write_table(pa.table({"y": y}), tmp_path / "y.parquet", row_group_size=1000)

    def make(**kwargs):
        loader = DataLoader(parquet_source(tmp_path), batch_size=100, sample_shape=(), seed=1)
        return Trainer(
            dataloader=loader,
            model=normal_model(loader),
            random_seed=2,
            progressbar=False,
            **kwargs,
        )

    def fit(trainer, n=150, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # 150 steps: "not converged"
            return trainer.fit(n, **kwargs).hist

    children, before = [], {p.pid for p in psutil.Process().children()}
    default = make()
    cycle = default.compile()

    def note_children(approx, losses, i):
        if i == 5:
            children.extend(p.name() for p in psutil.Process().children() if p.pid not in before)

    hist = fit(default, callbacks=[note_children])
    np.testing.assert_array_equal(hist, fit(make(convergence=Convergence())))
    plain = fit(make(convergence=None))
    np.testing.assert_array_equal(plain, fit(make(obj_optimizer=pm.adam(learning_rate=0.01))))
    assert not np.array_equal(hist, plain)
    assert not np.array_equal(plain, fit(make(obj_optimizer=pm.adam(learning_rate=0.02))))
    assert children == [psutil.Process().name()]  # one forked worker
    fit(default, 10)
    assert default.compile() is cycle


def test_svgd_is_reproducible_with_a_random_seed():
    # pymc jitters SVGD's particles with numpy's global generator; the Trainer seeds it.
    def fit():
        _, loader = normal_loader(2000, batch_size=200)
        trainer = Trainer(
            method="svgd",
            dataloader=loader,
            model=normal_model(loader),
            random_seed=4,
            progressbar=False,
            inf_kwargs={"n_particles": 5},
        )
        return trainer.fit(50).params[0].get_value()

    np.random.seed(1)
    first = fit()
    np.random.seed(2)
    after_seed = np.random.get_state()[1].copy()
    second = fit()
    np.testing.assert_array_equal(first, second)
    # The user's global generator is left as it was.
    np.testing.assert_array_equal(np.random.get_state()[1], after_seed)


def small_logistic_trainer(**kwargs):
    X, y, _ = logistic_data(400)
    rows = np.column_stack([X, y])
    loader = DataLoader(array_source(rows), batch_size=100, sample_shape=(6,), shuffle=False)
    trainer = Trainer(
        dataloader=loader,
        model=logistic_model(loader, 100),
        random_seed=1,
        progressbar=False,
        convergence=None,
        **kwargs,
    )
    return rows, trainer


def with_value(rows, row, column, value):
    rows = rows[:100].copy()
    rows[row, column] = value
    return rows


@pytest.mark.parametrize(
    "batch, message",
    [
        (
            lambda rows: with_value(rows, slice(None), 5, 2.0),
            r"column 'x5' of the batch given to Trainer.step \(pm.Data 'batch'\) holds 2.0 at "
            r"row 0, outside the support of observed variable 'click'.*whole numbers from 0 to 1",
        ),
        (
            lambda rows: with_value(rows, 3, 1, np.nan),
            r"column 'x1' of the batch given to Trainer.step \(pm.Data 'batch'\) holds nan at row 3",
        ),
        (lambda rows: with_value(rows, 7, 0, -np.inf), r"column 'x0' .* holds -inf at row 7"),
        (
            lambda rows: with_value(rows, 0, 5, 0.5),
            r"column 'x5' .* holds non-whole numbers \(0.5 at row 0\), which cannot go into "
            "observed variable 'click'",
        ),
        (
            lambda rows: np.column_stack([rows[:100], rows[:100, :1]]),
            r"for pm.Data 'batch' has shape \(100, 7\), but its rows have shape \(6,\)",
        ),
    ],
    ids=["label-outside-support", "nan", "inf", "non-whole-label", "extra-column"],
)
def test_step_refuses_a_batch_that_a_fit_would_refuse(batch, message):
    rows, trainer = small_logistic_trainer()
    before = [p.get_value() for p in trainer.approx.params]
    with pytest.raises(ValueError, match=message):
        trainer.step(batch(rows))
    # Refused before the step: nothing moved, nothing was recorded.
    for param, value in zip(trainer.approx.params, before):
        np.testing.assert_array_equal(param.get_value(), value)
    assert trainer.state.step == 0 and trainer.losses.size == 0
    assert np.isfinite(trainer.step(rows[:100]))


def test_step_refuses_non_whole_values_for_an_integer_placeholder():
    # Cast to int32, 0.7 would become a label of 0 without a word.
    X, y, _ = logistic_data(400)
    columns = [f"x{j}" for j in range(5)] + ["label"]
    loader = DataLoader(
        array_source(np.column_stack([X, y]), columns=columns),
        batch_size=100,
        fields={"X": columns[:5], "y": "label"},
    )
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=6)
        X_data = pm.Data("X", np.zeros((100, 5)))
        y_data = pm.Data("y", np.zeros(100, dtype="int32"))
        logit = b[0] + pm.math.dot(X_data, b[1:])
        pm.Bernoulli("click", logit_p=logit, observed=y_data, total_size=len(loader))
    trainer = Trainer(dataloader=loader, data_name=None, model=model, progressbar=False)
    with pytest.raises(
        ValueError,
        match=r"column 'label' of the batch given to Trainer.step \(pm.Data 'y'\) holds non-whole "
        r"numbers \(0.7 at row 0\), which cannot go into an int32 placeholder",
    ):
        trainer.step({"X": X[:100], "y": np.full(100, 0.7)})
    with pytest.raises(ValueError, match=r"'label' .* holds 3 at row 0, outside the support"):
        trainer.step({"X": X[:100], "y": np.full(100, 3)})
    with pytest.raises(ValueError, match=r"needs a dict with an array for each field \['X', 'y'\]"):
        trainer.step({"X": X[:100]})
    assert trainer.state.step == 0
    assert np.isfinite(trainer.step({"X": X[:100], "y": y[:100]}))


@pytest.mark.filterwarnings("ignore:the fit has not converged:UserWarning")
def test_step_records_its_loss_as_fit_does():
    rows, fitted = small_logistic_trainer()
    fitted.fit(3)
    _, stepped = small_logistic_trainer()
    returned = [stepped.step(rows[k * 100 : (k + 1) * 100]) for k in range(3)]
    np.testing.assert_array_equal(stepped.losses, fitted.losses)
    np.testing.assert_array_equal(stepped.approx.hist, fitted.approx.hist)
    np.testing.assert_array_equal(stepped.losses, returned)
    assert stepped.state.step == 3
    # A short batch is scaled to batch_size rows, as the last batch of an epoch is in a fit.
    half = stepped.step(rows[:50])
    assert stepped.losses[-1] == half and len(stepped.approx.hist) == 4


def test_a_diverging_step_raises_and_a_fit_refuses_its_non_finite_state():
    y, loader = normal_loader(2000, batch_size=100)
    trainer = Trainer(
        dataloader=loader,
        model=normal_model(loader),
        random_seed=3,
        progressbar=False,
        obj_optimizer=pm.sgd(learning_rate=1e6),
    )
    with pytest.raises(FloatingPointError, match="No finite copy of the state was kept"):
        for _ in range(20):
            trainer.step(y[:100])
    failed = trainer.state.step
    assert not all(np.isfinite(p.get_value()).all() for p in trainer.approx.params)
    # No snapshot of the NaN state is taken: a fit says so, rather than "rolling back" to it.
    with pytest.raises(FloatingPointError) as info:
        trainer.fit(10)
    assert f"state of the fit after step {failed} already holds NaN or inf" in str(info.value)
    assert "rolled back" not in str(info.value)
    assert trainer.state.step == failed


def test_a_fit_does_not_snapshot_a_state_made_non_finite_by_hand():
    _, trainer = small_logistic_trainer()
    rho = trainer.approx.params[1]
    rho.set_value(np.full_like(rho.get_value(), np.nan))
    with pytest.raises(
        FloatingPointError,
        match=r"state of the fit after step 0 already holds NaN or inf .* no finite state to "
        "continue from or roll back to",
    ):
        trainer.fit(5)
    assert trainer.state.step == 0 and trainer.losses.size == 0

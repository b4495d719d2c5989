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
"""The Trainer: one compiled variational step, fed a fresh batch before every call."""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import warnings

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pytensor.tensor as pt

from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.traversal import ancestors
from pytensor.scalar import Cast
from pytensor.tensor.basic import get_underlying_scalar_constant_value
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.exceptions import NotScalarConstantError
from pytensor.tensor.subtensor import Subtensor, indices_from_subtensor
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

import pymc as pm

from pymc.model import Model, modelcontext
from pymc.progress_bar import CustomProgress, default_progress_theme
from pymc.pytensorf import compile as pytensor_compile
from pymc.variational.approximations import Approximation
from pymc.variational.inference import ADVI, ASVGD, SVGD, FullRankADVI, Inference
from pymc.variational.minibatch_rv import MinibatchRandomVariable
from pymc.variational.streaming.dataloader import DataLoader
from pymc.variational.streaming.prefetch import BatchIterator
from pymc.variational.streaming.validation import EarlyStopping, HeldOutScore

__all__ = ["Trainer", "TrainerState", "default_optimizer"]

logger = logging.getLogger("pymc")

_METHODS = {"advi": ADVI, "fullrank_advi": FullRankADVI, "svgd": SVGD, "asvgd": ASVGD}
_STEP_KWARGS = {
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
# Parameters are copied this often, so that a NaN can roll back to finite values.
_SNAPSHOT_EVERY = 100


def default_optimizer(learning_rate: float = 0.01):
    """Adam at ``learning_rate=0.01``, the Trainer's default ``obj_optimizer``.

    ``pm.fit``'s default, ``adagrad_window`` at ``1e-3``, moves an intercept too slowly
    for click data: on Criteo-like rows (intercept near -3.5) it is still near -0.4 after
    5,000 steps. Adam at 0.01 reaches the in-memory optimum within a few thousand steps of
    batch 4096 (see ``benchmarks/criteo.py``).
    """
    return pm.adam(learning_rate=learning_rate)


class TrainerState(NamedTuple):
    """Where a Trainer stands: steps taken and the loader position of the next batch."""

    step: int
    epoch: int
    batch: int


def _json_default(value):
    """numpy scalars in generator states and loader fingerprints, as plain numbers."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def _is_positive_int(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool) and x > 0


def _resolve_model(model: Model | None) -> Model:
    try:
        return modelcontext(model)
    except TypeError as err:
        raise TypeError(
            "Trainer needs a PyMC model: create the Trainer inside `with pm.Model() as model:` "
            "or pass model=model"
        ) from err


class Trainer:
    """Fit a variational approximation to data streamed by a :class:`DataLoader`.

    The Trainer owns the optimization loop: it compiles the variational step once, then
    before every step writes the next batch of the loader into the model's ``pm.Data``
    placeholder. The placeholder is filled before the first step, so step 0 already sees
    real data, and no callback is needed to feed it.

    Parameters
    ----------
    method : str or Inference, default "advi"
        ``"advi"``, ``"fullrank_advi"``, ``"svgd"``, ``"asvgd"``, or an
        :class:`~pymc.variational.inference.Inference` built on the model.
    dataloader : DataLoader
        Source of the batches.
    data_name : str or None, default "batch"
        Name of the ``pm.Data`` placeholder that receives each batch. Its trailing shape
        must equal ``dataloader.sample_shape`` and it should not fix the batch dimension.
        ``None`` for a loader with ``fields``: each field then fills the ``pm.Data`` of
        the same name, all of them before every step.
    model : Model, optional
        Defaults to the model on the ``with`` context.
    random_seed : int, optional
        Seed of the approximation's Monte Carlo draws.
    progressbar : bool, default True
        Show a progress bar with the average loss and rows per second.
    inf_kwargs : dict, optional
        Passed to the inference class, e.g. ``{"n_particles": 50}`` for SVGD.
    start : dict, optional
        Starting point of the approximation.
    val_dataloader : DataLoader, optional
        Held-out rows. Every ``val_check_interval`` steps their mean log predictive
        density under ``val_draws`` draws of the approximation is computed, recorded in
        ``val_history`` and shown in the progress bar.
    val_check_interval : int, default 1000
        Steps between validation checks.
    val_draws : int, default 100
        Posterior draws per validation check.
    early_stopping : EarlyStopping, optional
        Stop when the held-out score or the epoch-averaged loss stops improving. Off by
        default.
    **kwargs
        Passed to the step, as in :func:`pymc.fit`: ``obj_optimizer`` (default
        :func:`default_optimizer`), ``total_grad_norm_constraint``, ``obj_n_mc``,
        ``tf_n_mc``, ``test_optimizer``, ``more_updates``, ``compile_kwargs``, ...

    Attributes
    ----------
    approx : Approximation
        The approximation being fitted; ``approx.hist`` holds the loss of every step.
    inference : Inference
        The underlying PyMC inference object.

    Examples
    --------
    .. code-block:: python

        import numpy as np
        import pymc as pm
        from pymc.variational.streaming import DataLoader, Trainer, parquet_source

        loader = DataLoader(parquet_source("criteo/"), batch_size=4096, sample_shape=(14,))
        with pm.Model() as model:
            b = pm.Normal("b", 0.0, 1.5, shape=14)
            batch = pm.Data("batch", np.zeros((4096, 14)))
            logit = b[0] + pm.math.dot(batch[:, :13], b[1:])
            pm.Bernoulli("click", logit_p=logit, observed=batch[:, 13], total_size=len(loader))
            approx = Trainer(method="advi", dataloader=loader, data_name="batch").fit(20_000)
    """

    def __init__(
        self,
        method: str | Inference = "advi",
        dataloader: DataLoader | None = None,
        data_name: str = "batch",
        model: Model | None = None,
        random_seed: int | None = None,
        progressbar: bool = True,
        *,
        inf_kwargs: dict | None = None,
        start: dict | None = None,
        val_dataloader: DataLoader | None = None,
        val_check_interval: int = 1000,
        val_draws: int = 100,
        early_stopping: EarlyStopping | None = None,
        **kwargs,
    ):
        if not isinstance(dataloader, DataLoader):
            raise TypeError(
                "Trainer needs dataloader=DataLoader(...), got "
                f"{type(dataloader).__name__ if dataloader is not None else 'nothing'}"
            )
        unknown = set(kwargs) - _STEP_KWARGS
        if unknown:
            raise TypeError(
                f"Trainer got unexpected keyword argument(s) {sorted(unknown)}; step options are "
                f"{sorted(_STEP_KWARGS)}, and options of the inference class go in inf_kwargs="
            )
        self.model = _resolve_model(model) if not isinstance(method, Inference) else None
        self.dataloader = dataloader
        self.data_name = data_name
        self.progressbar = progressbar
        self.inference = self._make_inference(method, random_seed, inf_kwargs, start)
        self.model = self.inference.approx.model
        self.placeholders = self._find_placeholders(data_name)
        # The single placeholder of a loader without fields (None with fields).
        self.placeholder = self.placeholders.get(data_name) if data_name is not None else None
        for name, var in self.placeholders.items():
            self._check_shape(var, self._row_shape(name))
        self._check_total_size()
        self._step_kwargs = dict(kwargs)
        self._step_kwargs.setdefault("obj_optimizer", default_optimizer())
        if isinstance(self.inference, ASVGD):
            self._step_kwargs.setdefault("obj_n_mc", 500)  # as ASVGD.fit does
        self.score = bool(self.inference.objective.op.returns_loss)
        self._step_fn = None
        self._plan_label_checks()
        self._steps_done = 0
        self._snapshot: tuple[int, list[np.ndarray]] | None = None
        self._setup_validation(val_dataloader, val_check_interval, val_draws, early_stopping)

    def _setup_validation(self, val_dataloader, interval, draws, early_stopping) -> None:
        if not _is_positive_int(interval):
            raise ValueError(f"val_check_interval must be a positive number of steps, got {interval!r}")
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            raise TypeError(f"early_stopping must be an EarlyStopping, got {type(early_stopping).__name__}")
        self.val_check_interval = int(interval)
        self.early_stopping = early_stopping
        #: ``(step, held-out mean log predictive density)`` of every validation check.
        self.val_history: list[tuple[int, float]] = []
        self._held_out = HeldOutScore(self, val_dataloader, draws) if val_dataloader is not None else None
        self._event_periods = [self.val_check_interval] if self._held_out is not None else []
        self._loss_epoch_steps = 0
        if early_stopping is None:
            return
        if early_stopping.monitor == "val_lpd" and self._held_out is None:
            raise ValueError('EarlyStopping(monitor="val_lpd") needs a val_dataloader')
        if early_stopping.monitor == "loss":
            if not self.score:
                raise ValueError(f'EarlyStopping(monitor="loss"): {type(self.inference).__name__} reports no loss')
            if self.dataloader.batches_per_epoch is None:
                raise ValueError('EarlyStopping(monitor="loss") needs a loader that knows its number of rows')
            self._loss_epoch_steps = self.dataloader.batches_per_epoch
            self._event_periods.append(self._loss_epoch_steps)

    # ------------------------------------------------------------------ set-up
    def _make_inference(self, method, random_seed, inf_kwargs, start) -> Inference:
        if isinstance(method, Inference):
            return method
        if not isinstance(method, str) or method not in _METHODS:
            raise ValueError(f"method must be one of {sorted(_METHODS)} or an Inference instance, got {method!r}")
        inf_kwargs = dict(inf_kwargs or {})
        if random_seed is not None:
            inf_kwargs["random_seed"] = random_seed
        if start is not None:
            inf_kwargs["start"] = start
        return _METHODS[method](model=self.model, **inf_kwargs)

    def _find_placeholders(self, data_name: str | None) -> dict[str, SharedVariable]:
        fields = self.dataloader.fields
        if fields is not None and data_name is not None:
            raise ValueError(
                f"the DataLoader has fields {list(fields)}, so the Trainer fills one pm.Data per "
                f"field: pass data_name=None instead of data_name={data_name!r}"
            )
        if fields is None and data_name is None:
            raise ValueError(
                "data_name=None fills one pm.Data per field, but the DataLoader has no fields=; "
                "pass data_name='<name of the pm.Data placeholder>'"
            )
        return {name: self._find_placeholder(name) for name in (fields or [data_name])}

    def _row_shape(self, name: str) -> tuple[int, ...]:
        shapes = self.dataloader.field_shapes
        return self.dataloader.sample_shape if shapes is None else shapes[name]

    def _find_placeholder(self, name: str) -> SharedVariable:
        data_names = [v.name for v in self.model.data_vars]
        if not isinstance(name, str) or name not in data_names:
            what = f"data_name={name!r}" if self.dataloader.fields is None else f"field {name!r}"
            raise ValueError(
                f"{what} is not a pm.Data variable of the model; the model's pm.Data "
                f"variables are {data_names}. Create the placeholder with "
                f"pm.Data({name!r}, np.zeros((batch_size, *sample_shape)))"
            )
        var = self.model[name]
        if not isinstance(var, SharedVariable):
            raise ValueError(f"pm.Data {name!r} is not a shared variable and cannot be refilled")
        return var

    def _check_shape(self, var: SharedVariable, row_shape: tuple[int, ...]) -> None:
        loader = self.dataloader
        value_shape = var.get_value(borrow=True).shape
        expected = (loader.batch_size, *row_shape)
        if len(value_shape) != len(expected) or tuple(value_shape[1:]) != row_shape:
            source = "sample_shape" if loader.fields is None else f"field {var.name!r}"
            raise ValueError(
                f"pm.Data {var.name!r} has shape {value_shape}, but the loader's batches have shape "
                f"(batch_size, *row shape) = {expected}. Create it as "
                f"pm.Data({var.name!r}, np.zeros({expected})) or change the DataLoader's {source}"
            )
        static_rows = var.type.shape[0]
        ragged = (
            not loader.drop_last and loader.num_rows is not None and loader.num_rows % loader.batch_size
        )
        if static_rows is not None and (static_rows != loader.batch_size or ragged):
            raise ValueError(
                f"pm.Data {var.name!r} fixes its first dimension to {static_rows} (shape=...), but "
                f"the loader yields batches of {loader.batch_size} rows and a last batch of "
                f"{(loader.num_rows or 0) % loader.batch_size}. Leave the batch dimension "
                "free (no shape= on pm.Data) or use drop_last=True"
            )

    def _fed_observed(self) -> list:
        """Observed variables whose likelihood depends on a placeholder."""
        fed = []
        placeholders = set(self.placeholders.values())
        for rv in self.model.observed_RVs:
            value = self.model.rvs_to_values[rv]
            if placeholders & set(ancestors([rv, value])):
                fed.append(rv)
        return fed

    def _check_total_size(self) -> None:
        n = self.dataloader.total_size
        fed = self._fed_observed()
        for rv in fed:
            total = None
            if isinstance(rv.owner.op, MinibatchRandomVariable):
                size = rv.owner.inputs[1]
                total = int(size.data) if hasattr(size, "data") and size.data is not None else None
            if total is None:
                warnings.warn(
                    f"observed variable {rv.name!r} is fed by pm.Data {', '.join(map(repr, self.placeholders))} but has "
                    f"no total_size, so its likelihood is not scaled to the {n} rows of the data. "
                    f"Pass total_size=len(loader) (= {n}) to {rv.name!r}.",
                    UserWarning,
                    stacklevel=3,
                )
            elif n is not None and total != n:
                warnings.warn(
                    f"observed variable {rv.name!r} has total_size={total}, but the loader holds "
                    f"len(loader)={n} rows. Pass total_size=len(loader).",
                    UserWarning,
                    stacklevel=3,
                )

    def _discrete_casts(self) -> list[tuple[str, SharedVariable, object]]:
        """``(observed name, placeholder, float input)`` of every observed value that casts
        placeholder data to integers, as ``observed=batch[:, 13]`` does for a Bernoulli."""
        casts = []
        for rv in self._fed_observed():
            node = self.model.rvs_to_values[rv].owner
            if not (
                node is not None
                and isinstance(node.op, Elemwise)
                and isinstance(node.op.scalar_op, Cast)
                and node.inputs[0].dtype.startswith("float")
            ):
                continue
            x = node.inputs[0]
            for name, var in self.placeholders.items():
                if var in set(ancestors([x])):
                    casts.append((rv.name, var, x))
        return casts

    def _loader_column(self, placeholder: SharedVariable, local: int) -> int:
        """The loader column behind column ``local`` of a placeholder's rows."""
        fields = self.dataloader.fields
        return local if fields is None else int(fields[placeholder.name][0][local])

    def _traced_columns(self, x, placeholder: SharedVariable) -> list[int] | None:
        """Loader columns that ``x`` reads, when it is the placeholder or a constant column
        of it (``batch[:, 13]``); None when the graph is anything else."""
        if x is placeholder and placeholder.ndim == 1:
            return [self._loader_column(placeholder, 0)] if self.dataloader.fields is not None else [0]
        node = x.owner
        if node is None or not isinstance(node.op, Subtensor) or node.inputs[0] is not placeholder:
            return None
        index = indices_from_subtensor(node.inputs[1:], node.op.idx_list)
        if placeholder.ndim != 2 or len(index) != 2 or index[0] != slice(None):
            return None
        try:
            column = int(get_underlying_scalar_constant_value(index[1]))
        except NotScalarConstantError:
            return None
        width = self.placeholders[placeholder.name].get_value(borrow=True).shape[1]
        return [self._loader_column(placeholder, column % width)]

    def _plan_label_checks(self) -> None:
        """Discrete likelihoods fed float columns: the loader checks the columns it can
        trace, on every block, naming the file; the rest are checked on every batch."""
        self._whole: dict[int, str] = {}
        self._label_checks: list[tuple[str, Callable]] = []
        for name, var, x in self._discrete_casts():
            columns = self._traced_columns(x, var)
            if columns is None:
                fn = pytensor_compile([], pt.any(pt.neq(x, pt.round(x))))
                self._label_checks.append((name, fn))
                continue
            for column in columns:
                self._whole[column] = f"observed variable {name!r}, a discrete likelihood fed by pm.Data {var.name!r}"

    @property
    def approx(self) -> Approximation:
        return self.inference.approx

    @property
    def state(self) -> TrainerState:
        epoch, batch = self.dataloader.position
        return TrainerState(self._steps_done, epoch, batch)

    def compile(self):
        """Compile the variational step (done once; the optimizer state lives in it)."""
        if self._step_fn is None:
            self._step_fn = self.inference.objective.step_function(score=self.score, **self._step_kwargs)
        return self._step_fn

    # ------------------------------------------------------------------ checkpoints
    def _state_variables(self) -> list:
        """Every shared variable the step updates or reads, but the data placeholder:
        variational parameters, optimizer state and random generators, in graph order."""
        placeholders = set(self.placeholders.values())
        return [v for v in self.compile().get_shared() if v not in placeholders]

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write everything needed to continue this fit exactly into one ``.npz`` file.

        It holds the variational parameters, the optimizer state, the state of the step's
        random generators, the step count and loss history, and the loader's position and
        data fingerprint. It contains no pickled objects.

        Parameters
        ----------
        path : str or path-like
            Where to write; the file is replaced atomically.
        """
        arrays: dict[str, np.ndarray] = {}
        variables = []
        for k, var in enumerate(self._state_variables()):
            value = var.get_value(borrow=True)
            if isinstance(value, np.random.Generator):
                variables.append({"name": var.name, "kind": "rng", "state": value.bit_generator.state})
            else:
                arrays[f"var{k}"] = np.asarray(value)
                variables.append({"name": var.name, "kind": "array", "dtype": str(value.dtype), "shape": list(np.shape(value))})
        meta = {
            "format": 1,
            "method": type(self.inference).__name__,
            "steps": self._steps_done,
            "variables": variables,
            "loader": self.dataloader.state_dict(),
        }
        arrays["hist"] = np.asarray(self.inference.hist)
        arrays["meta"] = np.array(json.dumps(meta, default=_json_default))
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by :meth:`save_checkpoint`.

        The model and Trainer must be built as they were when it was saved; the
        checkpoint is refused, with the reason, when the variables or the data differ.
        """
        with np.load(os.fspath(path), allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            arrays = {k: f[k] for k in f.files if k != "meta"}
        variables = self._state_variables()
        saved = meta["variables"]
        if meta["method"] != type(self.inference).__name__ or len(saved) != len(variables):
            raise ValueError(
                f"checkpoint {os.fspath(path)!r} was saved from a {meta['method']} fit with "
                f"{len(saved)} state variables; this Trainer runs {type(self.inference).__name__} "
                f"with {len(variables)}. Build the model and Trainer as they were when it was saved."
            )
        for k, (var, info) in enumerate(zip(variables, saved)):
            value = var.get_value(borrow=True)
            if info["kind"] == "rng":
                if not isinstance(value, np.random.Generator):
                    raise ValueError(f"checkpoint variable {k} ({info['name']}) is a random generator; here it is not")
                value.bit_generator.state = info["state"]
                var.set_value(value, borrow=True)
                continue
            array = arrays[f"var{k}"]
            if np.shape(value) != array.shape or str(np.asarray(value).dtype) != info["dtype"]:
                raise ValueError(
                    f"checkpoint variable {info['name'] or k} has shape {array.shape} and dtype "
                    f"{info['dtype']}, but the model's has shape {np.shape(value)} and dtype "
                    f"{np.asarray(value).dtype}: the model differs from the one saved"
                )
            var.set_value(array.copy())
        self.dataloader.load_state_dict(meta["loader"])
        self._steps_done = int(meta["steps"])
        self.inference.hist = arrays["hist"]
        self.approx.hist = self.inference.hist
        self._snapshot = None

    # ------------------------------------------------------------------ stepping
    def _feeder(self) -> Callable:
        """A function writing one batch into the placeholder(s), as cheap as possible."""
        if self.placeholder is not None:
            return functools.partial(self.placeholder.set_value, borrow=True)
        setters = [(name, var.set_value) for name, var in self.placeholders.items()]

        def feed(batch: dict) -> None:
            for name, set_value in setters:
                set_value(batch[name], borrow=True)

        return feed

    def _set_batch(self, batch, check_labels: bool = False) -> None:
        self._feeder()(batch)
        if check_labels:
            self._check_labels()

    def _check_labels(self) -> None:
        """Checks of discrete likelihoods whose columns could not be traced to the loader."""
        for name, has_fraction in self._label_checks:
            if has_fraction():
                raise ValueError(
                    f"observed variable {name!r} is discrete, but the column of pm.Data "
                    f"{', '.join(map(repr, self.placeholders))} that feeds it holds non-whole numbers; "
                    "check the DataLoader's columns and transform (labels must not be standardized)"
                )

    def step(self, batch: np.ndarray) -> float:
        """Take one optimization step on ``batch`` and return its loss (NaN without one)."""
        step_fn = self.compile()
        if self.placeholder is not None:
            batch = np.asarray(batch, dtype=self.placeholder.dtype)
        else:
            batch = {name: np.asarray(batch[name], dtype=var.dtype) for name, var in self.placeholders.items()}
        self._set_batch(batch, check_labels=True)
        out = step_fn()
        self._steps_done += 1
        return float(out) if self.score else float("nan")

    def fit(
        self,
        n: int = 10_000,
        callbacks: Sequence[Callable] | None = None,
        progressbar: bool | None = None,
        ckpt_path: str | os.PathLike | None = None,
    ) -> Approximation:
        """Run ``n`` steps, continuing from any earlier call, and return the approximation.

        The loss of every step is appended to ``approx.hist``. Ctrl-C stops the loop after
        the current step and returns what was learned; the next ``fit`` continues from
        there with the same optimizer state and the next batch of the stream.

        Parameters
        ----------
        n : int, default 10000
            Number of steps.
        callbacks : list of callable, optional
            Called after every step as ``callback(approx, losses, i)``, as in
            :meth:`pymc.variational.Inference.fit`; raising ``StopIteration`` ends the fit.
        progressbar : bool, optional
            Overrides the Trainer's ``progressbar``.
        ckpt_path : str or path-like, optional
            A checkpoint from :meth:`save_checkpoint` to continue from, e.g. in a new
            process. Continuing is exact: 300 steps, a checkpoint and 300 more give the
            same parameters as 600 steps at once.

        Returns
        -------
        Approximation
        """
        if not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be a non-negative number of steps, got {n!r}")
        n = int(n)
        step_fn = self.compile()
        if ckpt_path is not None:
            self.load_checkpoint(ckpt_path)
        callbacks = list(callbacks or [])
        show = self.progressbar if progressbar is None else progressbar
        losses = np.full(n, np.nan)
        if self.placeholder is not None:
            dtype = self.placeholder.dtype
        else:
            dtype = {name: var.dtype for name, var in self.placeholders.items()}
        # Measured: a decoding thread beside the producer slows the fit (three busy threads
        # on two cores), so the Trainer's producer decodes and shuffles in turn.
        stream = self.dataloader.iterate(
            dtype=dtype, recycle=True, overlap=False, workers=self.dataloader._trainer_workers(), whole=self._whole
        )
        self._done_in_loop = self._fetched = 0
        try:
            with _Progress(show, n, self.dataloader.batch_size, self.score) as bar:
                self._loop(step_fn, stream, losses, callbacks, bar, n)
        except (KeyboardInterrupt, StopIteration) as stop:
            if isinstance(stop, KeyboardInterrupt):
                logger.info(f"Interrupted at step {self._steps_done:,d}; the fit keeps what it learned")
        finally:
            # No placeholder may point into a buffer that the stream will reuse.
            for var in self.placeholders.values():
                var.set_value(var.get_value(borrow=True).copy(), borrow=True)
            stream.close()
            self._record(losses[: self._done_in_loop])
            if self._done_in_loop < self._fetched:  # the last batch fetched was never stepped on
                stream.rewind_one()
        return self.approx

    def _loop(self, step_fn, stream: BatchIterator, losses, callbacks, bar, n) -> None:
        """The hot loop: set the batch, step; everything else every few steps."""
        if n == 0:
            return
        feed = self._feeder()
        score = self.score
        approx = self.approx
        base = self._steps_done
        next_event = 0
        untraced = bool(self._label_checks)
        self._set_batch(next(stream), check_labels=True)
        self._fetched = 1
        for i in range(n):
            if i:
                feed(next(stream))
                self._fetched = i + 1
                if untraced:
                    self._check_labels()
            out = step_fn()
            if score:
                losses[i] = out
                if out != out:
                    self._fail_on_nan(base + i, i)
            self._done_in_loop = i + 1
            self._steps_done = base + i + 1
            if i == next_event:
                next_event = self._on_event(i, base, losses, bar)
            for callback in callbacks:
                callback(approx, losses[: i + 1], base + i + 1)
        bar.update(n, losses, n - 1)

    def _on_event(self, i: int, base: int, losses: np.ndarray, bar) -> int:
        """Everything that is not a step: snapshots, progress, validation, early stopping.
        Returns the loop index of the next event."""
        step = base + i + 1
        if i % _SNAPSHOT_EVERY == 0:
            if not self.score:
                self._check_params_finite(step - 1, i)
            self._snapshot = (step, [p.get_value() for p in self.approx.params])
            bar.update(i + 1, losses, i)
        if self._held_out is not None and step % self.val_check_interval == 0:
            value = self._held_out()
            self.val_history.append((step, value))
            bar.show_val(value)
            if self.early_stopping is not None and self.early_stopping.monitor == "val_lpd":
                self.early_stopping.update(value, step)
        epoch = self._loss_epoch_steps
        if epoch and step % epoch == 0:
            recent = np.concatenate([self.inference.hist, losses[: i + 1]])[-epoch:]
            self.early_stopping.update(float(np.mean(recent)), step)
        due = [i + _SNAPSHOT_EVERY - i % _SNAPSHOT_EVERY]
        for period in self._event_periods:
            due.append(i + period - step % period)
        return min(due)

    def _check_params_finite(self, step: int, i: int) -> None:
        if not all(np.isfinite(p.get_value(borrow=True)).all() for p in self.approx.params):
            self._fail_on_nan(step, i)

    def _fail_on_nan(self, step: int, i: int) -> None:
        self._done_in_loop = i
        restored = ""
        if self._snapshot is not None:
            at, values = self._snapshot
            for p, v in zip(self.approx.params, values):
                p.set_value(v)
            restored = f" The parameters were restored to their finite values after step {at:,d}."
        raise FloatingPointError(
            f"NaN occurred at step {step:,d} of the optimization.{restored} Try a smaller learning "
            "rate (obj_optimizer=pm.adam(learning_rate=...)), total_grad_norm_constraint=..., or "
            "check the data and the priors."
        )

    def _record(self, losses: np.ndarray) -> None:
        if self.score:  # as in pm.fit, methods without a loss keep an empty history
            self.inference.hist = np.concatenate([self.inference.hist, losses])
        self.approx.hist = self.inference.hist


class _Progress:
    """pm.fit's rich progress bar, plus rows per second."""

    def __init__(self, show: bool, n: int, batch_size: int, score: bool):
        self.n, self.batch_size, self.score = n, batch_size, score
        self.bar = CustomProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[loss]}"),
            TextColumn("{task.fields[speed]}"),
            TextColumn("{task.fields[val]}"),
            console=Console(theme=default_progress_theme),
            disable=not show,
        )
        self.show = show

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        self.task = self.bar.add_task("Fitting", total=self.n, loss="", speed="", val="")
        self.t0 = time.perf_counter()
        return self

    def update(self, done: int, losses: np.ndarray, i: int) -> None:
        if not self.show:
            return
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        loss = ""
        if self.score and i >= 0:
            window = losses[max(0, i - 999) : i + 1]
            window = window[np.isfinite(window)]
            if len(window):
                loss = f"Average Loss = {window.mean():,.5g}"
        self.bar.update(self.task, completed=done, loss=loss, speed=f"{done * self.batch_size / elapsed:,.0f} rows/s")

    def show_val(self, value: float) -> None:
        if self.show:
            self.bar.update(self.task, val=f"held-out lpd = {value:,.4g}")

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

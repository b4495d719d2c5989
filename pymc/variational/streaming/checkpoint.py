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
"""A fit's state to and from one ``.npz`` file: arrays and JSON, no pickles.

The state is every shared variable that the compiled step updates or reads but the data
(variational parameters, optimizer state, random generators), plus whatever the Trainer
adds: step count, loss history, loader position and data fingerprint, validation state,
and what the arrays mean: the model's variables and the loader's transform, so that a
checkpoint of another model or other rows is refused rather than read the wrong way.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import sys
import types
import warnings

from collections.abc import Callable, Sequence

import numpy as np

from pymc.model import Model
from pytensor.compile.sharedvalue import SharedVariable

from pymc.variational.streaming.likelihoods import likelihood_of

__all__ = [
    "check_identity",
    "check_variables",
    "describe_identity",
    "describe_model",
    "describe_transform",
    "read_checkpoint",
    "restore_variables",
    "write_checkpoint",
]

FORMAT = 2


def _json_default(value):
    """numpy scalars in generator states and fingerprints, as plain numbers."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def write_checkpoint(
    path: str | os.PathLike,
    variables: Sequence[SharedVariable],
    meta: dict,
    arrays: dict[str, np.ndarray],
) -> None:
    """Write ``variables``, ``arrays`` and the JSON-able ``meta`` to ``path``, atomically."""
    out = {f"extra/{name}": np.asarray(value) for name, value in arrays.items()}
    described = []
    for k, var in enumerate(variables):
        value = var.get_value(borrow=True)
        if isinstance(value, np.random.Generator):
            described.append({"name": var.name, "kind": "rng", "state": value.bit_generator.state})
        else:
            out[f"var{k}"] = np.asarray(value)
            described.append(
                {
                    "name": var.name,
                    "kind": "array",
                    "dtype": str(value.dtype),
                    "shape": list(np.shape(value)),
                }
            )
    meta = {"format": FORMAT, **meta, "variables": described}
    out["meta"] = np.array(json.dumps(meta, default=_json_default))
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **out)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_checkpoint(
    path: str | os.PathLike,
) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(meta, variable arrays, extra arrays)`` of a checkpoint."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"checkpoint {path!r} does not exist. Write one with trainer.save_checkpoint(path); to "
            "resume only where one exists, pass ckpt_path=path if os.path.exists(path) else None"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            variables = {k: f[k] for k in f.files if k.startswith("var")}
            extra = {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith("extra/")}
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(
            f"{path!r} is not a checkpoint written by Trainer.save_checkpoint: {err}"
        ) from err
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"checkpoint {path!r} has format {meta.get('format')!r}; this version reads format {FORMAT}"
        )
    return meta, variables, extra


def restore_variables(
    path: str | os.PathLike,
    variables: Sequence[SharedVariable],
    meta: dict,
    arrays: dict[str, np.ndarray],
) -> None:
    """Load the saved values into ``variables``; a checkpoint of another model is refused
    before any variable is changed."""
    check_variables(path, variables, meta, arrays)
    for k, (var, info) in enumerate(zip(variables, meta["variables"])):
        if info["kind"] == "rng":
            value = var.get_value(borrow=True)
            value.bit_generator.state = info["state"]
            var.set_value(value, borrow=True)
        else:
            var.set_value(arrays[f"var{k}"].copy())


def check_variables(
    path: str | os.PathLike,
    variables: Sequence[SharedVariable],
    meta: dict,
    arrays: dict[str, np.ndarray],
) -> None:
    """Refuse a checkpoint whose variables do not match ``variables`` in kind, shape and dtype."""
    saved = meta["variables"]
    if len(saved) != len(variables):
        raise ValueError(
            f"checkpoint {os.fspath(path)!r} holds {len(saved)} state variables; this Trainer has "
            f"{len(variables)}. Build the model and Trainer as they were when it was saved."
        )
    for k, (var, info) in enumerate(zip(variables, saved)):
        value = var.get_value(borrow=True)
        if info["kind"] == "rng":
            if not isinstance(value, np.random.Generator):
                raise ValueError(
                    f"checkpoint variable {k} ({info['name']}) is a random generator; here it is not"
                )
            continue
        array = arrays[f"var{k}"]
        if np.shape(value) != array.shape or str(np.asarray(value).dtype) != info["dtype"]:
            raise ValueError(
                f"checkpoint variable {info['name'] or k} has shape {array.shape} and dtype "
                f"{info['dtype']}, but the model's has shape {np.shape(value)} and dtype "
                f"{np.asarray(value).dtype}: the model differs from the one saved"
            )


# --------------------------------------------------------------- what the arrays mean
def _dist_name(rv) -> str:
    """``"Normal"``, ``"HalfNormal"``, ``"StudentT"``: the class of the variable's op (whose
    ``name`` would be ``"t"`` for a StudentT, and is missing for some)."""
    return type(rv.owner.op).__name__.removesuffix("RV") if rv.owner is not None else "?"


def describe_model(model: Model) -> dict[str, list[dict]]:
    """What the saved parameters mean: each free variable's name, distribution, shape and
    value variable (whose name says the transform, e.g. ``sigma_log__``), in the order of
    the flattened parameters, and each observed variable's name and distribution."""
    free = model.free_RVs
    static = [rv.type.shape for rv in free]
    # Static shapes are free; only shapes set by data or coords need a compiled function.
    if all(None not in shape for shape in static):
        shapes = {rv.name: shape for rv, shape in zip(free, static)}
    else:
        shapes = model.eval_rv_shapes()
    return {
        "free": [
            {
                "name": rv.name,
                "dist": _dist_name(rv),
                "shape": [int(d) for d in shapes[rv.name]],
                "value": model.rvs_to_values[rv].name,
            }
            for rv in free
        ],
        "observed": [
            {"name": rv.name, "dist": _dist_name(likelihood_of(rv))} for rv in model.observed_RVs
        ],
    }


def _code_text(obj, depth: int = 0) -> str:
    """A text of what ``obj`` computes that is the same in every process: bytecode,
    constants, global names, defaults and closure values of functions, plain values of
    anything else (never a ``repr`` holding a memory address)."""
    if depth > 6:  # deep or self-referencing closures: the outer levels decide
        return "..."
    text = functools.partial(_code_text, depth=depth + 1)
    if isinstance(obj, types.CodeType):
        consts = ",".join(map(text, obj.co_consts))
        return f"code({obj.co_code.hex()};{consts};{','.join(obj.co_names)})"
    if isinstance(obj, types.FunctionType):
        cells = []
        for cell in obj.__closure__ or ():
            try:
                cells.append(cell.cell_contents)
            except ValueError:  # a cell not yet filled
                cells.append(None)
        parts = (obj.__code__, obj.__defaults__, obj.__kwdefaults__, cells)
        return f"function({';'.join(map(text, parts))})"
    if isinstance(obj, types.MethodType):
        return f"method({text(obj.__func__)};{text(obj.__self__)})"
    if isinstance(obj, functools.partial):
        return f"partial({text(obj.func)};{text(obj.args)};{text(obj.keywords)})"
    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes | np.generic):
        return repr(obj)
    if isinstance(obj, tuple | list):
        return f"[{','.join(map(text, obj))}]"
    if isinstance(obj, frozenset | set):  # string hashes differ between processes
        return f"{{{','.join(sorted(map(text, obj)))}}}"
    if isinstance(obj, dict):
        return f"{{{','.join(sorted(f'{text(k)}:{text(v)}' for k, v in obj.items()))}}}"
    if isinstance(obj, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()
        return f"array({obj.dtype};{obj.shape};{digest})"
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if isinstance(name, str):  # a builtin, a ufunc, a numpy function, a module, a class
        return f"{kind}:{getattr(obj, '__module__', None)}.{name}"
    # An instance of a callable class: its __call__ and its plain attributes.
    return (
        f"{kind}({text(getattr(type(obj), '__call__', None))};{text(getattr(obj, '__dict__', {}))})"
    )


def describe_transform(transform: Callable | None) -> dict | None:
    """The loader's ``transform`` as its name and a digest of its code and constants."""
    if transform is None:
        return None
    name = getattr(transform, "__qualname__", None) or type(transform).__qualname__
    return {
        "name": str(name),
        "code": hashlib.sha256(_code_text(transform).encode()).hexdigest()[:16],
        "python": "{}.{}".format(*sys.version_info[:2]),
    }


def describe_identity(model: Model, transform: Callable | None) -> dict:
    """What a checkpoint's arrays mean, for :func:`check_identity`: the model and the
    loader's transform (the data's content is fingerprinted by the loader)."""
    return {"model": describe_model(model), "transform": describe_transform(transform)}


def _say(entry: dict | None) -> str:
    if entry is None:
        return "no such variable"
    text = f"{entry['name']!r} ~ {entry['dist']}"
    if "shape" in entry:
        text += f" of shape {tuple(entry['shape'])}"
        if entry["value"] != entry["name"]:
            text += f" sampled as {entry['value']!r}"
    return text


def _say_transform(entry: dict | None) -> str:
    return "no transform" if entry is None else f"transform={entry['name']}"


def check_identity(
    path: str | os.PathLike, meta: dict, model: Model, transform: Callable | None
) -> None:
    """Refuse a checkpoint saved from another model or with another loader transform,
    naming the first difference."""
    where = f"checkpoint {os.fspath(path)!r}"
    if "model" not in meta:
        # Written before the model was recorded. Refusing would strand long fits that can
        # only be resumed this way, so it loads, with the arrays' shapes checked only.
        warnings.warn(
            f"{where} does not record its model (an older version wrote it): only the shapes "
            "of its parameters were checked. Resume it only with the model it was saved from.",
            UserWarning,
            stacklevel=3,
        )
    else:
        now = describe_model(model)
        for kind in ("free", "observed"):
            for saved, here in itertools.zip_longest(meta["model"][kind], now[kind]):
                if saved != here:
                    raise ValueError(
                        f"{where} was saved from another model: it has {kind} variable "
                        f"{_say(saved)} where this model has {_say(here)}. Build the model as it "
                        "was when the checkpoint was saved."
                    )
    if "transform" not in meta:  # an older checkpoint: the transform was not recorded
        return
    saved, here = meta["transform"], describe_transform(transform)
    if saved is None or here is None:
        differs = saved is not here
    elif saved["python"] == here["python"]:
        differs = saved["code"] != here["code"]  # a renamed copy computes the same rows
    else:
        differs = saved["name"] != here["name"]  # bytecode differs between Python versions
    if differs:
        before, now = _say_transform(saved), _say_transform(here)
        raise ValueError(
            f"{where} was saved on the loader's rows after {before}, but this DataLoader has "
            f"{now}{' with other code or constants' if before == now else ''}: the rows the fit "
            "learned from would differ. Build the DataLoader with the transform it was saved with."
        )

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
adds: step count, loss history, loader position and data fingerprint, validation state.
"""

from __future__ import annotations

import json
import os

from collections.abc import Sequence

import numpy as np

from pytensor.compile.sharedvalue import SharedVariable

__all__ = ["check_variables", "read_checkpoint", "restore_variables", "write_checkpoint"]

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

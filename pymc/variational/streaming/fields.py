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
"""Named groups of columns: the streamed form of ``pm.Minibatch(X, y)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pymc.variational.streaming.rules import LabelRule

__all__ = ["Fields"]


class Fields:
    """``{"X": [columns...], "y": "label"}`` resolved against the loader's column names.

    A list of columns gives rows of shape ``(len(list),)``, a single column name rows of
    shape ``()``.

    Parameters
    ----------
    spec : dict
        Field name to a column name or a list of column names.
    column_names : list of str
        The columns of the loader's rows.
    """

    def __init__(self, spec: Mapping[str, str | Sequence[str]], column_names: Sequence[str]):
        if not isinstance(spec, Mapping) or not spec:
            raise TypeError(
                f'fields must be a dict like {{"X": ["a", "b"], "y": "label"}}, got {spec!r}'
            )
        self.column_names = list(column_names)
        #: ``{field: (column indices, shape of one row)}``
        self.index: dict[str, tuple[np.ndarray, tuple[int, ...]]] = {}
        for field, columns in spec.items():
            single = isinstance(columns, str)
            columns = [columns] if single else list(columns)
            if not columns:
                raise ValueError(f"field {field!r} lists no column; give it one or more")
            missing = [c for c in columns if c not in self.column_names]
            if missing:
                raise KeyError(
                    f"field {field!r} names column {missing[0]!r}, which the rows do not have; "
                    f"available columns: {self.column_names}"
                )
            index = np.array([self.column_names.index(c) for c in columns])
            self.index[field] = (index, () if single else (len(columns),))

    def __iter__(self):
        return iter(self.index)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Fields)
            and self.shapes == other.shapes
            and all(np.array_equal(self.index[f][0], other.index[f][0]) for f in self.index)
        )

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of one row of each field."""
        return {name: shape for name, (_, shape) in self.index.items()}

    def dtypes(self, dtype) -> dict[str, np.dtype]:
        """Each field's dtype, from one dtype or a dict of them."""
        return {f: np.dtype(dtype[f] if isinstance(dtype, Mapping) else dtype) for f in self.index}

    @staticmethod
    def window_dtype(dtypes: Mapping[str, np.dtype]) -> np.dtype:
        """The dtype windows are produced in: the fields' float dtype when they share one,
        float64 otherwise (integer fields are cast when split)."""
        kinds = set(dtypes.values())
        only = next(iter(kinds))
        return only if len(kinds) == 1 and only.kind == "f" else np.dtype(np.float64)

    def whole_columns(self, dtypes: Mapping[str, np.dtype]) -> dict[int, LabelRule]:
        """Columns that integer fields need as whole numbers."""
        rules = {}
        for field, dtype in dtypes.items():
            if dtype.kind in "iub":
                for j in self.index[field][0]:
                    rules[int(j)] = LabelRule(f"field {field!r} (an {dtype} placeholder)")
        return rules

    def split(self, rows: np.ndarray, dtypes: Mapping[str, np.dtype]) -> dict[str, np.ndarray]:
        """Per-field copies of a window (whole numbers were checked per block): the window
        may be shared memory that the producer writes again."""
        out = {}
        for field, (index, shape) in self.index.items():
            part = rows[:, index[0]] if shape == () else rows[:, index]
            # A copy always: the column of a one-column window is already contiguous, and
            # np.ascontiguousarray handed out a view of it.
            out[field] = np.array(part, dtype=dtypes[field], order="C")
        return out

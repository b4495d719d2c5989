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
"""Arrow record batches as numeric numpy blocks: type checks, categorical codes, decoding.

Shared by the file sources (parquet and CSV), which both decode through pyarrow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "check_numeric",
    "encode_categories",
    "level_array",
    "record_batch_to_array",
    "resolve_categorical",
    "sorted_levels",
]


def check_numeric(field: pa.Field, where: str) -> None:
    """Refuse a column that is not integer, float, decimal or boolean, naming it and the fix."""
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal)
    if any(is_numeric(t) for is_numeric in numeric):
        return  # decimals are read as float64
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        fix = f"Read it as integer codes with categorical=[{field.name!r}]"
    elif pa.types.is_temporal(t):
        fix = "Store it as a number (e.g. days or seconds since an origin)"
    else:
        fix = "Store it as numeric columns"
    raise TypeError(
        f"{where}: column {field.name!r} has type {field.type}, but only numeric (integer, "
        f"float, decimal, boolean) columns can be streamed into a model. {fix}, or leave it "
        "out with columns=[...]."
    )


def resolve_categorical(
    categorical: Sequence[str] | dict[str, Sequence] | None, columns: list[str], where: str
) -> dict[str, list | None]:
    """``{column: given levels or None}`` from a list of names or a dict of levels."""
    if categorical is None:
        return {}
    if isinstance(categorical, str):
        raise TypeError(
            f"categorical must be a list of column names or a dict of levels, not {categorical!r}"
        )
    spec = dict(categorical) if isinstance(categorical, dict) else dict.fromkeys(categorical)
    for name, levels in spec.items():
        if name not in columns:
            raise KeyError(
                f"categorical column {name!r} is not among the columns read from {where}: {columns}"
            )
        if levels is not None:
            levels = list(levels)
            if len(set(levels)) != len(levels):
                raise ValueError(f"the levels given for categorical column {name!r} repeat a value")
            spec[name] = levels
    return spec


def sorted_levels(values: set) -> list:
    """Levels in a stable order: sorted, or sorted by their text when types are mixed."""
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def level_array(levels: list, name: str, where: str, type_: pa.DataType | None = None) -> pa.Array:
    """The levels of categorical column ``name`` as an Arrow array (None: missing values)."""
    try:
        return pa.array(levels, type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as err:
        kinds = sorted({type(v).__name__ for v in levels if v is not None})
        raise TypeError(
            f"the levels of categorical column {name!r} of {where} mix types ({', '.join(kinds)}): "
            f"{err}. Give levels of one type, that of the column in every file"
        ) from None


def encode_categories(
    batch: pa.RecordBatch, levels: dict[str, pa.Array], where: str
) -> pa.RecordBatch:
    """Replace categorical columns by their integer codes (as float64).

    A missing value takes the code of the level None when the levels hold one, and is an
    error otherwise: here, before a transform could fill it in as if it were a level.

    A dictionary-encoded column (parquet strings read with ``read_dictionary``) is coded
    through its dictionary: each distinct value is looked up once, not once per row
    (4-5x faster on 2,000 levels).
    """
    if not levels:
        return batch
    arrays = list(batch.columns)
    for name, value_set in levels.items():
        j = batch.schema.get_field_index(name)
        column = arrays[j]
        if pa.types.is_dictionary(column.type):
            dictionary = column.dictionary
            if dictionary.type != value_set.type:
                dictionary = _cast_levels(dictionary, value_set.type, name, where)
            codes = pc.take(pc.index_in(dictionary, value_set=value_set), column.indices)
            if value_set.null_count and column.null_count:  # the dictionary holds no null
                codes = pc.fill_null(codes, value_set.to_pylist().index(None))
        else:
            if column.type != value_set.type:
                column = _cast_levels(column, value_set.type, name, where)
            codes = pc.index_in(column, value_set=value_set)  # null matches a None level
        if codes.null_count:
            plain = column.dictionary_decode() if pa.types.is_dictionary(column.type) else column
            unknown = pc.filter(plain, pc.and_(pc.is_null(codes), pc.is_valid(plain)))
            if len(unknown):
                raise ValueError(
                    f"{where}: categorical column {name!r} holds the level {unknown[0].as_py()!r}, "
                    f"which is not among its {len(value_set)} known levels; pass "
                    f"categorical={{{name!r}: [...every level...]}}"
                )
            first = int(pc.index(pc.is_null(codes), True).as_py())
            raise ValueError(
                f"{where}: categorical column {name!r} has {codes.null_count} missing value(s) in "
                f"a block of {len(codes)} rows, first at row {first} of the block. Give them a "
                "level of their own: "
                f"categorical={{{name!r}: [*source.categories[{name!r}], None]}} codes them as "
                "one more level; or fill them in before writing the data, or drop those rows."
            )
        arrays[j] = codes.cast(pa.float64())
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _cast_levels(column, to: pa.DataType, name: str, where: str):
    """``column`` cast to the type of its levels, or an error naming both types."""
    try:
        return column.cast(to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ValueError(
            f"{where}: categorical column {name!r} has type {column.type}, but its levels are "
            f"of type {to}; give levels of the column's type"
        ) from None


def record_batch_to_array(batch: pa.RecordBatch, dtype: np.dtype | type) -> np.ndarray:
    """Decode Arrow columns into one C-ordered 2-D array of ``dtype``; nulls become NaN."""
    dtype = np.dtype(dtype)
    cols = batch.columns
    if cols and dtype.kind == "f" and all(c.type == cols[0].type for c in cols):
        if pa.types.is_floating(cols[0].type) or pa.types.is_integer(cols[0].type):
            # One GIL-free call that writes the row-major matrix directly.
            out = np.asarray(batch.to_tensor(null_to_nan=True, row_major=True))
            return out if out.dtype == dtype else out.astype(dtype)
    out = np.empty((batch.num_rows, len(cols)), dtype=dtype)
    for j, col in enumerate(cols):
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_decimal(col.type):
            col = col.cast(pa.float64())
        if col.null_count and dtype.kind == "f":
            col = col.cast(pa.float64()).fill_null(np.nan)
        out[:, j] = col.to_numpy(zero_copy_only=False)
    return out

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
"""Bad input gets a clear error, raised early, naming the culprit and what was expected.

Each case builds its bad input under ``tmp_path`` and states the exception and a regex
the message must match. The regexes are conjunctions of lookaheads (see :func:`all_of`),
so they require every piece (file, column, line, argument, variable, expectation)
without prescribing the order of the sentence.
"""

import re
import uuid

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pymc as pm

from pymc.variational.streaming import (
    CSVSource,
    DataLoader,
    Trainer,
    array_source,
    column_stats,
    csv_source,
    parquet_source,
)


def all_of(*parts: str) -> str:
    """A regex matching a message that contains every one of ``parts``, in any order."""
    return "(?s)" + "".join(f"(?=.*{p})" for p in parts)


def name(filename: str) -> str:
    return re.escape(filename)


# ----------------------------------------------------------------------------- data helpers


def write_parquet(path, **columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def good_parquet(path, n=1000):
    return write_parquet(path, a=np.arange(n, dtype=float), b=np.arange(n, dtype=float))


def csv_with_bad_line(tmp_path, bad: str, n: int = 1000, line: int = 801):
    """A two-column CSV whose file line ``line`` (the header is line 1) is ``bad``."""
    lines = ["a,b"] + [f"{i},{i}.5" for i in range(n)]
    lines[line - 1] = bad
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def epoch(loader):
    return list(loader.iter_epoch(0))


def labels_with_fraction(n=100, at=0, value=0.5):
    labels = np.zeros(n)
    labels[at] = value
    return labels


def int_label_model(batch_size, total_size):
    """Logistic regression on fields X (float) and y (an int32 placeholder)."""
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=2)
        X = pm.Data("X", np.zeros((batch_size, 1)))
        y = pm.Data("y", np.zeros(batch_size, dtype="int32"))
        pm.Bernoulli("click", logit_p=b[0] + X[:, 0] * b[1], observed=y, total_size=total_size)
    return model


def bernoulli_cast_model(batch_size, total_size):
    """Logistic regression whose Bernoulli casts the float column 1 of pm.Data 'batch'."""
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=2)
        batch = pm.Data("batch", np.zeros((batch_size, 2)))
        pm.Bernoulli(
            "click", logit_p=b[0] + batch[:, 0] * b[1], observed=batch[:, 1], total_size=total_size
        )
    return model


def normal_model(loader, total_size="loader", placeholder_shape=None):
    """y ~ N(mu, 1) observed through pm.Data 'batch' (as in test_trainer.py)."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        y = pm.Data("batch", np.zeros(placeholder_shape or loader.batch_size))
        size = len(loader) if total_size == "loader" else total_size
        pm.Normal("y", mu, 1.0, observed=y, total_size=size)
    return model


def normal_loader(n=100, batch_size=10, columns=1):
    rng = np.random.default_rng(0)
    if columns == 1:
        return DataLoader(
            array_source(rng.normal(size=n), columns=["y"]),
            batch_size=batch_size,
            sample_shape=(),
            seed=0,
        )
    return DataLoader(array_source(rng.normal(size=(n, columns))), batch_size=batch_size, seed=0)


# ----------------------------------------------------------------------------- actions
# Each takes tmp_path and does the one thing that must fail.


def missing_parquet_path(tmp_path):
    parquet_source(tmp_path / "nope.parquet")


def missing_csv_path(tmp_path):
    csv_source(tmp_path / "nope.csv")


def missing_url(tmp_path):
    parquet_source(f"memory://{tmp_path.name}/nope/data.parquet")


def empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    parquet_source(tmp_path / "empty")


def glob_matching_nothing(tmp_path):
    good_parquet(tmp_path / "data" / "part-0.parquet")
    parquet_source(str(tmp_path / "data" / "train-*.parquet"))


def schema_column_missing_in_second_file(tmp_path):
    write_parquet(tmp_path / "d" / "part-0.parquet", a=[1.0, 2.0], b=[3.0, 4.0])
    write_parquet(tmp_path / "d" / "part-1.parquet", a=[1.0, 2.0])
    parquet_source(tmp_path / "d")


def schema_type_differs_in_second_file(tmp_path):
    write_parquet(tmp_path / "d" / "part-0.parquet", a=[1.0, 2.0], b=[3.0, 4.0])
    write_parquet(tmp_path / "d" / "part-1.parquet", a=[1.0, 2.0], b=["x", "y"])
    parquet_source(tmp_path / "d")


def unknown_parquet_column(tmp_path):
    parquet_source(good_parquet(tmp_path / "data.parquet"), columns=["a", "zz"])


def unknown_csv_column(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,4\n")
    csv_source(tmp_path / "data.csv", columns=["a", "zz"])


def unknown_field_column(tmp_path):
    loader_source = parquet_source(good_parquet(tmp_path / "data.parquet"))
    DataLoader(loader_source, batch_size=10, fields={"X": ["a", "zz"], "y": "b"})


def truncated_parquet(tmp_path):
    good = good_parquet(tmp_path / "d" / "part-0.parquet")
    data = good.read_bytes()
    (tmp_path / "d" / "part-1.parquet").write_bytes(data[: len(data) // 2])
    parquet_source(tmp_path / "d")


def corrupt_parquet(tmp_path):
    good_parquet(tmp_path / "d" / "part-0.parquet")
    (tmp_path / "d" / "part-1.parquet").write_bytes(np.random.default_rng(0).bytes(4000))
    parquet_source(tmp_path / "d")


def corrupt_parquet_url(tmp_path):
    fs = fsspec.filesystem("memory")
    root = f"memory://{tmp_path.name}-{uuid.uuid4().hex}"
    with fs.open(f"{root}/data/part-0.parquet", "wb") as fh:
        fh.write(np.random.default_rng(0).bytes(4000))
    try:
        parquet_source(f"{root}/data/")
    finally:
        fs.rm(root, recursive=True)


def parquet_truncated_after_loader_was_built(tmp_path):
    path = good_parquet(tmp_path / "data.parquet")
    loader = DataLoader(parquet_source(path), batch_size=10)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    epoch(loader)


def string_column_parquet(tmp_path):
    path = write_parquet(tmp_path / "data.parquet", a=[1.0, 2.0], s=["x", "y"])
    parquet_source(path, columns=["a", "s"])


def string_column_csv(tmp_path):
    (tmp_path / "data.csv").write_text("a,s\n1,x\n2,y\n")
    epoch(DataLoader(csv_source(tmp_path / "data.csv", columns=["a", "s"]), batch_size=1))


def csv_row_too_many_fields(tmp_path):
    epoch(DataLoader(csv_source(csv_with_bad_line(tmp_path, "5,6,7")), batch_size=10))


def csv_row_too_few_fields(tmp_path):
    epoch(DataLoader(csv_source(csv_with_bad_line(tmp_path, "5")), batch_size=10))


def csv_text_in_numeric_column(tmp_path):
    epoch(DataLoader(csv_source(csv_with_bad_line(tmp_path, "5,abc")), batch_size=10))


def csv_comment_above_the_header(tmp_path):
    (tmp_path / "data.csv").write_text("# exported 2026-11-30\na,b\n1,2\n3,4\n")
    csv_source(tmp_path / "data.csv")


def csv_comment_line(tmp_path):
    epoch(DataLoader(csv_source(csv_with_bad_line(tmp_path, "# a note")), batch_size=10))


def csv_comment_line_with_a_comma(tmp_path):
    epoch(DataLoader(csv_source(csv_with_bad_line(tmp_path, "# a note, more")), batch_size=10))


def csv_text_in_numeric_column_small_blocks(tmp_path):
    # Many parser blocks: the line number must count from the start of the file, not of the block.
    epoch(
        DataLoader(CSVSource(csv_with_bad_line(tmp_path, "5,abc"), block_bytes=256), batch_size=10)
    )


def nan_in_parquet(tmp_path):
    good_parquet(tmp_path / "d" / "part-0.parquet")
    write_parquet(tmp_path / "d" / "part-1.parquet", a=[1.0, 2.0, 3.0], b=[1.0, np.nan, 3.0])
    epoch(DataLoader(parquet_source(tmp_path / "d"), batch_size=10))


def nan_made_by_a_transform_that_adds_a_column(tmp_path):
    path = write_parquet(tmp_path / "data.parquet", a=[1.0, 2.0, 3.0], b=[1.0, 0.0, 3.0])
    log_b = lambda x: np.column_stack([x, np.log(x[:, 1]) - np.log(x[:, 1])])  # noqa: E731
    with np.errstate(all="ignore"):
        epoch(DataLoader(parquet_source(path), batch_size=3, transform=log_b, sample_shape=(3,)))


def null_in_parquet(tmp_path):
    path = write_parquet(
        tmp_path / "data.parquet", a=[1.0, 2.0, 3.0], b=pa.array([1, None, 3], pa.int64())
    )
    epoch(DataLoader(parquet_source(path), batch_size=10))


def inf_in_csv(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,inf\n")
    epoch(DataLoader(csv_source(tmp_path / "data.csv"), batch_size=2))


def wrong_csv_row_count(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,4\n")
    epoch(DataLoader(csv_source(tmp_path / "data.csv", num_rows=3), batch_size=2))


def path_of_wrong_type(tmp_path):
    parquet_source(None)


def empty_field(tmp_path):
    DataLoader(array_source(np.zeros((4, 2)), columns=["a", "b"]), batch_size=2, fields={"X": []})


def len_without_total_size(tmp_path):
    len(DataLoader(array_source(np.zeros((4, 2))), batch_size=2, total_size=None))


def standardize_a_column_without_values(tmp_path):
    X = np.column_stack([np.full(4, np.nan), np.arange(4.0)])
    column_stats(array_source(X, columns=["a", "b"])).standardizer()


def sample_shape_mismatch(tmp_path):
    DataLoader(
        parquet_source(good_parquet(tmp_path / "data.parquet")), batch_size=10, sample_shape=(3,)
    )


def sample_shape_not_a_shape(tmp_path):
    DataLoader(
        parquet_source(good_parquet(tmp_path / "data.parquet")), batch_size=10, sample_shape="ab"
    )


def transform_changes_width(tmp_path):
    DataLoader(
        parquet_source(good_parquet(tmp_path / "data.parquet")),
        batch_size=10,
        sample_shape=(2,),
        transform=lambda x: x[:, :1],
    )


def transform_changes_rows(tmp_path):
    DataLoader(
        parquet_source(good_parquet(tmp_path / "data.parquet")),
        batch_size=10,
        transform=lambda x: x[:-1],
    )


def loader_with(**kwargs):
    def action(tmp_path):
        DataLoader(parquet_source(good_parquet(tmp_path / "data.parquet")), **kwargs)

    return action


def trainer_with(**kwargs):
    def action(tmp_path):
        loader = normal_loader()
        Trainer(dataloader=loader, model=normal_model(loader), progressbar=False, **kwargs)

    return action


def placeholder_trailing_shape_differs(tmp_path):
    loader = normal_loader(columns=3)
    Trainer(
        dataloader=loader, model=normal_model(loader, placeholder_shape=(10, 4)), progressbar=False
    )


def int_placeholder_gets_fraction(tmp_path):
    data = np.column_stack([np.zeros(100), labels_with_fraction()])
    loader = DataLoader(
        array_source(data, columns=["x", "label"]),
        batch_size=10,
        fields={"X": ["x"], "y": "label"},
        seed=0,
    )
    Trainer(
        dataloader=loader, data_name=None, model=int_label_model(10, len(loader)), progressbar=False
    ).fit(2)


def int_placeholder_gets_fraction_from_a_file(tmp_path):
    write_parquet(tmp_path / "d" / "part-0.parquet", x=np.zeros(50), label=np.zeros(50))
    write_parquet(
        tmp_path / "d" / "part-1.parquet", x=np.zeros(50), label=labels_with_fraction(50, at=5)
    )
    loader = DataLoader(
        parquet_source(tmp_path / "d"),
        batch_size=10,
        fields={"X": ["x"], "y": "label"},
        shuffle=False,
    )
    Trainer(
        dataloader=loader, data_name=None, model=int_label_model(10, len(loader)), progressbar=False
    ).fit(2)


def int_placeholder_without_fields(tmp_path):
    path = write_parquet(tmp_path / "labels.parquet", label=labels_with_fraction())
    loader = DataLoader(parquet_source(path), batch_size=10, sample_shape=())
    with pm.Model() as model:
        p = pm.Beta("p", 1.0, 1.0)
        pm.Bernoulli(
            "click",
            p=p,
            observed=pm.Data("batch", np.zeros(10, dtype="int32")),
            total_size=len(loader),
        )
    Trainer(dataloader=loader, model=model, progressbar=False).fit(2)


def bernoulli_casts_fraction_in_first_batch(tmp_path):
    data = np.column_stack([np.zeros(100), labels_with_fraction(at=0)])
    loader = DataLoader(array_source(data, columns=["x", "label"]), batch_size=10, shuffle=False)
    Trainer(dataloader=loader, model=bernoulli_cast_model(10, len(loader)), progressbar=False).fit(
        2
    )


def bernoulli_casts_fraction_in_later_batch(tmp_path):
    # Row 55 is in batch 5: the fraction must not be silently truncated to 0 there either.
    data = np.column_stack([np.zeros(100), labels_with_fraction(at=55)])
    loader = DataLoader(array_source(data, columns=["x", "label"]), batch_size=10, shuffle=False)
    Trainer(dataloader=loader, model=bernoulli_cast_model(10, len(loader)), progressbar=False).fit(
        20
    )


# ----------------------------------------------------------------------------- cases

NOT_FOUND = "no such file or directory"
NOT_PARQUET = "is not a readable parquet file"
NON_FINITE = r"holds 1 NaN value\(s\)"
WHOLE = "holds non-whole numbers"

CASES = [
    # --- paths
    pytest.param(
        missing_parquet_path,
        FileNotFoundError,
        all_of(name("nope.parquet"), NOT_FOUND),
        id="missing-parquet-path",
    ),
    pytest.param(
        missing_csv_path,
        FileNotFoundError,
        all_of(name("nope.csv"), NOT_FOUND),
        id="missing-csv-path",
    ),
    pytest.param(
        missing_url,
        FileNotFoundError,
        all_of("memory://", name("nope/data.parquet"), NOT_FOUND),
        id="missing-url",
    ),
    pytest.param(
        empty_directory,
        FileNotFoundError,
        all_of("empty'", r"holds no \.parquet"),
        id="empty-directory",
    ),
    pytest.param(
        glob_matching_nothing,
        FileNotFoundError,
        all_of(name("train-*.parquet"), "matches no file"),
        id="glob-matches-nothing",
    ),
    # --- schemas and columns
    pytest.param(
        schema_column_missing_in_second_file,
        KeyError,
        all_of(
            name("part-1.parquet"),
            "no column 'b'",
            name("part-0.parquet"),
            r"available columns: \['a'\]",
        ),
        id="schema-column-missing-in-second-file",
    ),
    pytest.param(
        schema_type_differs_in_second_file,
        TypeError,
        all_of(name("part-1.parquet"), "column 'b'", "string", "numeric"),
        id="schema-type-differs-in-second-file",
    ),
    pytest.param(
        unknown_parquet_column,
        KeyError,
        all_of(name("data.parquet"), "no column 'zz'", r"available columns: \['a', 'b'\]"),
        id="unknown-parquet-column",
    ),
    pytest.param(
        unknown_csv_column,
        KeyError,
        all_of(name("data.csv"), "no column 'zz'", r"available columns: \['a', 'b'\]"),
        id="unknown-csv-column",
    ),
    pytest.param(
        unknown_field_column,
        KeyError,
        all_of("field 'X'", "'zz'", r"available columns: \['a', 'b'\]"),
        id="unknown-field-column",
    ),
    # --- damaged files
    pytest.param(
        truncated_parquet,
        ValueError,
        all_of(name("part-1.parquet"), NOT_PARQUET),
        id="truncated-parquet",
    ),
    pytest.param(
        corrupt_parquet,
        ValueError,
        all_of(name("part-1.parquet"), NOT_PARQUET),
        id="corrupt-parquet",
    ),
    pytest.param(
        corrupt_parquet_url,
        ValueError,
        all_of("memory://", name("data/part-0.parquet"), NOT_PARQUET),
        id="corrupt-parquet-url",
    ),
    pytest.param(
        parquet_truncated_after_loader_was_built,
        ValueError,
        all_of(name("data.parquet"), "changed since the source was built", "bytes then"),
        id="parquet-truncated-after-loader-was-built",
    ),
    # --- non-numeric data
    pytest.param(
        string_column_parquet,
        TypeError,
        all_of(name("data.parquet"), "column 's'", "string", "numeric"),
        id="string-column-parquet",
    ),
    pytest.param(
        string_column_csv,
        ValueError,
        all_of(name("data.csv"), "column 's'", "must hold numbers"),
        id="string-column-csv",
    ),
    pytest.param(
        csv_row_too_many_fields,
        ValueError,
        all_of(
            name("rows.csv"),
            r"Row #801\b",
            "Expected 2 columns",
            "got 3",
        ),
        id="csv-row-too-many-fields",
    ),
    pytest.param(
        csv_row_too_few_fields,
        ValueError,
        all_of(
            name("rows.csv"),
            r"Row #801\b",
            "Expected 2 columns",
            "got 1",
        ),
        id="csv-row-too-few-fields",
    ),
    pytest.param(
        csv_text_in_numeric_column,
        ValueError,
        all_of(name("rows.csv"), r"line 801, column 'b'", "'abc'", "must hold numbers"),
        id="csv-text-in-numeric-column",
    ),
    pytest.param(
        csv_text_in_numeric_column_small_blocks,
        ValueError,
        all_of(name("rows.csv"), r"line 801, column 'b'", "'abc'", "must hold numbers"),
        id="csv-text-in-numeric-column-small-blocks",
    ),
    pytest.param(
        csv_comment_above_the_header,
        ValueError,
        all_of(
            name("data.csv"),
            "line 1:",
            r"lines starting with '#' look like comments",
            "remove them",
        ),
        id="csv-comment-above-the-header",
    ),
    pytest.param(
        csv_comment_line,
        ValueError,
        all_of(
            name("rows.csv"),
            r"Row #801\b",
            "got 1: # a note",
            r"lines starting with '#' look like comments",
            "remove them",
        ),
        id="csv-comment-line",
    ),
    pytest.param(
        csv_comment_line_with_a_comma,
        ValueError,
        all_of(
            name("rows.csv"),
            "line 801, column 'a'",
            "'# a note'",
            r"lines starting with '#' look like comments",
            "remove them",
        ),
        id="csv-comment-line-with-a-comma",
    ),
    # --- non-finite values
    pytest.param(
        nan_in_parquet,
        ValueError,
        all_of(name("part-1.parquet"), "column 'b'", NON_FINITE),
        id="nan-in-parquet",
    ),
    pytest.param(
        nan_made_by_a_transform_that_adds_a_column,
        ValueError,
        all_of(
            name("data.parquet"),
            'column "#2 of the transform\'s output"',
            NON_FINITE,
            r"first at row 1 of the shard \(after the transform: check it too\)",
        ),
        id="nan-made-by-a-transform",
    ),
    pytest.param(
        null_in_parquet,
        ValueError,
        all_of(name("data.parquet"), "column 'b'", NON_FINITE),
        id="null-in-parquet",
    ),
    pytest.param(
        inf_in_csv, ValueError, all_of(name("data.csv"), "column 'b'", r"\binf\b"), id="inf-in-csv"
    ),
    pytest.param(
        wrong_csv_row_count,
        ValueError,
        all_of(
            name("data.csv"), "announced 3 rows but 2 were read", r"num_rows=\.\.\.\)\) is wrong"
        ),
        id="csv-num-rows-wrong",
    ),
    pytest.param(
        path_of_wrong_type,
        TypeError,
        "parquet_source takes a path .* got None",
        id="path-of-wrong-type",
    ),
    pytest.param(empty_field, ValueError, "field 'X' lists no column", id="empty-field"),
    pytest.param(
        len_without_total_size,
        TypeError,
        r"len\(loader\) is unknown: total_size=None was given",
        id="len-without-total-size",
    ),
    pytest.param(
        standardize_a_column_without_values,
        ValueError,
        "column 'a' holds no value \\(every row is missing\\)",
        id="standardize-empty-column",
    ),
    # --- shapes and transforms
    pytest.param(
        sample_shape_mismatch,
        ValueError,
        all_of(r"sample_shape=\(3,\)", "3 values per row", "2 columns", r"\['a', 'b'\]"),
        id="sample-shape-mismatch",
    ),
    pytest.param(
        sample_shape_not_a_shape,
        TypeError,
        all_of("sample_shape", "'ab'", "tuple of ints"),
        id="sample-shape-not-a-shape",
    ),
    pytest.param(
        transform_changes_width,
        ValueError,
        all_of(r"sample_shape=\(2,\)", "1 columns", "after the transform"),
        id="transform-changes-width",
    ),
    pytest.param(
        transform_changes_rows,
        ValueError,
        all_of(
            "transform", name("data.parquet"), r"\(64, 2\)", r"\(63, 2\)", "same number of rows"
        ),
        id="transform-changes-rows",
    ),
    # --- loader arguments
    pytest.param(
        loader_with(batch_size=0),
        ValueError,
        all_of("batch_size", "positive integer", "got 0"),
        id="batch-size-zero",
    ),
    pytest.param(
        loader_with(batch_size=-3),
        ValueError,
        all_of("batch_size", "positive integer", "got -3"),
        id="batch-size-negative",
    ),
    pytest.param(
        loader_with(batch_size=10, total_size="all"),
        ValueError,
        all_of("total_size", '"auto"', "int", "None", "'all'"),
        id="total-size-string",
    ),
    pytest.param(
        loader_with(batch_size=10, total_size=10.5),
        ValueError,
        all_of("total_size", '"auto"', "int", "None", r"10\.5"),
        id="total-size-float",
    ),
    pytest.param(
        # PyTorch's habit: len(loader) is a number of batches. The posterior came out
        # 32 times too wide, silently.
        loader_with(batch_size=10, total_size=100),
        ValueError,
        all_of("total_size=100", "smaller than the 1,000 rows", "not a number of batches"),
        id="total-size-a-number-of-batches",
    ),
    # --- trainer and model
    pytest.param(
        trainer_with(data_name="nope"),
        ValueError,
        all_of("data_name='nope'", "not a pm.Data", r"\['batch'\]"),
        id="data-name-not-in-model",
    ),
    pytest.param(
        trainer_with(data_name="mu"),
        ValueError,
        all_of("data_name='mu'", "not a pm.Data", r"\['batch'\]"),
        id="data-name-is-a-random-variable",
    ),
    pytest.param(
        placeholder_trailing_shape_differs,
        ValueError,
        all_of("pm.Data 'batch'", r"\(10, 4\)", r"\(10, 3\)", "sample_shape"),
        id="placeholder-trailing-shape-differs",
    ),
    pytest.param(
        trainer_with(method="nuts"),
        ValueError,
        all_of("method", "'nuts'", "'advi'", "'fullrank_advi'", "'svgd'", "'asvgd'"),
        id="unknown-method",
    ),
    # --- labels that are not whole numbers
    pytest.param(
        int_placeholder_gets_fraction,
        ValueError,
        all_of("'y'", "column 'label'", WHOLE, "int32"),
        id="int-placeholder-gets-fraction",
    ),
    pytest.param(
        int_placeholder_gets_fraction_from_a_file,
        ValueError,
        all_of(name("part-1.parquet"), "column 'label'", WHOLE, "int32"),
        id="int-placeholder-gets-fraction-names-the-file",
    ),
    pytest.param(
        int_placeholder_without_fields,
        ValueError,
        all_of(name("labels.parquet"), "column 'label'", WHOLE, "int32"),
        id="int-placeholder-without-fields",
    ),
    pytest.param(
        bernoulli_casts_fraction_in_first_batch,
        ValueError,
        all_of("observed variable 'click'", "pm.Data 'batch'", WHOLE),
        id="bernoulli-casts-fraction-in-first-batch",
    ),
    pytest.param(
        bernoulli_casts_fraction_in_later_batch,
        ValueError,
        all_of("observed variable 'click'", "pm.Data 'batch'", WHOLE),
        id="bernoulli-casts-fraction-in-later-batch",
    ),
]


@pytest.mark.parametrize("action, error, match", CASES)
def test_bad_input_raises_a_clear_error(tmp_path, action, error, match):
    with pytest.raises(error, match=match):
        action(tmp_path)


@pytest.mark.parametrize(
    "total_size, match",
    [
        pytest.param(
            None,
            all_of("observed variable 'y'", "no total_size", r"len\(loader\) \(= 100\)"),
            id="no-total-size",
        ),
        pytest.param(
            99,
            all_of("observed variable 'y'", "total_size=99", r"len\(loader\)=100"),
            id="wrong-total-size",
        ),
    ],
)
def test_total_size_not_matching_the_loader_warns(total_size, match):
    loader = normal_loader(n=100)
    with pytest.warns(UserWarning, match=match):
        Trainer(
            dataloader=loader, model=normal_model(loader, total_size=total_size), progressbar=False
        )

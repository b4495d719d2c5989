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
import importlib.util

from pathlib import Path

import numpy as np
import pytest

EXAMPLE = (
    Path(__file__).resolve().parents[3] / "docs" / "source" / "examples" / "streaming_criteo.py"
)


def test_gallery_example_runs_and_agrees(capsys):
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("streaming_criteo", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(rows=200_000, steps=4000)
    means = result["means"]
    assert np.corrcoef(means["streaming"], means["scikit-learn"])[0, 1] > 0.999
    assert np.abs(means["streaming"] - means["scikit-learn"]).max() < 0.15
    assert np.abs(result["groups_estimate"] - result["groups_truth"]).max() < 0.15
    printed = capsys.readouterr().out
    assert (
        "len(loader) = 200,000 rows" in printed
        and "streaming vs scikit-learn: correlation" in printed
    )


HF_EXAMPLE = EXAMPLE.with_name("streaming_hf.py")


def test_hub_example_runs_against_the_local_hub(hub, criteo_tsv):
    # The real Criteo sample rows, as a dataset repository on the (local) Hub: three
    # parquet files written with pyarrow's defaults, counts with their missing values.
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from glm_reference import glm_reference

    names = ["label"] + [f"I{i}" for i in range(1, 14)]
    frame = pd.read_csv(criteo_tsv, sep="\t", header=None, usecols=range(14), names=names)
    folder = hub.root / "datasets" / "pymc-devs" / "criteo-clicks-sample" / "main" / "data"
    folder.mkdir(parents=True)
    for k, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        pq.write_table(
            pa.Table.from_pandas(frame.iloc[part], preserve_index=False),
            folder / f"part-{k}.parquet",
        )
    spec = importlib.util.spec_from_file_location("streaming_hf", HF_EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(steps=12_000)
    assert result["rows"] == 6435
    # The fit agrees with the exact answer on the same rows, in posterior sd.
    counts = frame[names[1:]].to_numpy(dtype=float)
    X = np.log1p(np.clip(np.nan_to_num(counts, nan=0.0), 0.0, None))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    mean_error, sd_error = glm_reference(lambda: [(X, frame["label"].to_numpy(float))]).errors(
        result["mean"], result["sd"]
    )
    assert mean_error < 0.25 and sd_error < 0.10, (mean_error, sd_error)
    assert abs(result["predicted"].mean() - frame["label"].mean()) < 0.01
    assert len(result["predicted"]) == 6435

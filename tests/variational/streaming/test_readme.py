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
"""Every README snippet runs as written, copied into one file in order, on small data."""

import re
import shutil
import subprocess
import sys

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

README = Path(__file__).resolve().parents[3] / "README.md"
FEATURES = [f"I{i}" for i in range(1, 14)]


def python_snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def click_table(n, seed, label=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 13)).astype(np.float32)
    columns = {name: x[:, j] for j, name in enumerate(FEATURES)}
    if label:
        logit = -2.0 + x[:, :3] @ np.array([0.5, -0.4, 0.3])
        columns["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return pa.table(columns)


def write(folder: Path, table: pa.Table, files: int = 2) -> None:
    """As pyarrow writes files by default (snappy, dictionary pages)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(np.array_split(np.arange(table.num_rows), files)):
        pq.write_table(table.take(part), folder / f"part-{k}.parquet")


def test_every_readme_snippet_runs_as_written(tmp_path, hub, criteo_tsv):
    snippets = python_snippets()
    assert len(snippets) >= 2 and "Trainer(" in snippets[0]
    # The data the snippets name, small.
    write(tmp_path / "criteo", click_table(30_000, 0))
    write(tmp_path / "criteo-new", click_table(3_000, 1, label=False))
    write(tmp_path / "criteo-held-out", click_table(3_000, 2))
    rng = np.random.default_rng(3)
    counties = np.array([f"county_{k}" for k in range(7)])[rng.integers(0, 7, 5000)]
    write(
        tmp_path / "radon",
        pa.table({"county": counties, "x": rng.normal(size=5000), "y": rng.normal(size=5000)}),
    )
    shutil.copy(criteo_tsv, tmp_path / "criteo_dac_sample.tsv")
    names = ["label", *FEATURES]
    frame = pd.read_csv(criteo_tsv, sep="\t", header=None, usecols=range(14), names=names)
    write(
        hub.root / "datasets" / "pymc-devs" / "criteo-clicks-sample" / "main" / "data",
        pa.Table.from_pandas(frame, preserve_index=False),
        3,
    )
    script = tmp_path / "readme.py"
    script.write_text("\n".join(snippets) + "\nprint('README snippets ran')\n")
    # HF_ENDPOINT (the local Hub) and the row cache directory come from conftest.py.
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "README snippets ran" in run.stdout
    predictions = pq.read_table(tmp_path / "click-probabilities.parquet")
    assert predictions.num_rows == 3_000 and predictions.column_names == ["click", "click_sd"]
    assert (tmp_path / "fit.npz").exists()

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

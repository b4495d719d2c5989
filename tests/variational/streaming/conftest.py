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
"""Fixtures shared by the streaming tests."""

from pathlib import Path

import pytest

#: Real Criteo click-log rows, kept beside this repository (see shared/data/README.md).
CRITEO_TSV = (
    Path(__file__).resolve().parents[3].parent / "shared" / "data" / "criteo_dac_sample.tsv"
)
CRITEO_NAMES = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]


@pytest.fixture(scope="session")
def criteo_tsv() -> Path:
    """The real Criteo sample. Its absence is a failure, not a skip: this repository's CI
    always has it, and tests that silently skip prove nothing."""
    if not CRITEO_TSV.exists():
        pytest.fail(f"the real Criteo sample is missing: expected it at {CRITEO_TSV}")
    return CRITEO_TSV

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
import pytest


@pytest.fixture(autouse=True)
def row_cache_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own empty default row cache (``cache="auto"``), never the
    user's ``~/.cache``; tests that count reads would otherwise depend on each other."""
    directory = tmp_path_factory.mktemp("row-cache")
    monkeypatch.setenv("PYMC_STREAMING_CACHE", str(directory))
    return directory

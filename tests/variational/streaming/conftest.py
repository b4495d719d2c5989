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

import os
import socket
import tempfile

from pathlib import Path

import pytest

# The loopback Hugging Face Hub (hub_server.py) is reached through the client's documented
# setting, HF_ENDPOINT, which huggingface_hub reads once, when its constants are first
# imported: so it is set here, before any test imports it, on a port chosen now. No token
# or cache of the developer's is used, and nothing is sent to huggingface.co.
with socket.socket() as _probe:
    _probe.bind(("127.0.0.1", 0))
    HUB_PORT = _probe.getsockname()[1]
HUB_URL = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_ENDPOINT"] = HUB_URL
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="hf-home-")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for _name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
    os.environ.pop(_name, None)

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


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """A loopback Hugging Face Hub in its own process, at HF_ENDPOINT. Repositories are
    directories under ``hub.root`` (see hub_server.py), read from disk on every request."""
    from hub_server import HubProcess

    root = tmp_path_factory.mktemp("hub")
    with HubProcess(str(root), "--port", str(HUB_PORT)) as process:
        process.root = root
        yield process


@pytest.fixture(autouse=True)
def row_cache_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own empty default row cache (``cache="auto"``), never the
    user's ``~/.cache``; tests that count reads would otherwise depend on each other."""
    directory = tmp_path_factory.mktemp("row-cache")
    monkeypatch.setenv("PYMC_STREAMING_CACHE", str(directory))
    return directory

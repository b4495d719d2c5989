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
"""The package's structure: lint clean, one-way imports, modules of one job."""

import ast
import subprocess
import sys

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "pymc" / "variational" / "streaming"
PREFIX = "pymc.variational.streaming."
# A module that grows past this has two jobs; split it (see docs/source/architecture.rst).
MAX_LINES = 550


def package_imports() -> dict[str, set[str]]:
    """``{module: package modules it imports at run time}`` (``TYPE_CHECKING`` blocks and
    imports inside functions, which run on first use, are left out)."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
                imported.add(node.module.removeprefix(PREFIX))
            elif isinstance(node, ast.Import):
                imported.update(
                    a.name.removeprefix(PREFIX) for a in node.names if a.name.startswith(PREFIX)
                )
        graph[path.stem] = imported
    return graph


def test_imports_flow_one_way():
    graph = package_imports()
    assert "dataloader" in graph["trainer"] and "prefetch" in graph["dataloader"]
    visiting, done = [], set()

    def visit(module):
        if module in visiting:
            cycle = [*visiting[visiting.index(module) :], module]
            pytest.fail(f"import cycle: {' -> '.join(cycle)}")
        if module in done:
            return
        visiting.append(module)
        for other in graph.get(module, ()):
            visit(other)
        visiting.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_no_module_outgrows_one_job():
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert max(sizes.values()) <= MAX_LINES, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_ruff_finds_nothing():
    # PyMC's rule set plus SLF001 (no private access across modules, tests included).
    targets = ["pymc", "tests", "benchmarks", "docs/source"]
    check = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-2000:]
    style = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert style.returncode == 0, style.stdout[-4000:] + style.stderr[-2000:]

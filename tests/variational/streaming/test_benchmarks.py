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
"""The README's main job runs, and says what it measured.

The benchmarks are not tests: their figures are quoted from runs on a quiet machine.
This only runs ``benchmarks/criteo.py`` on a small data set, as the README's first
command runs it on 1M rows, and checks what it reports.
"""

import json
import os
import subprocess
import sys

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_main_job_runs_and_reports_against_the_exact_answer(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # data generated here
    out = tmp_path / "criteo.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "criteo.py"),
            "--rows",
            "50000",
            "--steps",
            "10000",
            "--no-progress",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[PASS] streaming: every mean within 0.25 posterior sd" in run.stdout, run.stdout[-3000:]
    result = json.loads(out.read_text())
    assert result["rows"] == 50_000 and result["steps"] == 10_000 and result["passed"]
    streaming, minibatch = result["fits"]["streaming"], result["fits"]["minibatch"]
    assert streaming["mean_error_sd"] < 0.25 and streaming["sd_error"] < 0.10
    # pm.fit with a constant Adam ends far from the answer: the job shows the difference.
    assert minibatch["mean_error_sd"] > streaming["mean_error_sd"]
    assert streaming["steps_per_second"] > 0 and minibatch["peak_rss_mb"] > 0

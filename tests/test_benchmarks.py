"""The GPU check script runs its steps end to end (tiny model on the CPU; timings are not checked)."""

import re
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.parametrize("family", ["llava_video", "internvl"])
def test_gpu_pipeline_script_runs_and_engine_matches_reference(tmp_path, family):
    res = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/gpu_pipeline.py"),
            "--tiny",
            "--skip-engine-benchmark",
            "--family",
            family,
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    m = re.search(r"RESULT pipeline_speedup=([\d.]+) max_diff=([\d.e+-]+)", res.stdout)
    assert m, res.stdout[-2000:]
    assert float(m.group(2)) < 1e-2  # percentage points: fast engine == reference method

"""The benchmarks run end to end in the fast tier (so they cannot rot unseen): each prints its RESULT
line, and the engine equals the reference method there; timings are printed, never checked."""

import re
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.parametrize("backend", ["sdpa", "flex"])
def test_knockout_speed_quick_prints_its_result(backend):
    """Both backends a GPU run times against each other (flex runs uncompiled on the CPU)."""
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/knockout_speed.py"), "--quick", "--backend", backend],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    m = re.search(r"RESULT speedup=([\d.]+) speedup_no_crossframe=([\d.]+) max_diff=([\d.e+-]+)", res.stdout)
    assert m, res.stdout[-2000:]
    assert float(m.group(3)) < 1e-4  # relative change, as a fraction: fast engine == reference method
    for family in ("cross_frame", "vql_to_ql", "question_and_options_to_last", "vq_to_true_opt"):
        assert re.search(rf"{family}\s+\d+ conditions", res.stdout), family
    assert f"engine backend {backend}" in res.stdout


@pytest.mark.parametrize(
    "family",
    [
        "llava_video",
        "internvl",
        "llava_next_video",
        "llava_onevision",
        "internvl_hf",
        "qwen2_5_vl",
        "qwen3_vl",
    ],
)
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


def test_long_video_quick_prints_its_table_and_result():
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/long_video.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    m = re.search(r"RESULT .*held_over_n2_8=([\d.]+) max_diff=([\d.e+-]+) longest_n=(\d+)", res.stdout)
    assert m, res.stdout[-2000:]
    assert 0 < float(m.group(1)) <= 1.0  # one bit per (query, key) pair at most, per distinct knockout
    assert float(m.group(2)) < 1e-5  # the engine equals the reference where that runs
    for workload in ("cross_frame", "vql_to_ql", "pathway", "probes", "reference"):
        assert len(re.findall(rf"^{workload}\s+\d+\s+\d+\s+[\d.]+", res.stdout, re.M)) == 3, workload

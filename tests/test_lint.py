"""The repository's own workflow passes `snakemake --lint` and its three dry-runs, as CI runs them."""

import subprocess
import sys

import pytest
from conftest import REPO


def run_snakemake(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(REPO), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_the_workflow_passes_snakemakes_linter():
    res = run_snakemake("--lint")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


@pytest.mark.parametrize(
    "extra",
    [[], ["--config", "setting=paper"], ["--config", "setting=today"], ["--profile", "slurm"]],
    ids=["default", "paper", "today", "slurm"],
)
def test_the_dry_runs_plan(extra):
    res = run_snakemake("-n", "--nolock", "--quiet", "rules", *extra)
    assert res.returncode == 0, res.stderr[-3000:]

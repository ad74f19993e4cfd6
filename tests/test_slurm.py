"""`snakemake --profile slurm` on a real one-node Slurm cluster (.ci/slurm-cluster.sh starts one):
every job goes through sbatch, and the outputs equal the local run's."""

import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import REPO, snakemake_cmd, tiny_config
from test_workflow import experiment_table

pytestmark = pytest.mark.slow


def cluster_reason() -> str | None:
    """Why the test cannot run here, or None."""
    if shutil.which("sbatch") is None:
        return (
            "no Slurm here: run `.ci/slurm-cluster.sh up` as root (installs slurm-wlm + munge, "
            "starts a one-node cluster)"
        )
    res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if res.returncode != 0 or not re.search(r"idle|mixed|allocated", res.stdout):
        state = res.stdout.strip() or res.stderr.strip()
        return f"Slurm is installed but no node is up (sinfo: {state}); `.ci/slurm-cluster.sh up`"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "the Slurm executor plugin is missing: pip install -e '.[slurm]'"
    return None


def slurm_cmd(workdir, *args: str) -> list[str]:
    """`snakemake --profile slurm` in `workdir`, as typed from the repository root, plus the status
    options of a cluster without accounting (no sacct: poll squeue) and short polling intervals."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "slurm",
        "--directory",
        str(workdir),
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "2",
        *args,
    ]


@pytest.mark.skipif(cluster_reason() is not None, reason=str(cluster_reason()))
def test_the_slurm_profile_runs_the_workflow_through_sbatch(tmp_path, finished_run):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    cmd = slurm_cmd(tmp_path)
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]

    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", log)
    rules = set(re.findall(r"rule (\w+):", log))
    assert {"cache_features", "knockout", "fig2_cross_frame", "extract_frames"} <= rules
    assert len(job_ids) >= 20  # every job of the reduced run went through sbatch
    shown = subprocess.run(["scontrol", "show", "job", job_ids[-1]], capture_output=True, text=True).stdout
    assert "JobState=COMPLETED" in shown and str(tmp_path) in shown

    for fam in ["cross_frame", "vql_to_ql"]:
        rel = experiment_table(tmp_path, "synthetic", "toy-video", fam).relative_to(tmp_path)
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / rel), pd.read_parquet(finished_run / rel))
    for name in ["fig2_cross_frame.csv", "fig3_vql_to_ql.csv", "accuracy.csv"]:
        assert (tmp_path / "figures" / name).read_bytes() == (finished_run / "figures" / name).read_bytes()


@pytest.mark.skipif(cluster_reason() is not None, reason=str(cluster_reason()))
def test_a_job_cancelled_at_its_time_limit_is_named_and_a_longer_runtime_finishes_it(tmp_path):
    """A knockout job of the dense-mask reference on 192 questions runs about three minutes here; with the
    model's `runtime: 1` Slurm cancels it at one. The run names the job and Slurm's TIMEOUT, leaves no
    table, and a rerun with `runtime: 10` writes the table a local run writes."""
    cfg = tiny_config()
    cfg["datasets"]["synthetic"]["generate"]["n_per_task"] = 192
    cfg["knockout"].update(engine="reference", random_control=False)
    cfg["models"]["toy-video"]["runtime"] = 1
    target = "results/synthetic/toy-video/knockout/vql_to_ql/center-w3/action_sequence/1of1.parquet"
    once = ("--retries", "0", "--notemp")  # the profile's retry would resubmit a timed-out job as is
    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    for d in (slurm_dir, local_dir):
        d.mkdir()
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))

    res = subprocess.run(slurm_cmd(slurm_dir, *once, target), cwd=REPO, capture_output=True, text=True)
    log = res.stdout + res.stderr
    assert res.returncode != 0, log[-4000:]
    assert re.search(r"Error in rule knockout", log), log[-4000:]
    assert "TIMEOUT" in log and "vql_to_ql" in log, log[-4000:]
    assert not (slurm_dir / target).exists()

    cfg["models"]["toy-video"]["runtime"] = 10
    (slurm_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = subprocess.run(slurm_cmd(slurm_dir, *once, target), cwd=REPO, capture_output=True, text=True)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert "cache_features" not in set(re.findall(r"rule (\w+):", log))  # finished jobs are not rerun

    res = subprocess.run(snakemake_cmd(local_dir, "--notemp", target), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]
    assert (slurm_dir / target).read_bytes() == (local_dir / target).read_bytes()

"""Resumability: SIGKILL the workflow in the middle of its knockout jobs and run it again. Finished
shards are kept as they are, the interrupted one is redone, and the results equal an uninterrupted run."""

import base64
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from conftest import REPO, snakemake, tiny_config
from test_workflow import experiment_table

pytestmark = pytest.mark.slow


def shards(work):
    """Knockout outputs of both models: toy-video 2 experiments x 2 tasks x 2 parts, toy-image 2 tasks."""
    return sorted((work / "results/synthetic").glob("*/knockout/*/*/*/*.parquet"))


def log_of(work, shard):
    """The job log of a knockout shard: logs/knockout/<dataset>/<model>/<experiment>/.../<part>.log."""
    dataset, model, _, *rest = shard.relative_to(work / "results").parts
    return work.joinpath("logs/knockout", dataset, model, *rest).with_suffix(".log")


def incomplete(work) -> set:
    """Outputs Snakemake had not yet recorded as finished (its markers: base64 of the path)."""
    root = work / ".snakemake/incomplete"
    names = ["".join(m.relative_to(root).parts) for m in root.rglob("*") if m.is_file()]
    return {work / base64.urlsafe_b64decode(n).decode() for n in names}


def test_a_killed_run_resumes_without_losing_or_redoing_work(tmp_path, finished_run):
    cfg = tiny_config()
    cfg["models"]["toy-video"]["chunks"] = 2
    # the first two experiments and their figures only: 10 knockout shards in all
    cfg["runs"][0]["experiments"] = ["cross_frame", "vql_to_ql"]
    for fig in ["fig7_question_options_to_last", "fig8_vq_to_true_option", "figS_failure_cases"]:
        del cfg["figures"][fig]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--cores",
        "1",
    ]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 900
        while len(shards(tmp_path)) < 4 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the job it is running
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]
    interrupted = incomplete(tmp_path)
    # a shard's job log is rewritten when the shard is computed (the shards themselves are temporary)
    done = {p: log_of(tmp_path, p).stat().st_mtime_ns for p in shards(tmp_path) if p not in interrupted}
    redo = {p: log_of(tmp_path, p).stat().st_mtime_ns for p in shards(tmp_path) if p in interrupted}
    assert 3 <= len(done) < 10

    assert snakemake(tmp_path, "--unlock").returncode == 0  # the killed run's lock
    res = snakemake(tmp_path)
    assert res.returncode == 0, res.stderr[-4000:]
    assert {p: log_of(tmp_path, p).stat().st_mtime_ns for p in done} == done  # finished: not recomputed
    assert all(log_of(tmp_path, p).stat().st_mtime_ns != m for p, m in redo.items())  # unconfirmed: redone
    assert (res.stdout + res.stderr).count("rule knockout:") == 10 - len(done)
    assert shards(tmp_path) == []  # gathered, the temporary shards are gone

    for fam in ["cross_frame", "vql_to_ql"]:  # equal to the uninterrupted run in one part per task
        got = pd.read_parquet(experiment_table(tmp_path, "synthetic", "toy-video", fam))
        want = pd.read_parquet(experiment_table(finished_run, "synthetic", "toy-video", fam))
        pd.testing.assert_frame_equal(got, want)
    for name in ["fig2_cross_frame.csv", "fig3_vql_to_ql.csv", "accuracy.csv"]:
        assert (tmp_path / "figures" / name).read_bytes() == (finished_run / "figures" / name).read_bytes()

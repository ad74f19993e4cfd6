"""Resumability: SIGKILL the workflow in the middle of its knockout jobs and run it again. Finished
shards are kept as they are, the interrupted one is redone, and the results equal an uninterrupted run."""

import base64
import os
import shutil
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml
from conftest import snakemake, snakemake_cmd, tiny_config
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
    for fig in ["fig7_question_options_to_last", "fig8_vq_to_true_option", "figS_failure_cases", "curves"]:
        del cfg["figures"][fig]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = snakemake_cmd(tmp_path, cores=1)
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


def kill_when(cmd: list[str], log_path, ready) -> None:
    """Run `cmd` in its own process group and SIGKILL the group once `ready()` holds."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 600
        while not ready() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log_path.read_text()[-3000:]


@pytest.mark.parametrize("stage", ["cache_features", "pathways"])
def test_a_job_killed_midway_is_redone_alone_and_the_tables_are_unchanged(tmp_path, finished_run, stage):
    """From a finished run, one stage's outputs of toy-video removed and recomputed, the run killed
    once the first task's job is done: the rerun redoes the other task only, keeps the finished one's
    files, and the tables equal the uninterrupted run's."""
    work = tmp_path / "run"
    shutil.copytree(finished_run, work, symlinks=True)
    base = work / "results/synthetic/toy-video"
    tasks = tiny_config()["datasets"]["synthetic"]["tasks"]
    if stage == "cache_features":
        targets = [base / "baseline" / f"{t}.parquet" for t in tasks]
        for t in tasks:
            for kind, ext in (("features", "pt"), ("baseline", "parquet"), ("skipped", "parquet")):
                (base / kind / f"{t}.{ext}").unlink()
    else:
        targets = [base / "pathways.parquet"]
        for table in [targets[0], *(base / "pathways").glob("*.parquet")]:
            table.unlink()

    def outputs(task):
        if stage == "cache_features":
            return [
                base / "features" / f"{task}.pt",
                *(base / k / f"{task}.parquet" for k in ("baseline", "skipped")),
            ]
        return [base / "pathways" / f"{task}.parquet"]

    def finished() -> list[str]:  # tasks whose job Snakemake has recorded as done
        marked = incomplete(work)
        return [t for t in tasks if all(p.is_file() and p not in marked for p in outputs(t))]

    args = [str(t.relative_to(work)) for t in targets]
    kill_when(snakemake_cmd(work, *args, cores=1), tmp_path / "first.log", lambda: len(finished()) >= 1)
    done = finished()
    assert 1 <= len(done) < len(tasks), done
    kept = {p: p.stat().st_mtime_ns for t in done for p in outputs(t)}
    assert snakemake(work, "--unlock").returncode == 0
    res = snakemake(work, *args)
    assert res.returncode == 0, res.stderr[-4000:]
    assert (res.stdout + res.stderr).count(f"rule {stage}:") == len(tasks) - len(done)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the finished task: not recomputed
    for t in targets:
        want = finished_run / t.relative_to(work)
        pd.testing.assert_frame_equal(pd.read_parquet(t), pd.read_parquet(want))

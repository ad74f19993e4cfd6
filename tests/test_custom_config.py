"""`setting: custom`: a user's --configfile replaces the toy setup instead of adding to it."""

import shutil

import yaml
from conftest import REPO, snakemake

OWN = {
    "setting": "custom",
    "datasets": {
        "mine": {
            "format": "tvbench",
            "root": "results/datasets/mine",
            "tasks": ["moving_direction"],
            "generate": {"n_per_task": 3, "seed": 5},
        }
    },
    "models": {
        "my-model": {
            "family": "llava_video",
            "path": str(REPO / "models/toy-video"),
            "system_prompt": "toy",
            "window": 3,
        }
    },
    "runs": [{"dataset": "mine", "models": ["my-model"], "experiments": ["vql_to_ql"]}],
    "figures": {"fig3_vql_to_ql": {"dataset": "mine", "model": "my-model"}},
}


def dry_run(tmp_path, own: dict):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(own))
    return snakemake(tmp_path, "all", "-n", "--quiet", "rules", "--configfile", str(tmp_path / "mine.yaml"))


def job_counts(stdout: str) -> dict[str, int]:
    rows = [line.split() for line in stdout.splitlines()]
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit()}


def test_custom_setting_runs_only_what_the_users_file_names(tmp_path):
    res = dry_run(tmp_path, OWN)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = job_counts(res.stdout)
    assert jobs["knockout"] == 1 and jobs["cache_features"] == 1 and jobs["fig3_vql_to_ql"] == 1
    assert "synthetic_benchmark_mine" in jobs and "synthetic_benchmark_synthetic" not in jobs
    assert "fig2_cross_frame" not in jobs  # the toy setup's figure is gone with it
    # without `setting: custom` the user's entries come on top of the toy setup
    res = dry_run(tmp_path, {**OWN, "setting": "default"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "synthetic_benchmark_synthetic" in job_counts(res.stdout)


def test_custom_setting_names_the_missing_sections(tmp_path):
    res = dry_run(tmp_path, {k: v for k, v in OWN.items() if k not in ("runs", "figures")})
    assert res.returncode != 0
    assert "missing: ['runs', 'figures']" in res.stdout + res.stderr


def test_another_familys_setting_stops_the_dry_run(tmp_path):
    own = {**OWN, "models": {"my-model": {**OWN["models"]["my-model"], "frame_ranges": "tokens"}}}
    res = dry_run(tmp_path, own)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "models.my-model" in out and "['frame_ranges'] not a setting of the llava_video family" in out


def test_a_renamed_key_is_named_with_its_new_name(tmp_path):
    own = {**OWN, "runs": [{"dataset": "mine", "models": ["my-model"], "families": ["vql_to_ql"]}]}
    res = dry_run(tmp_path, own)
    assert res.returncode != 0
    assert "`families` is now called `experiments`" in res.stdout + res.stderr

"""Knockout experiments defined in the config: the paper's are entries of the same list (one file),
a custom one runs end to end and draws its curves, a head-group sweep its layer x head map, and a
name that does not exist is refused before anything runs, with the valid choices."""

import copy

import pandas as pd
import pytest
import yaml
from conftest import REPO, snakemake

from vlmflow.knockout.spec import EXPERIMENTS, PAPER_EXPERIMENTS, Experiment, check_experiment
from vlmflow.settings import read_config


def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_the_papers_experiments_are_entries_of_one_file():
    assert set(PAPER_EXPERIMENTS) == {
        "cross_frame",
        "vql_to_ql",
        "question_and_options_to_last",
        "vq_to_true_opt",
        "vq_to_false_opt",
        "open_ended_flow",  # the appendix's open-ended flow (its inputs: prompt + answer so far)
    }
    assert "open_ended_flow" not in EXPERIMENTS  # the multiple-choice experiments' knockouts
    assert [b.name for b in PAPER_EXPERIMENTS["vql_to_ql"].blocks] == [
        "Video -> Question",
        "Video -> Last",
        "Question -> Last",
        "Last -> Last",
    ]
    assert EXPERIMENTS["cross_frame"][0].edges[0].source == "cross_frame"
    s = read_config(config())
    assert set(PAPER_EXPERIMENTS) < set(s.experiments) and {"frame_to_last", "cross_frame_heads"} <= set(
        s.experiments
    )


@pytest.mark.parametrize(
    "edges, heads, message",
    [
        ([["vidoe", "last"]], None, "unknown token group 'vidoe'; groups: all, prefix, video"),
        ([["frame[8]", "last"]], None, r"'frame\[8\]' is outside the model's video grid \(8, 3, 3\)"),
        ([["cell[0,3,0]", "last"]], None, r"'cell\[0,3,0\]' is outside the model's video grid"),
        ([["frame", "last"]], None, "frame takes 1 index"),
        ([["video", "last"]], [4], r"heads \[4\] beyond the model's 4 heads \(0..3\)"),
        ([["cross_frame", "last"]], None, "relation 'cross_frame' takes no target"),
    ],
)
def test_a_bad_name_is_refused_at_the_config_check(edges, heads, message):
    cfg = config()
    cfg["experiments"]["mine"] = {
        "blocks": [{"name": "B", "edges": edges}],
        **({"heads": heads} if heads else {}),
    }
    cfg["runs"][0]["experiments"].append("mine")
    with pytest.raises(ValueError, match=message):
        read_config(cfg)


def test_unknown_experiments_windows_and_clashing_names_are_refused():
    cfg = config()
    cfg["runs"][0]["experiments"].append("nope")
    with pytest.raises(ValueError, match=r"unknown experiment 'nope'; defined: \['cross_frame'"):
        read_config(cfg)
    cfg = config()
    cfg["models"]["toy-video"]["window"] = 99
    with pytest.raises(
        ValueError,
        match=r"models.toy-video.window: a knockout window of 99 layers is longer than "
        r"model 'toy-video' \(8 layers\)",
    ):
        read_config(cfg)
    cfg = config()
    cfg["experiments"]["cross_frame"] = copy.deepcopy(cfg["experiments"]["frame_to_last"])
    with pytest.raises(ValueError, match="are the paper's experiments"):
        read_config(cfg)
    with pytest.raises(ValueError, match="head_groups 3 does not divide the model's 4 heads"):
        check_experiment(
            Experiment.from_dict(
                "x", {"blocks": [{"name": "B", "edges": [["cross_frame"]]}], "head_groups": 3}
            ),
            4,
        )


def test_the_dry_run_names_a_bad_group(tmp_path):
    cfg = config()
    cfg["experiments"]["frame_to_last"]["blocks"][0]["edges"] = [["frames[0]", "last"]]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "experiment 'frame_to_last', block 'First frame -> Last': unknown token group 'frames[0]'" in out


def test_a_custom_experiment_and_a_head_sweep_run_end_to_end(finished_run):
    """config.yaml's own experiments, in the reduced default run: their tables follow the results
    contract, their figures are drawn from them."""
    root = finished_run / "results/synthetic/toy-video/knockout"
    mine = pd.read_parquet(next((root / "frame_to_last").glob("*.parquet")))
    assert set(mine.block) == {
        "First frame -> Last",
        "Last frame -> Last",
        "Last frame -> Question",
        *(
            f"{b} (random edges)"
            for b in ("First frame -> Last", "Last frame -> Last", "Last frame -> Question")
        ),
    }
    assert mine.heads.eq("all heads").all() and mine.rel_change.notna().all()
    heads = pd.read_parquet(next((root / "cross_frame_heads").glob("*.parquet")))
    assert set(heads.heads) == {"head 0", "head 1", "head 2", "head 3"}
    assert set(heads[~heads.control].block) == {f"No cross-frame interactions [head {h}]" for h in range(4)}
    for name in ("frame_to_last", "cross_frame_heads"):
        for ext in ("png", "pdf", "csv"):
            assert (finished_run / f"figures/{name}.{ext}").stat().st_size > 0
    table = pd.read_csv(finished_run / "figures/cross_frame_heads.csv")  # the layer x head map
    real = table[~table.control]
    assert set(real.heads) == {"head 0", "head 1", "head 2", "head 3"} and set(real.layer) == set(range(1, 9))


def test_an_empty_knockout_table_keeps_the_results_contract(tiny_adapter, tmp_path):
    """No sample of the mode (here: every sample answered right, the wrong ones asked for): the table
    has no rows but every column of the contract."""
    import numpy as np
    from conftest import synthetic_sample
    from test_features import features_job
    from test_workflow import CONTRACT

    from vlmflow.jobs import Job
    from vlmflow.provenance import Stamp
    from vlmflow.settings import model_settings
    from vlmflow.stages.features import cache_task
    from vlmflow.stages.knockout import KnockoutJob, Sweep, run_experiment

    q, f = synthetic_sample("action_sequence", 1)
    row = dict(
        sample_id="a", task="t", question=q.question, candidates=q.candidates, answer_index=q.answer_index
    )
    pd.DataFrame([dict(row, video="")]).to_parquet(tmp_path / "q.parquet")
    np.savez(tmp_path / "f.npz", frames=np.stack([f]))
    cache_task(tiny_adapter, features_job(tmp_path))
    base = pd.read_parquet(tmp_path / "base.parquet")
    base.assign(correct_base=True).to_parquet(tmp_path / "base.parquet")
    load = model_settings("tiny", dict(family="llava_video", path="tiny", window=3)).load
    stamp = Stamp("sdpa", "fast", 8, "segments", 0)
    settings = KnockoutJob(
        load, PAPER_EXPERIMENTS["cross_frame"], Sweep("center", 3, "wrong"), (0, 1), 8, True, stamp
    )
    inputs = dict(
        questions=tmp_path / "q.parquet", features=tmp_path / "feat.pt", baseline=tmp_path / "base.parquet"
    )
    run_experiment(
        tiny_adapter, Job(settings, inputs, dict(table=tmp_path / "ko.parquet"), "synthetic", "tiny", "t")
    )
    table = pd.read_parquet(tmp_path / "ko.parquet")
    assert table.empty and not set(CONTRACT) - set(table.columns)

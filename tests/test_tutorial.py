"""The tutorial (docs/tutorial.py) runs as a script and draws its figures; the Python API returns
the workflow's columns."""

import subprocess
import sys

import pandas as pd
from conftest import REPO


def test_the_tutorial_runs_and_draws_its_figures(tmp_path):
    (tmp_path / "models").symlink_to(REPO / "models")  # the tutorial reads models/toy-video
    res = subprocess.run(
        [sys.executable, str(REPO / "docs/tutorial.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "results/tutorial"
    for name in ("cross_frame", "last_frame"):
        assert (out / f"{name}.png").stat().st_size > 0 and (out / f"{name}.pdf").stat().st_size > 0
        table = pd.read_csv(out / f"{name}.csv")
        assert set(table.layer) == set(range(1, 9)) and table["mean"].notna().all()
    assert "the model answers A" in res.stdout  # the toy answers the tutorial's clip right


def test_the_api_rows_follow_the_results_contract():
    import numpy as np

    import vlmflow as vf
    from vlmflow.data import synthetic

    model = vf.load_model("llava_video", str(REPO / "models/toy-video"), system_prompt="toy")
    q = synthetic.sample_question("object_count", np.random.default_rng(3))
    frames = synthetic.render(q, synthetic.sampled_indices(q))
    c = vf.clip(model, frames, q.question, q.candidates, q.answer)
    rows = vf.sweep(model, c, "vql_to_ql", window=3, random_control=False)
    from test_workflow import CONTRACT

    assert not set(CONTRACT) - set(rows.columns)
    assert len(rows) == 4 * 8 and rows.model_id.eq(str(REPO / "models/toy-video")).all()
    assert set(rows.block) == {"Video -> Question", "Video -> Last", "Question -> Last", "Last -> Last"}
    answer, lens = vf.probe(model, c, projections=("embedding",), top_k=2)
    assert list(answer.layer) == list(range(9)) and set(lens.projection) == {"embedding"}
    kept = vf.pathway(model, c, "toy", seeds=(0, 1))
    assert (
        list(kept.setting) == ["full", "pathway", "random", "random"]
        and kept.edges_kept.iloc[1] < kept.edges_full.iloc[0]
    )


def test_the_top_level_names_are_the_apis_whatever_was_imported_before():
    """A submodule imported first (vlmflow.probes) must not hide an API function of the same stem."""
    import importlib

    import vlmflow
    from vlmflow import api

    for module in ("vlmflow.probes", "vlmflow.knockout.pathways", "vlmflow.stages.probes"):
        importlib.import_module(module)
    assert all(getattr(vlmflow, name) is getattr(api, name) for name in vlmflow.__all__)

"""A changed setting reruns exactly the jobs whose stage reads it: from a finished run, one setting
is changed at a time and a dry-run must schedule exactly the expected jobs (rule and model), no
more, no fewer. Each job's params are its stage's settings record (workflow/rules/common.smk); a
params that took in a whole config entry would schedule more than expected here."""

import re
from collections import Counter

import pytest
import yaml
from conftest import snakemake

# the reduced default run (conftest.tiny_config): 2 tasks; toy-video runs 4 experiments, the
# pathways, the probes and Fig. 6; toy-image runs cross-frame and the failure cases' sweeps
TASKS = 2
VIDEO_KNOCKOUTS = {  # experiment tables of toy-video: the paper's four and config.yaml's own two
    "cross_frame",
    "vql_to_ql",
    "question_and_options_to_last",
    "vq_to_true_opt",
    "frame_to_last",
    "cross_frame_heads",
}
CURVE_FIGURES = {
    "fig2_cross_frame",
    "fig3_vql_to_ql",
    "fig7_question_options_to_last",
    "fig8_vq_to_true_option",
    "curves_frame_to_last",
    "curves_cross_frame_heads",
}


def scheduled(workdir) -> Counter:
    """(rule, model wildcard or "") of every job a dry-run schedules, counted."""
    res = snakemake(workdir, "-n")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    jobs, rule, model = Counter(), None, ""
    for line in res.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            if rule is not None:
                jobs[(rule, model)] += 1
            rule, model = m.group(1), ""
        elif rule is not None and line.strip().startswith("wildcards:"):
            found = re.search(r"\bmodel=([^,\s]+)", line)
            model = found.group(1) if found else ""
    if rule is not None:
        jobs[(rule, model)] += 1
    jobs.pop(("all", ""), None)
    return jobs


def knockouts(model: str, experiments: int) -> Counter:
    """The knockout jobs of `experiments` tables of a model (one part per task), their gathers."""
    return Counter({("knockout", model): experiments * TASKS, ("gather_knockout", model): experiments})


PATHWAYS = Counter(
    {
        ("search_pathway", "toy-video"): 1,
        ("pathways", "toy-video"): TASKS,
        ("gather_pathways", "toy-video"): 1,
    }
)
# the paper comparison reads Figs. 2, 3 and 9 and Tables 2 and 3: it reruns with any of them
TABLE3 = Counter({("table3_effective_pathways", ""): 1, ("paper_comparison", ""): 1})
COMPARISON = Counter({("paper_comparison", ""): 1})
OPEN_FLOW = Counter({("open_ended_flow", "toy-video"): 1, ("figS_open_ended", ""): 1})  # its one task


def figures(*names) -> Counter:
    return Counter({(n, ""): 1 for n in names})


def _reorder(cfg: dict) -> dict:
    """The same config with every mapping's keys in reverse order (as a tool might write it back)."""
    if isinstance(cfg, dict):
        return {k: _reorder(cfg[k]) for k in reversed(list(cfg))}
    if isinstance(cfg, list):
        return [_reorder(x) for x in cfg]
    return cfg


def _set(path: str, value):
    def change(cfg):
        *where, key = path.split(".")
        node = cfg
        for k in where:
            node = node[k]
        node[key] = value
        return cfg

    return change


ALL_KNOCKOUTS = (
    knockouts("toy-video", len(VIDEO_KNOCKOUTS))
    + knockouts("toy-image", 1)  # its cross-frame sweep
    + knockouts("toy-image", 4)  # the failure cases: two experiments on the correct and the wrong samples
)
CASES = {
    "keys reordered": (_reorder, Counter()),
    "gpu": (_set("models.toy-video.gpu", 1), Counter()),
    "mem_mb": (_set("models.toy-video.mem_mb", 64000), Counter()),
    "runtime": (_set("models.toy-video.runtime", 600), Counter()),
    "chunks": (_set("models.toy-video.chunks", 2), Counter()),
    "attention_mb": (_set("models.toy-video.attention_mb", 64), Counter()),
    "a default spelt out": (_set("models.toy-video.dtype", "auto"), Counter()),
    # a new sweep of toy-video's knockouts, and what reads them (figures, the searched pathway)
    "window": (
        _set("models.toy-video.window", 4),
        knockouts("toy-video", len(VIDEO_KNOCKOUTS))
        + figures(*CURVE_FIGURES)
        + PATHWAYS
        + TABLE3
        + OPEN_FLOW,
    ),
    "pathway": (
        _set(
            "models.toy-video.pathway",
            dict(name="other", n_layers=8, cross_frame=[1, 3], video_question=[1, 5], question_last=[5, 8]),
        ),
        Counter({("pathways", "toy-video"): TASKS, ("gather_pathways", "toy-video"): 1}) + TABLE3,
    ),
    "probes.top_k": (
        _set("probes.top_k", 2),
        Counter({("probes", "toy-video"): TASKS})
        + figures("fig4_logit_lens_freq", "fig5_logit_lens_frames", "fig9_answer_probability")
        + COMPARISON,
    ),
    "probes.final_norm": (
        _set("probes.final_norm", False),
        Counter({("probes", "toy-video"): TASKS})
        + figures("fig4_logit_lens_freq", "fig5_logit_lens_frames", "fig9_answer_probability")
        + COMPARISON,
    ),
    "knockout.random_control": (
        _set("knockout.random_control", False),
        ALL_KNOCKOUTS + figures(*CURVE_FIGURES, "figS_failure_cases") + PATHWAYS + TABLE3,
    ),
    # one task's open-ended answer prompt: that task's answers, both models, and their tables
    "an answer prompt": (
        _set("datasets.synthetic.answer_prompts.action_sequence", "The order of the squares is then"),
        Counter({("answers", "toy-video"): 1, ("answers", "toy-image"): 1})
        + figures("accuracy_open_ended", "table2_early_cross_frame")
        + COMPARISON,
    ),
    # one experiment of the config edited: its knockouts and its figure, nothing else
    "an experiment's blocks": (
        _set(
            "experiments.frame_to_last.blocks",
            [{"name": "First frame -> Last", "edges": [["frame[0]", "last"]]}],
        ),
        knockouts("toy-video", 1) + figures("curves_frame_to_last"),
    ),
    # how the open-ended flow finds its anchors: the flow and its figure, nothing else
    "the open-ended flow's anchors": (
        _set("datasets.synthetic-open.open_ended_flow.open_tokens", 1),
        OPEN_FLOW,
    ),
    "a figure's option": (_set("figures.fig4_logit_lens_freq.bin_size", 3), figures("fig4_logit_lens_freq")),
    "a figure's plot-only option": (
        _set("figures.fig6_attention_maps.heads", "max"),
        figures("fig6_attention_maps"),
    ),
    "knockout.attention_backend": (
        _set("knockout.attention_backend", "eager"),
        ALL_KNOCKOUTS
        + figures(*CURVE_FIGURES, "figS_failure_cases")
        + PATHWAYS
        + TABLE3
        + Counter({("answers", "toy-video"): TASKS, ("answers", "toy-image"): TASKS})
        + figures("accuracy_open_ended", "table2_early_cross_frame")
        + Counter({("probes", "toy-video"): TASKS, ("attention_maps", "toy-video"): 1})
        + Counter({("skipped_samples", "toy-video"): 1})
        + figures(
            "fig4_logit_lens_freq", "fig5_logit_lens_frames", "fig6_attention_maps", "fig9_answer_probability"
        )
        + OPEN_FLOW,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_changed_setting_reruns_exactly_what_reads_it(finished_run, case):
    change, expected = CASES[case]
    config = finished_run / "config.yaml"
    original = config.read_text()
    try:
        config.write_text(yaml.safe_dump(change(yaml.safe_load(original)), sort_keys=False))
        assert scheduled(finished_run) == expected
    finally:
        config.write_text(original)

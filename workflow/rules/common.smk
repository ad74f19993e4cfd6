# Shared by all the rules: the jobs' params (their stage's settings record, from S, the settings read
# once in the Snakefile), their resources, and the paths of the tables and figures. Nothing here reads
# the raw config.
from pathlib import Path

from vlmflow.data.formats import annotation_path
from vlmflow.models.loading import check_model_path
from vlmflow.settings import TOY_TRAINED, encode, is_open_ended
from vlmflow.stages.knockout import Sweep
from vlmflow.stages.paper_comparison import FIGURES as COMPARED_FIGURES


wildcard_constraints:
    dataset="[^/]+",
    model="[^/]+",
    task="[^/]+",
    experiment="[^/]+",


def params_of(record, *args):
    """A rule's params: its stage's settings record (`record.of(S, wildcards, *args)`), as canonical
    JSON, so that a job reruns when, and only when, a setting its stage reads changed.
    """
    return lambda wc: encode(record.of(S, wc, *args))


# the resources of a model job (GPUs, 0 = CPU only with no GPU visible; memory; minutes for Slurm;
# the memory one attention call may build)
model_resources = dict(
    gpu=lambda wc: S.models[wc.model].resources.gpu,
    mem_mb=lambda wc: S.models[wc.model].resources.mem_mb,
    runtime=lambda wc: S.models[wc.model].resources.runtime,
    attention_mb=lambda wc: S.models[wc.model].resources.attention_mb,
)


def parts(model):
    """The parts a task's knockout samples are split into ("1of2", "2of2"), `chunks` of the model."""
    n = S.models[model].resources.chunks
    return [f"{i + 1}of{n}" for i in range(n)]


def _check_model_paths():
    """A misspelt local checkpoint path stops the run here, before any model job starts."""
    for name in {m for run in S.runs for m in run.models}:
        path = S.models[name].load.path
        if path not in TOY_TRAINED.values():  # written by train_toy_models
            check_model_path(name, path)


_check_model_paths()


SWEEP_PATTERN = r"(center|inverse|top_down|bottom_up)-w\d+(-(correct|wrong|all))?"


def sweep_name(model, experiment, samples=None):
    """The sweep of a model's experiment: its window style and size (the experiment's, else the
    configured style and the model's window), on the configured samples, or on `samples` (correct |
    wrong | all) as a suffix."""
    k, e = S.knockout, S.experiments[experiment]
    style, window = e.window_style or k.window_style, e.window or S.models[model].window
    return Sweep.name(style, window, samples or k.sample_mode, k.sample_mode)


def model_files(wc):
    """Local checkpoints are inputs (a changed checkpoint reruns its analyses); hub ids are not."""
    path = S.models[wc.model].load.path
    if path in TOY_TRAINED.values():
        return [f"{path}/model.safetensors"]
    p = Path(path)
    return [str(p / "config.json")] if p.is_dir() else []


def annotation(wc):
    """The task's annotation file: an input where the workflow writes it or it is on disk (a missing
    real benchmark fails in extract_frames with the path to fix, and dry-runs still work).
    """
    d = S.datasets[wc.dataset]
    path = annotation_path(d.format, d.root, wc.task)
    return [path] if d.generate is not None or Path(path).exists() else []


def dataset_tasks(dataset):
    return list(S.datasets[dataset].tasks)


def knockout_tables(dataset, model, experiments, samples=None):
    """The gathered tables of a model's experiment(s), each on its own sweep."""
    names = [experiments] if isinstance(experiments, str) else list(experiments)
    return [
        f"results/{dataset}/{model}/knockout/{e}/{sweep_name(model, e, samples)}.parquet"
        for e in names
    ]


def baseline_tables(dataset, model):
    return expand(
        "results/{dataset}/{model}/baseline/{task}.parquet",
        dataset=dataset,
        model=model,
        task=dataset_tasks(dataset),
    )


def answer_tables(dataset, models):
    return expand(
        "results/{dataset}/{model}/answers/{task}.parquet",
        dataset=dataset,
        model=models,
        task=dataset_tasks(dataset),
    )


def runs_of_models(open_ended=False):
    """(dataset, model) of every multiple-choice run, or with `open_ended` of every run of the
    open-ended flow (on an open-ended dataset), in order, each once."""
    return list(
        dict.fromkeys(
            (run.dataset, m)
            for run in S.runs
            if is_open_ended(S, run.dataset) == open_ended
            for m in run.models
        )
    )


def open_flow_tables(dataset, model, kind="table"):
    """The open-ended flow's per-task tables (kind "table") or answers ("responses")."""
    sweep = sweep_name(model, "open_ended_flow")
    where = "" if kind == "table" else "responses/"
    return expand(
        "results/{dataset}/{model}/open_ended_flow/{sweep}/{where}{task}.parquet",
        dataset=dataset,
        model=model,
        sweep=sweep,
        where=where,
        task=dataset_tasks(dataset),
    )


def open_ended_runs():
    """(dataset, model) of every run on a dataset with open-ended answer prompts."""
    return [(d, m) for d, m in runs_of_models() if S.datasets[d].answer_prompts]


def pathway_runs():
    """(dataset, model, search_on or None) of every run that evaluates pathways."""
    return [
        (run.dataset, m, run.search_on)
        for run in S.runs
        if run.pathways
        for m in run.models
    ]


def searched_pathway(wc):
    """The searched spec a (dataset, model) pathway job uses, if its run has `search_on`."""
    return [
        f"results/{search_on}/{wc.model}/pathways/searched.yaml"
        for dataset, model, search_on in pathway_runs()
        if (dataset, model) == (wc.dataset, wc.model) and search_on
    ]


def pathway_spec_file(wc):
    """The model's `pathway` when it is a spec file: an input (an edited spec reruns its jobs)."""
    value = S.models[wc.model].pathway
    return (
        [value] if isinstance(value, str) and value.endswith((".yaml", ".yml")) else []
    )


def pathway_tables():
    return [f"results/{d}/{m}/pathways.parquet" for d, m, _ in pathway_runs()]


def probe_tables(kind, fig, tasks=None):
    """A figure's probe tables (of its task, or of `tasks`)."""
    f = S.figures[fig]
    return expand(
        "results/{dataset}/{model}/probes/{kind}/{task}.parquet",
        dataset=f.dataset,
        model=f.model,
        kind=kind,
        task=tasks or [f.task],
    )


def attention_skips(dataset, model):
    """The samples Fig. 6's attention maps left out, when they are drawn for (dataset, model)."""
    f = S.figures.get("fig6_attention_maps")
    if f is None or (f.dataset, f.model) != (dataset, model):
        return []
    return [f"results/{dataset}/{model}/skipped/attention_maps/{f.task}.parquet"]


def fig_input(fig, kind):
    """The frames or questions table of a figure's task."""
    f = S.figures[fig]
    return f"results/{f.dataset}/{kind}/{f.task}" + (
        ".npz" if kind == "frames" else ".parquet"
    )


def figure_outputs(name, caption, category="Figures"):
    """A figure's PNG (in the report, with its caption), PDF and CSV of the plotted numbers."""
    return dict(
        png=report(
            f"figures/{name}.png", caption=f"../report/{caption}", category=category
        ),
        pdf=f"figures/{name}.pdf",
        csv=f"figures/{name}.csv",
    )


def all_targets():
    targets = []
    for dataset, m in runs_of_models(open_ended=True):
        targets += open_flow_tables(dataset, m) + open_flow_tables(
            dataset, m, "responses"
        )
    for run in S.runs:
        if is_open_ended(S, run.dataset):
            continue
        for m in run.models:
            targets += knockout_tables(run.dataset, m, list(run.experiments))
            targets += baseline_tables(run.dataset, m)
            targets.append(f"results/{run.dataset}/{m}/skipped.parquet")
    targets.append("figures/accuracy.csv")
    targets.append("figures/paper_comparison.csv")
    if open_ended_runs():
        targets.append("figures/accuracy_open_ended.csv")
    if pathway_runs():
        targets += expand(
            "figures/{name}.{ext}",
            name=["table3_effective_pathways", "pathways_tradeoff"],
            ext=["png", "pdf", "csv"],
        )
    for name in S.figures:
        targets += expand("figures/{name}.{ext}", name=name, ext=["png", "pdf", "csv"])
    return targets


def comparison_inputs():
    """The CSVs of the figures and tables the paper publishes numbers of, where the config draws them."""
    found = {
        short: f"figures/{name}.csv"
        for short, name in COMPARED_FIGURES.items()
        if name in S.figures
    }
    if pathway_runs():
        found["table3"] = "figures/table3_effective_pathways.csv"
    return found

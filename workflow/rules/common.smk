# The active setting, config checks the schema cannot express, and the helpers the rules share.
from pathlib import Path

import yaml
from snakemake.utils import update_config

from vlmflow.data.formats import annotation_path
from vlmflow.models.loading import check_family_settings, check_model_path

SECTIONS = ("datasets", "models", "runs", "figures")


def _own_sections():
    """`setting: custom`: the sections of the --configfile files only, none of config.yaml's toy setup."""
    own = {}
    for path in workflow.overwrite_configfiles:  # the --configfile files, in order
        with open(path) as fh:
            update_config(
                own,
                {k: v for k, v in (yaml.safe_load(fh) or {}).items() if k in SECTIONS},
            )
    missing = [s for s in SECTIONS if s not in own]
    if missing:
        raise ValueError(
            f"setting: custom takes datasets, models, runs and figures from your --configfile; "
            f"missing: {missing}"
        )
    return own


# `setting: paper`: the paper block replaces the default's sections; `custom`: your own files' do
if config.get("setting", "default") == "paper":
    config.update(config["paper"])
elif config.get("setting") == "custom":
    config.update(_own_sections())


wildcard_constraints:
    dataset="[^/]+",
    model="[^/]+",
    task="[^/]+",
    family="[^/]+",


def _check_config():
    for name, m in config["models"].items():
        check_family_settings(f"models.{name}", m)
    for name, ds in config["datasets"].items():
        if "generate" in ds and ds["format"] != "tvbench":
            raise ValueError(
                f"config datasets.{name}: the synthetic benchmark is written in tvbench format, not {ds['format']!r}"
            )
    for run in config["runs"]:
        if run["dataset"] not in config["datasets"]:
            raise ValueError(
                f"config runs: unknown dataset {run['dataset']!r}; defined: {sorted(config['datasets'])}"
            )
        for m in run["models"]:
            if m not in config["models"]:
                raise ValueError(
                    f"config runs: unknown model {m!r}; defined: {sorted(config['models'])}"
                )
        search_on = run.get("pathways", {}).get("search_on")
        for m in run["models"] if "pathways" in run else []:
            if "pathway" not in config["models"][m]:
                raise ValueError(
                    f"config runs: {m!r} evaluates pathways on {run['dataset']!r} but has no `pathway`"
                )
            if search_on and not any(
                r["dataset"] == search_on
                and m in r["models"]
                and {"cross_frame", "vql_to_ql"} <= set(r["families"])
                for r in config["runs"]
            ):
                raise ValueError(
                    f"config runs: pathways.search_on {search_on!r} for {m!r} needs a run of {m!r} "
                    f"on {search_on!r} with the families cross_frame and vql_to_ql"
                )
    for name, fig in config["figures"].items():
        named = [fig.get("model"), fig.get("image_model"), *fig.get("models", [])]
        for m in [n for v in named for n in (v if isinstance(v, list) else [v])]:
            if m is not None and m not in config["models"]:
                raise ValueError(f"config figures.{name}: unknown model {m!r}")
        if fig["dataset"] not in config["datasets"]:
            raise ValueError(
                f"config figures.{name}.dataset: unknown dataset {fig['dataset']!r}"
            )
        tasks = config["datasets"][fig["dataset"]]["tasks"]
        for task in [fig["task"]] if "task" in fig else fig.get("tasks", []):
            if task not in tasks:
                raise ValueError(
                    f"config figures.{name}: {task!r} is not a task of {fig['dataset']!r} ({tasks})"
                )


TOY_TRAINED = {
    "toy-image": "results/toy_models/toy-image",
    "toy-video": "results/toy_models/toy-video",
}


def model_cfg(name):
    m = dict(config["models"][name])
    if config.get("toy_training", {}).get("use") == "train" and name in TOY_TRAINED:
        m["path"] = TOY_TRAINED[name]
    return m


# the resources of a model job (GPUs, 0 = CPU only with no GPU visible; memory; minutes for Slurm)
model_resources = dict(
    gpu=lambda wc: model_cfg(wc.model).get("gpu", 0),
    mem_mb=lambda wc: model_cfg(wc.model).get("mem_mb", 4000),
    runtime=lambda wc: model_cfg(wc.model).get("runtime", 60),
)


def parts(model):
    n = model_cfg(model).get("chunks", 1)
    return [f"{i + 1}of{n}" for i in range(n)]


def parse_part(part):
    """ "2of4" -> (1, 4): the second of four contiguous parts of a task's samples."""
    i, n = map(int, part.split("of"))
    return (i - 1, n)


def _check_model_paths():
    """A misspelt local checkpoint path stops the run here, before any model job starts."""
    for name in {m for run in config["runs"] for m in run["models"]}:
        path = model_cfg(name)["path"]
        if path not in TOY_TRAINED.values():  # written by train_toy_models
            check_model_path(name, path)


_check_config()
_check_model_paths()


SWEEP_PATTERN = r"(center|inverse|top_down|bottom_up)-w\d+(-(correct|wrong|all))?"


def sweep_name(model, samples=None):
    """The default sweep of a model's knockouts: the configured window style and the model's window,
    on the configured samples, or on `samples` (correct | wrong | all) as a suffix."""
    name = f"{config['knockout']['window_style']}-w{model_cfg(model)['window']}"
    default = samples is None or samples == config["knockout"]["sample_mode"]
    return name if default else f"{name}-{samples}"


def parse_sweep(sweep):
    """ "center-w9" -> {"style": "center", "window": 9, "samples": None}; "center-w9-wrong" ->
    samples "wrong"."""
    samples = None
    if sweep.rsplit("-", 1)[-1] in ("correct", "wrong", "all"):
        sweep, samples = sweep.rsplit("-", 1)
    style, window = sweep.rsplit("-w", 1)
    return {"style": style, "window": int(window), "samples": samples}


def model_files(wc):
    """Local checkpoints are inputs (a changed checkpoint reruns its analyses); hub ids are not."""
    path = model_cfg(wc.model)["path"]
    if path in TOY_TRAINED.values():
        return [f"{path}/model.safetensors"]
    p = Path(path)
    return [str(p / "config.json")] if p.is_dir() else []


def dataset_cfg(wc):
    return config["datasets"][wc.dataset]


def frame_sampling(wc):
    return dataset_cfg(wc).get("frame_sampling", "segments")


def annotation(wc):
    """The task's annotation file: an input where the workflow writes it or it is on disk (a missing
    real benchmark fails in extract_frames with the path to fix, and dry-runs still work).
    """
    ds = dataset_cfg(wc)
    path = annotation_path(ds["format"], ds["root"], wc.task)
    return [path] if "generate" in ds or Path(path).exists() else []


def _fig(name):
    return config["figures"][name]


def fig2_pairs():
    """Fig. 2's (VideoLLM, image base) pairs: `model` / `image_model` name one model or a list each."""
    f = _fig("fig2_cross_frame")
    videos, images = (
        [v] if isinstance(v, str) else v for v in (f["model"], f["image_model"])
    )
    if len(videos) != len(images):
        raise ValueError(
            f"figures.fig2_cross_frame: {len(videos)} models but {len(images)} image_models; "
            "give one image base per VideoLLM"
        )
    return [list(p) for p in zip(videos, images)]


def dataset_tasks(dataset):
    return config["datasets"][dataset]["tasks"]


def knockout_tables(dataset, model, family, samples=None):
    return expand(
        "results/{dataset}/{model}/knockout/{family}/{sweep}.parquet",
        dataset=dataset,
        model=model,
        family=family,
        sweep=sweep_name(model, samples),
    )


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


def open_ended_runs():
    """(dataset, model) of every run on a dataset with open-ended answer prompts."""
    return [
        (run["dataset"], m)
        for run in config["runs"]
        if config["datasets"][run["dataset"]].get("answer_prompts")
        for m in run["models"]
    ]


def pathway_runs():
    """(dataset, model, search_on or None) of every run that evaluates pathways."""
    return [
        (run["dataset"], m, run["pathways"].get("search_on"))
        for run in config["runs"]
        if "pathways" in run
        for m in run["models"]
    ]


def searched_pathway(wc):
    """The searched spec a (dataset, model) pathway job uses, if its run has `search_on`."""
    return [
        f"results/{search_on}/{wc.model}/pathways/searched.yaml"
        for dataset, model, search_on in pathway_runs()
        if (dataset, model) == (wc.dataset, wc.model) and search_on
    ]


def pathway_tables():
    return [f"results/{d}/{m}/pathways.parquet" for d, m, _ in pathway_runs()]


def probe_tables(kind, fig, tasks=None):
    """A figure's probe tables (of its task, or of `tasks`)."""
    f = _fig(fig)
    return expand(
        "results/{dataset}/{model}/probes/{kind}/{task}.parquet",
        dataset=f["dataset"],
        model=f["model"],
        kind=kind,
        task=tasks or [f["task"]],
    )


def attention_skips(dataset, model):
    """The samples Fig. 6's attention maps left out, when they are drawn for (dataset, model)."""
    f = config["figures"].get("fig6_attention_maps")
    if f is None or (f["dataset"], f["model"]) != (dataset, model):
        return []
    return [f"results/{dataset}/{model}/skipped/attention_maps/{f['task']}.parquet"]


def fig_input(fig, kind):
    """The frames or questions table of a figure's task."""
    f = _fig(fig)
    return f"results/{f['dataset']}/{kind}/{f['task']}" + (
        ".npz" if kind == "frames" else ".parquet"
    )


def all_targets():
    targets = []
    for run in config["runs"]:
        for m in run["models"]:
            targets += knockout_tables(run["dataset"], m, run["families"])
            targets += baseline_tables(run["dataset"], m)
            targets.append(f"results/{run['dataset']}/{m}/skipped.parquet")
    targets.append("figures/accuracy.csv")
    if open_ended_runs():
        targets.append("figures/accuracy_open_ended.csv")
    if pathway_runs():
        targets += expand(
            "figures/{name}.{ext}",
            name=["table3_effective_pathways", "pathways_tradeoff"],
            ext=["png", "pdf", "csv"],
        )
    for name in config["figures"]:
        targets += expand("figures/{name}.{ext}", name=name, ext=["png", "pdf", "csv"])
    return targets

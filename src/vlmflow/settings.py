"""The workflow's settings, read once: the config, validated against the schema
(`workflow/schemas/config.schema.yaml`, where every default lives), into frozen, typed records. The
Snakefile, the rules, the scripts and the stages read these records and nothing else.

    settings = read_config(config)            # the Snakefile: S = read_config(config, configfiles)
    settings.models["toy-video"].load          # what loading the model reads
    settings.datasets["synthetic"].tasks

A record holds plain values (str, int, float, bool, None), tuples and read-only mappings, so that
`encode` writes it as canonical JSON (the same settings give the same text, whatever the order or
the spelling of defaults in the config file) and `decode` reads it back: a job's params are the
encoded record of exactly what its stage reads (`vlmflow.jobs`).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

FrozenMap = Mapping  # a read-only mapping (types.MappingProxyType), sorted by key


def frozen_map(d: Mapping | None = None) -> Mapping:
    """A read-only copy of `d`, keys sorted, nested mappings and lists frozen too."""
    return types.MappingProxyType({k: _freeze(v) for k, v in sorted((d or {}).items())})


def _freeze(v):
    if isinstance(v, Mapping):
        return frozen_map(v)
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


# --- the config's records ----------------------------------------------------------------------
@dataclass(frozen=True)
class Generate:
    """The synthetic benchmark the workflow writes for a dataset."""

    n_per_task: int
    seed: int


@dataclass(frozen=True)
class OpenEndedFlow:
    """How the open-ended flow finds its anchors: the tagger (lexicon | spacy), the spaCy model, the
    lexicon (None: the packaged one), the tags that make an anchor, how many anchors a sample needs
    (and is analysed at), and how many tokens before the last are left open."""

    tagger: str
    spacy_model: str
    anchor_pos: tuple[str, ...]
    n_anchors: int
    open_tokens: int
    lexicon: FrozenMap | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    format: str  # tvbench | tomato
    root: str
    tasks: tuple[str, ...]
    frame_sampling: str  # segments | linspace | fps1 | lvb_stride | hf_uniform | hf_centered | fps2
    max_new_tokens: int
    short_clips: str = "skip"  # skip | repeat: a clip with fewer frames than n_frames
    limit: int | None = None
    n_frames: int | None = None  # the frames per clip, where not the config's n_frames
    answer_prompts: FrozenMap = field(default_factory=frozen_map)  # task -> open-ended answer prompt
    lens_words: FrozenMap = field(default_factory=frozen_map)  # spatial | temporal -> keywords
    generate: Generate | None = None
    # the open-ended flow's prompt: a system prompt in place of the model's (None: the model's) and
    # the label before the question; an open-ended format's defaults are its benchmark's
    system_prompt: str | None = None
    question_label: str = "Question: "
    open_ended_flow: OpenEndedFlow | None = None  # how the flow finds its anchors (open-ended formats)


@dataclass(frozen=True)
class ModelLoad:
    """What loading a model reads: every setting that changes the loaded model or its prompt."""

    family: str
    path: str  # a local directory or a hub id, as configured (or the retrained toy's directory)
    system_prompt: str
    dtype: str
    device: str
    pooling_shape: tuple[int, ...] | None = None
    device_map: Any = None
    options: FrozenMap = field(default_factory=frozen_map)  # the family's own settings, defaults filled


@dataclass(frozen=True)
class Resources:
    """What a job of the model holds (scheduling only: never a job's params)."""

    gpu: int
    mem_mb: int
    runtime: int
    chunks: int
    attention_mb: int  # the working memory one attention call may build (query rows chunked to fit)


@dataclass(frozen=True)
class Model:
    name: str
    load: ModelLoad
    window: int
    resources: Resources
    pathway: Any = None  # a preset name, a spec file, an inline spec (a mapping), or None
    max_tokens: int | None = None  # a longer sample is skipped (recorded), never run


@dataclass(frozen=True)
class Run:
    dataset: str
    models: tuple[str, ...]
    experiments: tuple[str, ...]
    pathways: bool = False  # evaluate the models' effective pathways (Table 3) on this dataset
    search_on: str | None = None  # the dataset whose knockout curves the kept windows are searched on


@dataclass(frozen=True)
class Knockout:
    engine: str  # fast | reference
    attention_backend: str  # sdpa | eager | flex
    window_style: str
    sample_mode: str  # correct | wrong | all
    batch_size: int
    random_control: bool


@dataclass(frozen=True)
class Probes:
    final_norm: bool
    projections: tuple[str, ...]
    top_k: int


@dataclass(frozen=True)
class Pathways:
    seeds: tuple[int, ...]
    search_threshold: float


@dataclass(frozen=True)
class Figure:
    """One figure or table: its dataset, its models (Fig. 2: the VideoLLMs, with `image_models` their
    image bases, one each), its task(s), and its own options (bins, words, layers, ...)."""

    name: str
    dataset: str
    models: tuple[str, ...]
    image_models: tuple[str, ...] = ()
    task: str | None = None
    tasks: tuple[str, ...] | None = None
    options: FrozenMap = field(default_factory=frozen_map)

    @property
    def model(self) -> str:
        return self.models[0]


@dataclass(frozen=True)
class ToyTraining:
    use: str  # committed | train
    device: str
    recipe: FrozenMap


@dataclass(frozen=True)
class Settings:
    seed: int
    n_frames: int
    datasets: FrozenMap  # name -> Dataset
    models: FrozenMap  # name -> Model
    runs: tuple[Run, ...]
    knockout: Knockout
    probes: Probes
    pathways: Pathways
    figures: FrozenMap  # name -> Figure
    experiments: FrozenMap = field(default_factory=frozen_map)  # name -> knockout.spec.Experiment
    toy_training: ToyTraining | None = None

    @classmethod
    def from_config(cls, config: Mapping) -> "Settings":
        """The records of a validated config (snakemake's `validate` has filled in the schema's
        defaults); the checks the schema cannot express are made here, each naming the key to fix."""
        toy = config.get("toy_training")
        toy_rec = None if toy is None else ToyTraining(toy["use"], toy["device"], frozen_map(toy["recipe"]))
        s = cls(
            seed=config["seed"],
            n_frames=config["n_frames"],
            datasets=frozen_map({n: _dataset(n, d) for n, d in config["datasets"].items()}),
            models=frozen_map({n: _model(n, m, toy_rec) for n, m in config["models"].items()}),
            runs=tuple(_run(r) for r in config["runs"]),
            knockout=Knockout(**config["knockout"]),
            probes=Probes(
                config["probes"]["final_norm"],
                tuple(config["probes"]["projections"]),
                config["probes"]["top_k"],
            ),
            pathways=Pathways(
                tuple(config["pathways"]["seeds"]), float(config["pathways"]["search_threshold"])
            ),
            figures=frozen_map(_figures(config["figures"])),
            experiments=frozen_map(_experiments(config.get("experiments") or {})),
            toy_training=toy_rec,
        )
        check(s)
        return s


# the toy models that `train_toy_models` retrains, and where (toy_training.use: train)
TOY_TRAINED = {"toy-image": "results/toy_models/toy-image", "toy-video": "results/toy_models/toy-video"}
FIGURE_FIELDS = {"dataset", "model", "models", "image_model", "task", "tasks"}


def _open_ended_flow(f: Mapping) -> OpenEndedFlow:
    lexicon = f.get("lexicon")
    return OpenEndedFlow(
        f["tagger"],
        f["spacy_model"],
        tuple(f["anchor_pos"]),
        f["n_anchors"],
        f["open_tokens"],
        None if lexicon is None else frozen_map(lexicon),
    )


def _flow_system(value: str) -> str | None:
    """A dataset's `system_prompt` ("model": the model's own, None)."""
    return None if value == "model" else value


def _dataset(name: str, d: Mapping) -> Dataset:
    from vlmflow.data.formats import OPEN_ENDED_FORMATS

    gen = d.get("generate")
    open_ended = d["format"] in OPEN_ENDED_FORMATS
    return Dataset(
        name=name,
        format=d["format"],
        root=d["root"],
        tasks=tuple(d["tasks"]),
        frame_sampling=d["frame_sampling"],
        short_clips=d["short_clips"],
        max_new_tokens=d["max_new_tokens"],
        limit=d.get("limit"),
        n_frames=d.get("n_frames"),
        answer_prompts=frozen_map(d.get("answer_prompts")),
        lens_words=frozen_map(d.get("lens_words")),
        generate=None if gen is None else Generate(gen["n_per_task"], gen["seed"]),
        system_prompt=_flow_system(d.get("system_prompt", "video_chatgpt" if open_ended else "model")),
        question_label=d.get("question_label", "" if open_ended else "Question: "),
        open_ended_flow=_open_ended_flow(d["open_ended_flow"]) if open_ended else None,
    )


COMMON_MODEL_KEYS = {
    "family",
    "path",
    "system_prompt",
    "dtype",
    "device",
    "window",
    "gpu",
    "mem_mb",
    "runtime",
    "chunks",
    "attention_mb",
    "max_tokens",
    "pooling_shape",
    "device_map",
    "pathway",
}


def _model(name: str, m: Mapping, toy: ToyTraining | None) -> Model:
    from vlmflow.models import adapter_class

    own = {k: v for k, v in m.items() if k not in COMMON_MODEL_KEYS}
    options = adapter_class(m["family"]).settings_of(own, m.get("device_map"), f"config models.{name}")
    path = m["path"]
    if toy is not None and toy.use == "train" and name in TOY_TRAINED:
        path = TOY_TRAINED[name]
    load = ModelLoad(
        family=m["family"],
        path=path,
        system_prompt=m["system_prompt"],
        dtype=m["dtype"],
        device=m["device"],
        pooling_shape=None if m.get("pooling_shape") is None else tuple(m["pooling_shape"]),
        device_map=_freeze(m.get("device_map")),
        options=frozen_map(options),
    )
    resources = Resources(m["gpu"], m["mem_mb"], m["runtime"], m["chunks"], m["attention_mb"])
    return Model(name, load, m["window"], resources, _freeze(m.get("pathway")), m.get("max_tokens"))


def _run(r: Mapping) -> Run:
    p = r.get("pathways")
    return Run(
        dataset=r["dataset"],
        models=tuple(r["models"]),
        experiments=tuple(r["experiments"]),
        pathways=p is not None,
        search_on=None if p is None else p.get("search_on"),
    )


def _experiments(own: Mapping) -> dict:
    """The paper's knockout experiments and the config's own, by name."""
    from vlmflow.knockout.spec import PAPER_EXPERIMENTS, Experiment

    clash = sorted(set(own) & set(PAPER_EXPERIMENTS))
    if clash:
        raise ValueError(
            f"config experiments: {clash} are the paper's experiments (vlmflow/knockout/experiments.yaml); "
            "give yours another name"
        )
    out = dict(PAPER_EXPERIMENTS)
    for name, d in own.items():
        try:
            out[name] = Experiment.from_dict(name, plain(d))
        except ValueError as err:
            raise ValueError(f"config experiments.{name}: {err}") from None
    return out


def _figures(figures: Mapping) -> dict:
    """The figures by name: the paper's, and each of `curves` (any experiment's curves)."""
    out = {n: _figure(n, f) for n, f in figures.items() if n != "curves"}
    for name, f in (figures.get("curves") or {}).items():
        if name in out:
            raise ValueError(f"config figures.curves.{name}: the name of one of the paper's figures")
        out[name] = _figure(name, {**f, "kind": "curves"})
    return out


def _names(value) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _figure(name: str, f: Mapping) -> Figure:
    return Figure(
        name=name,
        dataset=f["dataset"],
        models=_names(f.get("model")) + _names(f.get("models")),
        image_models=_names(f.get("image_model")),
        task=f.get("task"),
        tasks=None if f.get("tasks") is None else tuple(f["tasks"]),
        options=frozen_map({k: v for k, v in f.items() if k not in FIGURE_FIELDS}),
    )


# --- reading the config ------------------------------------------------------------------------
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def read_config(config: dict, configfiles=()) -> Settings:
    """The settings of a config: a renamed key named with its new name, the config validated against
    the schema (which fills in the defaults, in place), the active sections chosen (`setting`) and
    validated again, then read into records and cross-checked."""
    from snakemake.utils import validate

    refuse_old_keys(config)
    validate(config, str(SCHEMA))
    apply_setting(config, list(configfiles))
    validate(config, str(SCHEMA))  # the sections swapped in get their defaults too
    return Settings.from_config(config)


@lru_cache
def _schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA.read_text())


def model_settings(name: str, entry: Mapping) -> Model:
    """A model's record from its config entry alone (Python use), the schema's defaults filled in."""
    props = _schema()["definitions"]["models"]["additionalProperties"]["properties"]
    return _model(name, {k: p["default"] for k, p in props.items() if "default" in p} | dict(entry), None)


# --- which sections are active -----------------------------------------------------------------
SECTIONS = ("datasets", "models", "runs", "figures")


def apply_setting(config: dict, configfiles: list) -> None:
    """`setting: paper` (or `today`): that block's sections replace the default ones; `setting: custom`: the
    sections of the --configfile files only, none of config.yaml's toy setup. In place; validate the
    config again afterwards (the swapped-in sections get their defaults)."""
    import yaml
    from snakemake.utils import update_config

    if config["setting"] in ("paper", "today"):
        config.update(config[config["setting"]])
    elif config["setting"] == "custom":
        own: dict = {}
        for path in configfiles:  # the --configfile files, in order
            with open(path) as fh:
                update_config(own, {k: v for k, v in (yaml.safe_load(fh) or {}).items() if k in SECTIONS})
        missing = [k for k in SECTIONS if k not in own]
        if missing:
            raise ValueError(
                f"setting: custom takes datasets, models, runs and figures from your --configfile; "
                f"missing: {missing}"
            )
        config.update(own)


# --- checks the schema cannot express ----------------------------------------------------------
RENAMED_KEYS = {"families": "experiments"}  # runs[] keys of earlier releases


def refuse_old_keys(config: Mapping) -> None:
    """Name the new key of a renamed one (before schema validation, whose message would not)."""
    for section in ("runs",):
        blocks = [("", config)] + [(f"{b}.", config.get(b) or {}) for b in ("paper", "today")]
        for where, runs in ((w, block.get(section)) for w, block in blocks):
            for i, run in enumerate(runs or []):
                for old, new in RENAMED_KEYS.items():
                    if isinstance(run, Mapping) and old in run:
                        raise ValueError(
                            f"config {where}{section}[{i}]: `{old}` is now called `{new}` (the knockout "
                            f"experiments to run); rename the key"
                        )


def check(s: Settings) -> None:
    """Cross-references between sections: every name a run or a figure uses is defined; what the
    models' config files say (depth, heads, video grid) bounds the windows and the experiments."""
    for i, run in enumerate(s.runs):
        where = f"config runs[{i}]"
        for e in run.experiments:
            if e not in s.experiments:
                raise ValueError(f"{where}: unknown experiment {e!r}; defined: {sorted(s.experiments)}")
        if run.dataset in s.datasets:
            _check_open_ended_run(s, run, where)
        for m in run.models if run.dataset in s.datasets else ():
            if m in s.models:
                _check_model_facts(s, m, [s.experiments[e] for e in run.experiments], where)
        if run.dataset not in s.datasets:
            raise ValueError(f"{where}: unknown dataset {run.dataset!r}; defined: {sorted(s.datasets)}")
        for m in run.models:
            if m not in s.models:
                raise ValueError(f"{where}: unknown model {m!r}; defined: {sorted(s.models)}")
        for m in run.models if run.pathways else ():
            if s.models[m].pathway is None:
                raise ValueError(f"{where}: {m!r} evaluates pathways on {run.dataset!r} but has no `pathway`")
            if run.search_on and not any(
                r.dataset == run.search_on
                and m in r.models
                and {"cross_frame", "vql_to_ql"} <= set(r.experiments)
                for r in s.runs
            ):
                raise ValueError(
                    f"{where}: pathways.search_on {run.search_on!r} for {m!r} needs a run of {m!r} on "
                    f"{run.search_on!r} with the experiments cross_frame and vql_to_ql"
                )
    for i, run in enumerate(s.runs):
        for m in run.models:
            from vlmflow.models import adapter_class

            backends = adapter_class(s.models[m].load.family).ATTENTION_BACKENDS
            if s.knockout.attention_backend not in backends:
                raise ValueError(
                    f"config knockout.attention_backend: {s.knockout.attention_backend!r} is not run by the "
                    f"{s.models[m].load.family} family of {m!r}; it runs {list(backends)}"
                )
    fig5 = s.figures.get("fig5_logit_lens_frames")
    if fig5 is not None and fig5.options["projection"] not in s.probes.projections:
        raise ValueError(
            f"config figures.fig5_logit_lens_frames.projection: {fig5.options['projection']!r} is not "
            f"computed; add it to probes.projections ({list(s.probes.projections)})"
        )
    for name, ds in s.datasets.items():
        if ds.generate is not None and ds.format not in ("tvbench", "longvideobench", "videomme", "vcgbench"):
            raise ValueError(
                f"config datasets.{name}: the synthetic benchmark is written in tvbench, longvideobench, "
                f"videomme or vcgbench format, not {ds.format!r}"
            )
    flow = s.figures.get("figS_open_ended")
    if flow is not None and flow.dataset in s.datasets and not is_open_ended(s, flow.dataset):
        raise ValueError(
            f"config figures.figS_open_ended: {flow.dataset!r} is a {s.datasets[flow.dataset].format} "
            "dataset; the open-ended flow needs an open-ended one (format vcgbench)"
        )
    for name, fig in s.figures.items():
        where = f"config figures.{name}"
        for m in fig.models + fig.image_models:
            if m not in s.models:
                raise ValueError(f"{where}: unknown model {m!r}; defined: {sorted(s.models)}")
        if fig.dataset not in s.datasets:
            raise ValueError(
                f"{where}.dataset: unknown dataset {fig.dataset!r}; defined: {sorted(s.datasets)}"
            )
        tasks = s.datasets[fig.dataset].tasks
        for task in ([fig.task] if fig.task else []) + list(fig.tasks or ()):
            if task not in tasks:
                raise ValueError(f"{where}: {task!r} is not a task of {fig.dataset!r} ({list(tasks)})")
        if fig.image_models and len(fig.image_models) != len(fig.models):
            raise ValueError(
                f"{where}: {len(fig.models)} models but {len(fig.image_models)} image_models; "
                "give one image base per VideoLLM"
            )


def is_open_ended(s: Settings, dataset: str) -> bool:
    """The dataset's records have no options (VCGBench): only the open-ended flow runs on it."""
    from vlmflow.data.formats import OPEN_ENDED_FORMATS

    return s.datasets[dataset].format in OPEN_ENDED_FORMATS


def _check_open_ended_run(s: Settings, run: Run, where: str) -> None:
    """The open-ended flow runs on open-ended datasets, and nothing else runs there."""
    if is_open_ended(s, run.dataset):
        if list(run.experiments) != ["open_ended_flow"] or run.pathways:
            raise ValueError(
                f"{where}: {run.dataset!r} is an open-ended dataset ({s.datasets[run.dataset].format}, no "
                "options): its runs take `experiments: [open_ended_flow]` and no pathways"
            )
    elif "open_ended_flow" in run.experiments:
        raise ValueError(
            f"{where}: open_ended_flow runs on open-ended datasets (format vcgbench) only, not on "
            f"{run.dataset!r} ({s.datasets[run.dataset].format})"
        )
    else:
        for name in run.experiments:
            blocks = s.experiments[name].blocks if name in s.experiments else ()
            if any("response" in (e.source, e.target) for b in blocks for e in b.edges):
                raise ValueError(
                    f"{where}: experiment {name!r} uses the group `response`, which only the open-ended "
                    "flow's inputs have (prompt + answer so far); a multiple-choice prompt has no answer"
                )


def _check_model_facts(s: Settings, name: str, experiments: list, where: str) -> None:
    """Windows within the model's depth, the experiments' groups and heads within its grid and heads,
    where its config files can be read before loading (else the job checks them when it starts)."""
    from vlmflow.knockout.spec import check_experiment
    from vlmflow.models import adapter_class

    m = s.models[name]
    facts = adapter_class(m.load.family).read_facts(m.load.path, m.load.pooling_shape)
    heads, grid = (None, None) if facts is None else (facts.n_heads, facts.grid)
    for e in experiments:
        try:
            check_experiment(e, heads, grid)
        except ValueError as err:
            raise ValueError(f"{where}, model {name!r}: {err}") from None
        key = f"experiments.{e.name}.window" if e.window else f"models.{name}.window"
        if facts is not None and (e.window or m.window) > facts.n_layers:
            raise ValueError(
                f"config {key}: a knockout window of {e.window or m.window} layers is longer than model "
                f"{name!r} ({facts.n_layers} layers); the paper uses 9 of 28-40 layers, about a third"
            )


# --- canonical JSON ----------------------------------------------------------------------------
def plain(obj):
    """A record as JSON-ready values: dataclasses and mappings as dicts, tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(x) for x in obj]
    return obj


def encode(record) -> str:
    """Canonical JSON of a record: keys sorted, no spaces; equal records give equal text."""
    return json.dumps(plain(record), sort_keys=True, separators=(",", ":"))


def decode(cls, text: str):
    """The record of type `cls` that `encode` wrote."""
    return _build(cls, json.loads(text))


def _build(tp, value):
    if value is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _build(inner[0], value) if len(inner) == 1 else _freeze(value)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(
            **{
                f.name: _build(hints[f.name], value[f.name])
                for f in dataclasses.fields(tp)
                if f.name in value
            }
        )
    if origin is tuple:
        item = args[0] if args else Any
        return tuple(_build(item, v) for v in value)
    if tp is FrozenMap or origin in (Mapping, dict) or isinstance(value, dict):
        return frozen_map(value)
    return value

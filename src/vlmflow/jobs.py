"""One job of the workflow as a record: the settings its stage reads, the files it reads and writes,
and whose it is (dataset, model, task). A rule's params are its stage's settings record, encoded
(`vlmflow.settings.encode`): built from the config's records by the record's own `of(settings,
wildcards)`, so a setting reaches a job's params only when its stage reads it. A rule script is one
call, `run_script`: the job record from `snakemake`, then the stage.

    run_script(snakemake, run_experiment, KnockoutJob)   # workflow/scripts/knockout.py

The same records run a stage from Python (tests, benchmarks), with `Job(settings, input, output, ...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmflow.settings import decode


class Files(Mapping):
    """Named files of a job (a name may hold a list), by name or attribute: `job.output.features`."""

    def __init__(self, named: Mapping | None = None):
        self._d = {k: _paths(v) for k, v in (named or {}).items()}

    def __getitem__(self, key):
        return self._d[key]

    def __getattr__(self, key):
        try:
            return self._d[key]
        except KeyError:
            raise AttributeError(f"the job has no file named {key!r}; it has {sorted(self._d)}") from None

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)

    def paths(self) -> list[Path]:
        """Every file, in order (lists flattened)."""
        return [p for v in self._d.values() for p in (v if isinstance(v, list) else [v])]


def _paths(v):
    return [Path(x) for x in v] if isinstance(v, (list, tuple)) else Path(v)


@dataclass(frozen=True)
class Job:
    settings: Any  # the stage's settings record
    input: Files = field(default_factory=Files)
    output: Files = field(default_factory=Files)
    dataset: str = ""
    model: str = ""
    task: str = ""
    threads: int = 1
    gpus: int = 0
    log: Path | None = None
    attention_mb: int | None = None  # the memory cap of one attention call (None: the engine's default)

    def __post_init__(self):  # plain mappings of names to paths are welcome (Python use)
        for name in ("input", "output"):
            if not isinstance(getattr(self, name), Files):
                object.__setattr__(self, name, Files(getattr(self, name)))

    @classmethod
    def from_snakemake(cls, sm, settings_type) -> "Job":
        """The job a rule script runs: its params' settings record and its named files (unnamed
        ones under `files`)."""
        wc = dict(sm.wildcards.items())
        return cls(
            settings=decode(settings_type, sm.params.settings),
            input=_files(sm.input),
            output=_files(sm.output),
            dataset=wc.get("dataset", ""),
            model=wc.get("model", ""),
            task=wc.get("task", ""),
            threads=sm.threads,
            gpus=int(getattr(sm.resources, "gpu", 0) or 0),
            log=Path(sm.log[0]) if sm.log else None,
            attention_mb=getattr(sm.resources, "attention_mb", None),
        )


@contextmanager
def naming(job: Job, task: str, sample_id: str):
    """Stop the job on NaN or Inf probabilities (`NonFinite`), naming the model and the sample."""
    from vlmflow.models.base import NonFinite

    try:
        yield
    except NonFinite as err:
        raise NonFinite(f"{job.model} on {job.dataset}/{task}, sample {sample_id}: {err}") from None


def peak_memory(engine=None) -> str:
    """The job's peak memory so far, for its log: the process's resident high-water mark, CUDA's
    peak allocation on a GPU, and the most mask memory `engine` held at once (alone, and with the
    float scores and masks its attention calls built beside them)."""
    import resource

    import torch

    parts = [f"process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB"]  # KiB on Linux
    if torch.cuda.is_available():
        parts.append(f"CUDA {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    if engine is not None:
        parts.append(
            f"engine masks {engine.peak_mask_bytes / 2**20:.1f} MiB "
            f"(with attention scores {engine.peak_working_bytes / 2**20:.1f} MiB)"
        )
    return "peak memory: " + ", ".join(parts)


def _files(named_list) -> Files:
    named = dict(named_list.items())
    return Files(named if named else {"files": list(named_list)})


def run_script(sm, stage: Callable, settings_type, model: bool = True) -> None:
    """Every rule script's preamble and call: the job record, this job's threads (no more), its log,
    the model loaded on the GPUs the job holds (or the CPU) when the stage takes one, then the stage:
    `stage(adapter, job)`, or `stage(job)` with `model=False`."""
    import torch

    from vlmflow.io import log_to

    job = Job.from_snakemake(sm, settings_type)
    torch.set_num_threads(job.threads)
    if job.attention_mb:
        from vlmflow.knockout import attention

        attention.set_budget_bytes(job.attention_mb * 2**20)
    with log_to(job.log):
        if not model:
            return stage(job)
        from vlmflow.models.loading import load_for_job

        return stage(load_for_job(job.settings.model, job.gpus, job.model), job)

"""Rule probes: answer probability by layer and the logit lens on video tokens, one task."""

from vlmflow.jobs import run_script
from vlmflow.stages.probes import ProbesJob, probe_task

run_script(snakemake, probe_task, ProbesJob)  # noqa: F821

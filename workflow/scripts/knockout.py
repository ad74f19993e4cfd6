"""Rule knockout: one knockout experiment on one part of a task (fast engine or the paper's method)."""

from vlmflow.jobs import run_script
from vlmflow.stages.knockout import KnockoutJob, run_experiment

run_script(snakemake, run_experiment, KnockoutJob)  # noqa: F821

"""Rules gather_*: concatenate per-task tables into one (atomically)."""

from vlmflow.jobs import run_script
from vlmflow.stages.tables import GatherJob, gather

run_script(snakemake, gather, GatherJob, model=False)  # noqa: F821

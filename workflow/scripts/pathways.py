"""Rule pathways: full model vs effective pathways vs random blocking on every sample of one task."""

from vlmflow.jobs import run_script
from vlmflow.stages.pathways import PathwaysJob, evaluate_task

run_script(snakemake, evaluate_task, PathwaysJob)  # noqa: F821

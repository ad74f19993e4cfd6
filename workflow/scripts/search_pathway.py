"""Rule search_pathway: kept windows derived from the knockout curves, written as a pathway spec."""

from vlmflow.jobs import run_script
from vlmflow.stages.pathways import SearchJob, search_task

run_script(snakemake, search_task, SearchJob, model=False)  # noqa: F821

"""Rule accuracy_open_ended: first-token accuracy and exact match of the generated answers."""

from vlmflow.jobs import run_script
from vlmflow.stages.tables import GatherJob, open_ended_table

run_script(snakemake, open_ended_table, GatherJob, model=False)  # noqa: F821

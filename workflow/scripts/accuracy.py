"""Rule accuracy_table: baseline accuracy per dataset, model and task, with chance level."""

from vlmflow.jobs import run_script
from vlmflow.stages.tables import GatherJob, accuracy_table

run_script(snakemake, accuracy_table, GatherJob, model=False)  # noqa: F821

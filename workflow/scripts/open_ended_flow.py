"""Rule open_ended_flow: the open-ended generation flow on one task."""

from vlmflow.jobs import run_script
from vlmflow.stages.open_ended_flow import OpenFlowJob, run_flow

run_script(snakemake, run_flow, OpenFlowJob)  # noqa: F821

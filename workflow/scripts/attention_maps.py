"""Rule attention_maps: attention from question words to the video, clean and cross-frame blocked."""

from vlmflow.jobs import run_script
from vlmflow.stages.probes import AttentionJob, attention_task

run_script(snakemake, attention_task, AttentionJob)  # noqa: F821

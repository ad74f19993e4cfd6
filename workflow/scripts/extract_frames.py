"""Rule extract_frames: decode the sampled frames of one task."""

from vlmflow.jobs import run_script
from vlmflow.stages.frames import FramesJob, extract_task

run_script(snakemake, extract_task, FramesJob, model=False)  # noqa: F821

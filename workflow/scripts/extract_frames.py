"""Rule extract_frames: decode the sampled frames of one task."""

from vlmflow.io import log_to
from vlmflow.stages.frames import extract_task

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    extract_task(
        sm.params.format,
        sm.params.root,
        sm.wildcards.task,
        sm.params.n_frames,
        sm.output.frames,
        sm.output.questions,
        sm.output.skipped,
        sm.params.limit,
        sm.params.sampling,
    )

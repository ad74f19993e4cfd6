"""Rule cache_features: video tokens once per sample + the baseline prediction of every sample."""

import torch

from vlmflow.io import log_to
from vlmflow.models.loading import load_for_job
from vlmflow.stages.features import cache_task

sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)  # the threads Snakemake gave this job, no more
with log_to(sm.log[0]):
    adapter = load_for_job(sm.params.model, sm.resources.gpu, sm.wildcards.model)
    cache_task(
        adapter,
        sm.wildcards.dataset,
        sm.input.questions,
        sm.input.frames,
        sm.output.features,
        sm.output.baseline,
        sm.output.skipped,
        sm.wildcards.model,
    )

"""Rule attention_maps: attention from question words to the video, clean and cross-frame blocked."""

import torch

from vlmflow.io import log_to
from vlmflow.models.loading import load_for_job
from vlmflow.stages.probes import attention_task

sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)  # the threads Snakemake gave this job, no more
with log_to(sm.log[0]):
    fig = sm.params.fig
    adapter = load_for_job(sm.params.model, sm.resources.gpu, sm.wildcards.model)
    a, b = fig["layers"]
    attention_task(
        adapter,
        dataset=sm.wildcards.dataset,
        model_name=sm.wildcards.model,
        questions_path=sm.input.questions,
        features_path=sm.input.features,
        baseline_path=sm.input.baseline,
        words=list(fig["words"]),
        layers=list(range(a, b + 1)),
        n_samples=fig.get("n_samples", 2),
        backend=sm.params.backend,
        out=sm.output.attention,
        skipped_out=sm.output.skipped,
    )

"""Rule probes: answer probability by layer and the logit lens on video tokens, one task."""

import torch

from vlmflow.io import log_to
from vlmflow.models.loading import load_for_job, model_provenance
from vlmflow.stages.probes import probe_task

sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)  # the threads Snakemake gave this job, no more
with log_to(sm.log[0]):
    p, model = sm.params.probes, sm.params.model
    adapter = load_for_job(model, sm.resources.gpu, sm.wildcards.model)
    probe_task(
        adapter,
        dataset=sm.wildcards.dataset,
        model_name=sm.wildcards.model,
        questions_path=sm.input.questions,
        features_path=sm.input.features,
        baseline_path=sm.input.baseline,
        sample_mode="correct",
        final_norm=p["final_norm"],
        projections=list(p["projections"]),
        top_k=p["top_k"],
        words=dict(sm.params.words),
        provenance=model_provenance(
            adapter, model, sm.params.knockout, sm.params.n_frames, sm.params.seed, sm.params.frame_sampling
        ),
        answer_out=sm.output.answer,
        lens_out=sm.output.lens,
    )

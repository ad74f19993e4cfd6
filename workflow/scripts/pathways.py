"""Rule pathways: full model vs effective pathways vs random blocking on every sample of one task."""

import torch

from vlmflow.io import log_to
from vlmflow.models.loading import load_for_job, model_provenance
from vlmflow.stages.pathways import evaluate_task, pathways_for

sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)  # the threads Snakemake gave this job, no more
with log_to(sm.log[0]):
    ko, model = sm.params.knockout, sm.params.model
    adapter = load_for_job(model, sm.resources.gpu, sm.wildcards.model)
    evaluate_task(
        adapter,
        dataset=sm.wildcards.dataset,
        model_name=sm.wildcards.model,
        questions_path=sm.input.questions,
        features_path=sm.input.features,
        baseline_path=sm.input.baseline,
        pathways=pathways_for(model, adapter.n_layers, sm.input.searched),
        seeds=list(sm.params.seeds),
        backend=ko["attention_backend"],
        provenance=model_provenance(
            adapter, model, ko, sm.params.n_frames, sm.params.seed, sm.params.frame_sampling
        ),
        out=sm.output[0],
    )

"""Rule answers: multiple-choice and open-ended answers before and after early cross-frame blocking."""

import torch

from vlmflow.io import log_to
from vlmflow.models.loading import load_for_job, model_provenance
from vlmflow.stages.answers import answer_task

sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)  # the threads Snakemake gave this job, no more
with log_to(sm.log[0]):
    model = sm.params.model
    adapter = load_for_job(model, sm.resources.gpu, sm.wildcards.model)
    answer_task(
        adapter,
        dataset=sm.wildcards.dataset,
        model_name=sm.wildcards.model,
        questions_path=sm.input.questions,
        features_path=sm.input.features,
        baseline_path=sm.input.baseline,
        answer_prompts=dict(sm.params.answer_prompts),
        max_new_tokens=sm.params.max_new_tokens,
        backend=sm.params.knockout["attention_backend"],
        provenance=model_provenance(
            adapter, model, sm.params.knockout, sm.params.n_frames, sm.params.seed, sm.params.frame_sampling
        ),
        out=sm.output[0],
    )

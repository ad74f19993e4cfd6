"""Rule knockout: one knockout family on one part of a task (fast engine or the paper's reference method)."""

import torch

from vlmflow.io import log_to
from vlmflow.models.loading import load_for_job, model_provenance
from vlmflow.stages.knockout import run_family

sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)  # the threads Snakemake gave this job, no more
with log_to(sm.log[0]):
    ko, model = sm.params.knockout, sm.params.model
    adapter = load_for_job(model, sm.resources.gpu, sm.wildcards.model)
    run_family(
        adapter,
        dataset=sm.wildcards.dataset,
        model_name=sm.wildcards.model,
        family=sm.wildcards.family,
        questions_path=sm.input.questions,
        features_path=sm.input.features,
        baseline_path=sm.input.baseline,
        frames_path=sm.input.frames,
        window=sm.params.sweep["window"],
        window_style=sm.params.sweep["style"],
        engine=ko["engine"],
        backend=ko["attention_backend"],
        sample_mode=sm.params.sweep["samples"] or ko["sample_mode"],
        batch_size=ko["batch_size"],
        provenance=model_provenance(
            adapter, model, ko, sm.params.n_frames, sm.params.seed, sm.params.frame_sampling
        ),
        out=sm.output[0],
        part=tuple(sm.params.part),
        random_control=ko["random_control"],
        seed=sm.params.seed,
    )

"""Rule train_toy_models: the seeded recipe that produced the committed toy checkpoints."""

import torch

from vlmflow.io import log_to
from vlmflow.stages.toy_training import train_recipe

sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)  # the threads Snakemake gave this job, no more
with log_to(sm.log[0]):
    train_recipe(
        sm.params.recipe,
        sm.params.image_dir,
        sm.params.video_dir,
        sm.params.device,
        answer_prompts=dict(sm.params.answer_prompts),
        lens_words=list(sm.params.lens_words),
    )

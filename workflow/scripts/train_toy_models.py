"""Rule train_toy_models: the seeded recipe that produced the committed toy checkpoints."""

from vlmflow.jobs import run_script
from vlmflow.stages.toy_training import ToyTrainingJob, train_recipe

run_script(snakemake, train_recipe, ToyTrainingJob, model=False)  # noqa: F821

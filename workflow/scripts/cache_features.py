"""Rule cache_features: video tokens once per sample + the baseline prediction of every sample."""

from vlmflow.jobs import run_script
from vlmflow.stages.features import FeaturesJob, cache_task

run_script(snakemake, cache_task, FeaturesJob)  # noqa: F821

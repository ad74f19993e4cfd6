"""Rule synthetic_benchmark: write the synthetic TVBench-format benchmark."""

from vlmflow.jobs import run_script
from vlmflow.stages.frames import SyntheticJob, write_synthetic

run_script(snakemake, write_synthetic, SyntheticJob, model=False)  # noqa: F821

"""Rule synthetic_benchmark: write the synthetic TVBench-format benchmark."""

from pathlib import Path

from vlmflow.data.synthetic import write_benchmark
from vlmflow.io import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    write_benchmark(Path(sm.params.root), sm.params.n_per_task, sm.params.seed, list(sm.params.tasks))

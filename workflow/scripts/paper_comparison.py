"""Rule paper_comparison: the paper's published numbers beside the run's."""

from vlmflow.jobs import run_script
from vlmflow.stages.paper_comparison import PaperComparisonJob, write_comparison

run_script(snakemake, write_comparison, PaperComparisonJob, model=False)  # noqa: F821

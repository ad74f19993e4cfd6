"""Rule answers: multiple-choice and open-ended answers before and after early cross-frame blocking."""

from vlmflow.jobs import run_script
from vlmflow.stages.answers import AnswersJob, answer_task

run_script(snakemake, answer_task, AnswersJob)  # noqa: F821

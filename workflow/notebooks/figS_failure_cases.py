# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # Failure cases
# On the samples the unmodified model answers wrongly: question parts -> last, and video / question
# -> the option the model chose (a false one), solid with 95 % bootstrap bands; the same routes on the
# correctly answered samples (where the chosen option is the true one), dotted.

# %%
import pandas as pd

from vlmflow.data.synthetic import TASK_TITLES
from vlmflow.io import log_to
from vlmflow.plots import failure_cases
from vlmflow.stages.figures import figure_job

job = figure_job(snakemake, "figS_failure_cases")  # noqa: F821  (run by the workflow's `script:` directive)
wrong = pd.concat([pd.read_parquet(p) for p in job.input.wrong], ignore_index=True)
correct = pd.concat([pd.read_parquet(p) for p in job.input.correct], ignore_index=True)

# %%
with log_to(job.log):
    table = failure_cases(
        wrong, correct, job.output.png.with_suffix(""), list(job.settings.tasks), TASK_TITLES
    )
table.groupby(["row", "samples", "route", "task"])["mean"].min()

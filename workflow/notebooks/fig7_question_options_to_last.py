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
# # Fig. 7: question parts -> last
# The non-option question, the true option and the false options are each cut off from the last
# position in a window of layers centred on each layer. Mean relative change (%) of the predicted
# answer's probability over correctly answered samples, 95 % bootstrap bands; dashed, each knockout's
# matched random-edge control (as many edges of the same rows, at random).

# %%
import pandas as pd

from vlmflow.data.synthetic import TASK_TITLES
from vlmflow.io import log_to
from vlmflow.plots import fig7_question_options_to_last
from vlmflow.stages.figures import figure_job

job = figure_job(snakemake, "fig7_question_options_to_last")  # noqa: F821  (run by the workflow's `script:` directive)
df = pd.read_parquet(job.input.files[0])

# %%
with log_to(job.log):
    table = fig7_question_options_to_last(
        df, job.output.png.with_suffix(""), list(job.settings.tasks), TASK_TITLES
    )
table.groupby(["block", "task"])["mean"].min()

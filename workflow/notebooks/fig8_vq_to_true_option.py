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
# # Fig. 8: video / question -> true option
# Video -> non-option question, non-option question -> true option and video -> true option, each
# blocked in a window of layers centred on each layer. Mean relative change (%) of the predicted
# answer's probability over correctly answered samples, 95 % bootstrap bands; dashed, the matched
# random-edge controls.

# %%
import pandas as pd

from vlmflow.data.synthetic import TASK_TITLES
from vlmflow.io import log_to
from vlmflow.plots import fig8_vq_to_true_option
from vlmflow.stages.figures import figure_job

job = figure_job(snakemake, "fig8_vq_to_true_option")  # noqa: F821  (run by the workflow's `script:` directive)
df = pd.read_parquet(job.input.files[0])

# %%
with log_to(job.log):
    table = fig8_vq_to_true_option(df, job.output.png.with_suffix(""), list(job.settings.tasks), TASK_TITLES)
table.groupby(["block", "task"])["mean"].min()

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
# # Fig. 3: cross-modal information flow
# Four knockouts, each swept over windows of layers: Video -> Question (purple), Video -> Last
# (blue), Question -> Last (orange), Last -> Last (red). Mean relative change (%) of the predicted
# answer's probability over correctly answered samples, 95 % bootstrap bands.

# %%
import pandas as pd

from vlmflow.data.synthetic import TASK_TITLES
from vlmflow.io import log_to
from vlmflow.plots import fig3_vql_to_ql
from vlmflow.stages.figures import figure_job

job = figure_job(snakemake, "fig3_vql_to_ql")  # noqa: F821  (run by the workflow's `script:` directive)
df = pd.read_parquet(job.input.files[0])

# %%
with log_to(job.log):
    table = fig3_vql_to_ql(df, job.output.png.with_suffix(""), list(job.settings.tasks), TASK_TITLES)
table.groupby(["block", "task"])["mean"].min()

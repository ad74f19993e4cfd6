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
# # Any experiment's curves
# The knockouts of one experiment of the config, each swept over windows of layers: mean relative
# change (%) of the predicted answer's probability, 95 % bootstrap bands, each block's matched
# random-edge control dashed. An experiment run once per head group draws a layer x head map.

# %%
import pandas as pd

from vlmflow.data.synthetic import TASK_TITLES
from vlmflow.io import log_to
from vlmflow.plots import experiment_curves, head_map
from vlmflow.stages.figures import figure_job

job = figure_job(snakemake)  # noqa: F821  (run by the workflow's `script:` directive)
e = job.settings.experiment
df = pd.concat([pd.read_parquet(p) for p in job.input.paths()], ignore_index=True)

# %%
with log_to(job.log):
    title = f"{e.name} ({job.settings.figure.model}): % change of the predicted answer's probability"
    draw = head_map if e.head_groups else experiment_curves
    table = draw(df, job.output.png.with_suffix(""), list(job.settings.tasks), TASK_TITLES, title)
    print(table.groupby(["task", "base" if e.head_groups else "block"])["mean"].min())
table

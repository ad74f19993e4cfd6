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
# # Fig. 9: layer-wise answer probability
# The last position's state after every layer, projected by the lm_head: the correct option's letter
# vs the mean of the other letters, correctly answered samples, 95 % bootstrap bands.

# %%
import pandas as pd

from vlmflow.data.synthetic import TASK_TITLES
from vlmflow.io import log_to
from vlmflow.plots import fig9_answer_probability
from vlmflow.stages.figures import figure_job

job = figure_job(snakemake, "fig9_answer_probability")  # noqa: F821  (run by the workflow's `script:` directive)
df = pd.concat([pd.read_parquet(p) for p in job.input.paths()], ignore_index=True)

# %%
with log_to(job.log):
    stem = job.output.png.with_suffix("")
    table = fig9_answer_probability(
        df, stem, list(job.settings.tasks), TASK_TITLES, job.settings.options["depth"]
    )
    print(table.pivot_table(index="layer" if "layer" in table else "depth", columns="option", values="mean"))

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
# # Fig. 2: cross-frame interactions
# Attention from each frame's tokens to all earlier frames' tokens is blocked in a window of layers
# centred on each layer. Curves: mean relative change (%) of the probability of the answer the
# unmodified model predicted, over correctly answered samples, with 95 % bootstrap bands;
# each VideoLLM (green, blue, ...) against its image-stage base (pink, orange, ...) where the
# figure names one.

# %%
import pandas as pd

from vlmflow.data.synthetic import TASK_TITLES
from vlmflow.io import log_to
from vlmflow.plots import fig2_cross_frame
from vlmflow.stages.figures import figure_job

job = figure_job(snakemake, "fig2_cross_frame")  # noqa: F821  (run by the workflow's `script:` directive)
fig = job.settings.figure
images = job.input.image or [None] * len(fig.models)  # no image_model: the VideoLLMs alone
pairs = [
    (pd.read_parquet(v), None if i is None else pd.read_parquet(i), (m, b))
    for v, i, m, b in zip(job.input.video, images, fig.models, fig.image_models or [None] * len(fig.models))
]

# %%
with log_to(job.log):
    table = fig2_cross_frame(
        pairs,
        job.output.png.with_suffix(""),
        list(job.settings.tasks),
        TASK_TITLES,
    )
table.groupby(["model_label", "task"])["mean"].min()

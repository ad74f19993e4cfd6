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
# # Fig. 6: attention from question words to the video
# Clean vs cross-frame attention blocked in every layer, averaged over the configured layers.

# %%
import pandas as pd

from vlmflow.io import log_to
from vlmflow.plots import fig6_attention_maps
from vlmflow.stages.figures import figure_job
from vlmflow.stages.frames import load_frames

job = figure_job(snakemake, "fig6_attention_maps")  # noqa: F821  (run by the workflow's `script:` directive)
fig = job.settings.options
att = pd.read_parquet(job.input.attention)

# %%
with log_to(job.log):
    if att.empty:
        raise ValueError(
            f"fig6: none of the words {list(fig['words'])} occurs in a correctly answered question "
            "(see skipped.parquet); choose words of the task's questions"
        )
    sid = att.sample_id.iloc[0]
    qs = pd.read_parquet(job.input.questions)
    frames = load_frames(job.input.frames, list(qs.sample_id))[list(qs.sample_id).index(sid)]
    stem = job.output.png.with_suffix("")
    table = fig6_attention_maps(att[att.sample_id == sid], frames, tuple(fig["layers"]), fig["heads"], stem)
    print(sid, table.groupby(["word", "condition"]).attention.agg(["min", "max"]))

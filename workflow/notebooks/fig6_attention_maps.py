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
from pathlib import Path

import pandas as pd

from vlmflow.io import log_to
from vlmflow.plots import fig6_attention_maps
from vlmflow.stages.frames import load_frames

sm = snakemake  # noqa: F821  (run by the workflow's `script:` directive)
fig = sm.params.fig
att = pd.read_parquet(sm.input.attention)

# %%
with log_to(sm.log[0]):
    if att.empty:
        raise ValueError(f"fig6: none of the words {fig['words']} occurs in a correctly answered question")
    sid = att.sample_id.iloc[0]
    qs = pd.read_parquet(sm.input.questions)
    frames = load_frames(sm.input.frames, list(qs.sample_id))[list(qs.sample_id).index(sid)]
    stem = Path(sm.output[0]).with_suffix("")
    table = fig6_attention_maps(
        att[att.sample_id == sid], frames, tuple(fig["layers"]), fig.get("heads", "mean"), stem
    )
    print(sid, table.groupby(["word", "condition"]).attention.agg(["min", "max"]))

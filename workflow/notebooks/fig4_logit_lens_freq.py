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
# # Fig. 4: logit lens keyword frequency
# How often the video tokens' top-1 lens token is a spatial or a temporal keyword, by layer bin.

# %%
from pathlib import Path

import pandas as pd

from vlmflow.io import log_to
from vlmflow.plots import fig4_logit_lens_freq, lens_frequency
from vlmflow.probes import layer_bins

sm = snakemake  # noqa: F821  (run by the workflow's `script:` directive)
lens = pd.read_parquet(sm.input[0])
fig = sm.params.fig

# %%
with log_to(sm.log[0]):
    bins = layer_bins(int(lens.layer.max()), fig["bin_size"])
    table = lens_frequency(lens, bins, fig["min_hits"])
    fig4_logit_lens_freq(table, bins, Path(sm.output[0]).with_suffix(""))
    print(table[table.word == "All Average"].to_string(index=False))

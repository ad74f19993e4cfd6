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
import pandas as pd

from vlmflow.io import log_to
from vlmflow.plots import fig4_logit_lens_freq, lens_frequency
from vlmflow.probes import layer_bins
from vlmflow.stages.figures import figure_job

job = figure_job(snakemake, "fig4_logit_lens_freq")  # noqa: F821  (run by the workflow's `script:` directive)
lens = pd.read_parquet(job.input.files[0])
fig = job.settings.options

# %%
with log_to(job.log):
    bins = layer_bins(int(lens.layer.max()), fig["bin_size"])
    table = lens_frequency(lens, bins, fig["min_hits"])
    fig4_logit_lens_freq(table, bins, job.output.png.with_suffix(""))
    print(table[table.word == "All Average"].to_string(index=False))

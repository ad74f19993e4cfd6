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
# # Fig. 5: the logit lens on the frames
# The keywords video tokens read as, at their (t, h, w) cells on one video's sampled frames.

# %%
import pandas as pd

from vlmflow.io import log_to
from vlmflow.plots import fig5_logit_lens_frames
from vlmflow.stages.figures import figure_job
from vlmflow.stages.frames import load_frames

job = figure_job(snakemake, "fig5_logit_lens_frames")  # noqa: F821  (run by the workflow's `script:` directive)
fig = job.settings.options
lens = pd.read_parquet(job.input.lens)
lens = lens[lens.projection == fig["projection"]]
samples = list(dict.fromkeys(lens.sample_id))

# %%
with log_to(job.log):
    choice = fig["sample"]
    if choice == "most_hits":  # the video whose tokens read as keywords most often (top-1, any layer)
        top1 = lens[lens["rank"] == 0]
        hits = (top1.spatial_word.notna() | top1.temporal_word.notna()).groupby(top1.sample_id).sum()
        sid = hits.idxmax()
    elif choice < len(samples):
        sid = samples[choice]
    else:
        raise ValueError(f"fig5: sample {choice} asked, {len(samples)} correctly answered in the task")
    qs = pd.read_parquet(job.input.questions)
    frames = load_frames(job.input.frames, list(qs.sample_id))[list(qs.sample_id).index(sid)]
    bins = [tuple(b) for b in fig["bins"]]
    table = fig5_logit_lens_frames(lens[lens.sample_id == sid], frames, bins, job.output.png.with_suffix(""))
    print(sid, table.groupby(["bin", "kind"]).size())

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
# # The open-ended generation flow
# The model answers freely; at the first, second and third anchor word of its answer (the paper:
# verbs), five knockouts are swept over windows of layers: Video -> Question, Video -> Non-last
# response, Video -> Last, Question -> Last, Non-last response -> Last. Mean relative change (%) of the
# anchor's probability, 95 % bootstrap bands: the paper's selection on top, before its last filter
# below.

# %%
import pandas as pd

from vlmflow.io import atomic_path, log_to
from vlmflow.plots import figS_open_ended
from vlmflow.stages.figures import figure_job

job = figure_job(snakemake, "figS_open_ended")  # noqa: F821  (run by the workflow's `script:` directive)
rows = pd.concat([pd.read_parquet(p) for p in job.input.tables], ignore_index=True)
answers = pd.concat([pd.read_parquet(p) for p in job.input.responses], ignore_index=True)
blocks = [b.name for b in job.settings.experiment.blocks]

# %%
with log_to(job.log):
    kept = answers[answers.kept_anchors != "[]"]
    print(f"[figS_open_ended] {len(kept)} of {len(answers)} samples analysed at one anchor or more")
    table = figS_open_ended(rows, job.output.png.with_suffix(""), blocks)
    with atomic_path(job.output.responses) as tmp:
        answers.to_csv(tmp, index=False)
table.groupby(["selection", "block", "anchor"])["mean"].min()

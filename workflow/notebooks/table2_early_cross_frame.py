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
# # Table 2: early cross-frame attention and the answers
# Cross-frame attention blocked in the first half of the layers, for every sample: multiple-choice
# accuracy before and after (absolute and relative drop, share of flipped letters) and, where the
# dataset has answer prompts, the greedy open-ended answers (first-token accuracy, exact match) with
# example rows.

# %%
import pandas as pd

from vlmflow.data.synthetic import TASK_TITLES
from vlmflow.io import atomic_path, log_to
from vlmflow.plots import table2_early_cross_frame
from vlmflow.stages.figures import figure_job
from vlmflow.stats import early_cross_frame_examples, early_cross_frame_table

job = figure_job(snakemake, "table2_early_cross_frame")  # noqa: F821  (run by the workflow's `script:` directive)
answers = pd.concat([pd.read_parquet(p) for p in job.input.paths()], ignore_index=True)

# %%
with log_to(job.log):
    table = early_cross_frame_table(answers)
    examples = early_cross_frame_examples(answers, job.settings.options["examples_per_task"])
    table2_early_cross_frame(table, examples, job.output.png.with_suffix(""), TASK_TITLES)
    with atomic_path(job.output.examples) as tmp:
        examples.to_csv(tmp, index=False)
    print(table.to_string(index=False))
    print(examples.to_string(index=False))
table

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
from pathlib import Path

import pandas as pd

from vlmflow.data.synthetic import TASK_TITLES
from vlmflow.io import atomic_path, log_to
from vlmflow.plots import table2_early_cross_frame
from vlmflow.stats import early_cross_frame_examples, early_cross_frame_table

sm = snakemake  # noqa: F821  (run by the workflow's `script:` directive)
answers = pd.concat([pd.read_parquet(p) for p in sm.input], ignore_index=True)

# %%
with log_to(sm.log[0]):
    table = early_cross_frame_table(answers)
    examples = early_cross_frame_examples(answers, sm.params.examples)
    table2_early_cross_frame(table, examples, Path(sm.output[0]).with_suffix(""), TASK_TITLES)
    with atomic_path(sm.output[3]) as tmp:
        examples.to_csv(tmp, index=False)
    print(table.to_string(index=False))
    print(examples.to_string(index=False))
table

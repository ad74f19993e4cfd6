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
# # Fig. 3: cross-modal information flow
# Four knockouts, each swept over windows of layers: Video -> Question (purple), Video -> Last
# (blue), Question -> Last (orange), Last -> Last (red). Mean relative change (%) of the predicted
# answer's probability over correctly answered samples, 95 % bootstrap bands.

# %%
from pathlib import Path

import pandas as pd

from vlmflow.data.synthetic import TASK_TITLES
from vlmflow.io import log_to
from vlmflow.plots import fig3_vql_to_ql

sm = snakemake  # noqa: F821  (run by the workflow's `script:` directive)
df = pd.read_parquet(sm.input[0])

# %%
with log_to(sm.log[0]):
    table = fig3_vql_to_ql(df, Path(sm.output[0]).with_suffix(""), list(sm.params.tasks), TASK_TITLES)
table.groupby(["block", "task"])["mean"].min()

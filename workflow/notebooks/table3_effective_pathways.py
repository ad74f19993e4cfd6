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
# # Table 3: effective pathways vs random blocking
# Every question answered with the full model, with only the effective pathways, and with as many
# attention edges blocked at random in each layer; accuracy and the share of edges kept, and the
# trade-off between the two.

# %%
import pandas as pd

from vlmflow.io import log_to
from vlmflow.jobs import Job
from vlmflow.plots import pathways_tradeoff, table3_effective_pathways
from vlmflow.stages.tables import GatherJob
from vlmflow.stats import pathway_table

job = Job.from_snakemake(snakemake, GatherJob)  # noqa: F821  (run by the workflow's `script:` directive)
df = pd.concat([pd.read_parquet(p) for p in job.input.paths()], ignore_index=True)

# %%
with log_to(job.log):
    table = pathway_table(df)
    table3_effective_pathways(table, job.output.png.with_suffix(""))
    pathways_tradeoff(table, job.output.tradeoff_png.with_suffix(""))
    print(table.to_string(index=False))

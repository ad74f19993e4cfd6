"""Rules gather_*: concatenate per-task tables into one (atomically)."""

import pandas as pd

from vlmflow.io import log_to, write_parquet

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    write_parquet(pd.concat([pd.read_parquet(p) for p in sm.input], ignore_index=True), sm.output[0])

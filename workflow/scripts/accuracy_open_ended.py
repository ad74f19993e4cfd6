"""Rule accuracy_open_ended: first-token accuracy and exact match of the generated answers."""

import pandas as pd

from vlmflow.io import atomic_path, log_to
from vlmflow.stats import open_ended_accuracy

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    table = open_ended_accuracy(pd.concat([pd.read_parquet(p) for p in sm.input], ignore_index=True))
    with atomic_path(sm.output[0]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    print(table.to_string(index=False))

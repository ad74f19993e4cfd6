"""Rule accuracy_table: baseline accuracy per dataset, model and task, with chance level."""

import pandas as pd

from vlmflow.io import atomic_path, log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    df = pd.concat([pd.read_parquet(p) for p in sm.input], ignore_index=True)
    table = (
        df.assign(chance=1 / df.n_options)
        .groupby(["dataset", "model", "task"], sort=False)
        .agg(n=("correct_base", "size"), accuracy=("correct_base", "mean"), chance=("chance", "mean"))
        .reset_index()
    )
    with atomic_path(sm.output[0]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    print(table.to_string(index=False))

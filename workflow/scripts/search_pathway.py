"""Rule search_pathway: kept windows derived from the knockout curves, written as a pathway spec."""

import pandas as pd

from vlmflow.io import log_to
from vlmflow.stages.pathways import save_pathway, search_windows

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    curves = pd.concat([pd.read_parquet(p) for p in sm.input], ignore_index=True)
    n_layers = int(curves.layer.max())  # window centres run over every layer
    name = f"searched on {sm.wildcards.dataset}"
    pathway, why = search_windows(curves, n_layers, name, sm.params.threshold)
    save_pathway(pathway, sm.output[0], **why)
    print(pathway)

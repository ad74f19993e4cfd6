# The open-ended flow (the paper's appendix figure on VCGBench): one job per (dataset, model, sweep,
# task) of a run on an open-ended dataset; it generates each answer, finds its anchor words and
# sweeps the open_ended_flow knockouts at each anchor.
from vlmflow.stages.open_ended_flow import OpenFlowJob


rule open_ended_flow:
    input:
        frames="results/{dataset}/frames/{task}.npz",
        questions="results/{dataset}/questions/{task}.parquet",
        skipped="results/{dataset}/skipped/{task}.parquet",
        model=model_files,
    output:
        table="results/{dataset}/{model}/open_ended_flow/{sweep}/{task}.parquet",
        responses="results/{dataset}/{model}/open_ended_flow/{sweep}/responses/{task}.parquet",
    log:
        "logs/open_ended_flow/{dataset}/{model}/{sweep}/{task}.log",
    wildcard_constraints:
        sweep=SWEEP_PATTERN,
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **model_resources,
    params:
        settings=params_of(OpenFlowJob),
    script:
        "../scripts/open_ended_flow.py"

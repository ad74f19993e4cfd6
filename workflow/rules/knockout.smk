# Knockout experiments: one job per (dataset, model, experiment, sweep, task, part of the task's
# samples), gathered per experiment and sweep. A sweep is a window style and size, e.g. "center-w9"
# (a window of 9 layers centred on each layer in turn) or "bottom_up-w1"; a model's `chunks` sets
# how many parts each task is split into (the parts are temporary: a changed split reruns nothing).
from vlmflow.stages.knockout import KnockoutJob
from vlmflow.stages.tables import GatherJob


rule knockout:
    input:
        frames="results/{dataset}/frames/{task}.npz",
        questions="results/{dataset}/questions/{task}.parquet",
        features="results/{dataset}/{model}/features/{task}.pt",
        baseline="results/{dataset}/{model}/baseline/{task}.parquet",
        model=model_files,
    output:
        table=temp(
            "results/{dataset}/{model}/knockout/{experiment}/{sweep}/{task}/{part}.parquet"
        ),
    log:
        "logs/knockout/{dataset}/{model}/{experiment}/{sweep}/{task}/{part}.log",
    wildcard_constraints:
        part=r"\d+of\d+",
        sweep=SWEEP_PATTERN,
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **model_resources,
    params:
        settings=params_of(KnockoutJob),
    script:
        "../scripts/knockout.py"


rule gather_knockout:
    input:
        lambda wc: expand(
            "results/{dataset}/{model}/knockout/{experiment}/{sweep}/{task}/{part}.parquet",
            dataset=wc.dataset,
            model=wc.model,
            experiment=wc.experiment,
            sweep=wc.sweep,
            task=dataset_tasks(wc.dataset),
            part=parts(wc.model),
        ),
    output:
        "results/{dataset}/{model}/knockout/{experiment}/{sweep}.parquet",
    log:
        "logs/gather_knockout/{dataset}/{model}/{experiment}/{sweep}.log",
    wildcard_constraints:
        sweep=SWEEP_PATTERN,
    conda:
        "../../envs/data.yaml"
    params:
        settings=params_of(GatherJob, lambda wc: dataset_tasks(wc.dataset)),
    script:
        "../scripts/gather.py"

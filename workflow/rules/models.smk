# Model stages: the toy models' training recipe, and feature caching (video tokens + baseline).
from vlmflow.stages.features import FeaturesJob
from vlmflow.stages.tables import GatherJob
from vlmflow.stages.toy_training import ToyTrainingJob

if S.toy_training is not None and "synthetic" in S.datasets:

    rule train_toy_models:
        output:
            image="results/toy_models/toy-image/model.safetensors",
            video="results/toy_models/toy-video/model.safetensors",
        log:
            "logs/train_toy_models.log",
        conda:
            "../../envs/models.yaml"
        threads: 4  # capped to --cores on a workstation
        resources:
            runtime=240,
        params:
            settings=params_of(ToyTrainingJob),
        script:
            "../scripts/train_toy_models.py"


rule cache_features:
    input:
        frames="results/{dataset}/frames/{task}.npz",
        questions="results/{dataset}/questions/{task}.parquet",
        model=model_files,
    output:
        features="results/{dataset}/{model}/features/{task}.pt",
        baseline="results/{dataset}/{model}/baseline/{task}.parquet",
        skipped="results/{dataset}/{model}/skipped/{task}.parquet",
    log:
        "logs/cache_features/{dataset}/{model}/{task}.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **model_resources,
    params:
        settings=params_of(FeaturesJob),
    script:
        "../scripts/cache_features.py"


rule skipped_samples:
    input:
        lambda wc: expand(
            [
                "results/{dataset}/skipped/{task}.parquet",
                "results/{dataset}/{model}/skipped/{task}.parquet",
            ],
            dataset=wc.dataset,
            model=wc.model,
            task=dataset_tasks(wc.dataset),
        )
        + attention_skips(wc.dataset, wc.model),
    output:
        "results/{dataset}/{model}/skipped.parquet",
    log:
        "logs/skipped/{dataset}/{model}.log",
    conda:
        "../../envs/data.yaml"
    params:
        settings=params_of(
            GatherJob,
            lambda wc: dataset_tasks(wc.dataset)
            + attention_skips(wc.dataset, wc.model),
        ),
    script:
        "../scripts/gather.py"


rule accuracy_table:
    input:
        [table for d, m in runs_of_models() for table in baseline_tables(d, m)],
    output:
        report(
            "figures/accuracy.csv", caption="../report/accuracy.rst", category="Tables"
        ),
    log:
        "logs/accuracy_table.log",
    conda:
        "../../envs/data.yaml"
    params:
        settings=params_of(GatherJob, [f"{d}/{m}" for d, m in runs_of_models()]),
    script:
        "../scripts/accuracy.py"

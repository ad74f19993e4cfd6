# Knockout experiments: one job per (dataset, model, family, task), gathered per family.


rule knockout:
    input:
        frames="results/{dataset}/frames/{task}.npz",
        questions="results/{dataset}/questions/{task}.parquet",
        features="results/{dataset}/{model}/features/{task}.pt",
        baseline="results/{dataset}/{model}/baseline/{task}.parquet",
        model=model_files,
    output:
        "results/{dataset}/{model}/knockout/{family}/{task}.parquet",
    log:
        "logs/knockout/{dataset}/{model}/{family}/{task}.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        gpu=lambda wc: model_cfg(wc.model).get("gpu", 0),
        mem_mb=lambda wc: model_cfg(wc.model).get("mem_mb", 4000),
    params:
        model=lambda wc: model_cfg(wc.model),
        knockout=config["knockout"],
        n_frames=config["n_frames"],
        seed=config["seed"],
    script:
        "../scripts/knockout.py"


rule gather_knockout:
    input:
        lambda wc: expand(
            "results/{dataset}/{model}/knockout/{family}/{task}.parquet",
            dataset=wc.dataset,
            model=wc.model,
            family=wc.family,
            task=dataset_tasks(wc.dataset),
        ),
    output:
        "results/{dataset}/{model}/knockout/{family}.parquet",
    log:
        "logs/gather_knockout/{dataset}/{model}/{family}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/gather.py"

# Knockout experiments: one job per (dataset, model, family, task, part of the task's samples),
# gathered per family. A model's `chunks` sets how many parts each task is split into.


rule knockout:
    input:
        frames="results/{dataset}/frames/{task}.npz",
        questions="results/{dataset}/questions/{task}.parquet",
        features="results/{dataset}/{model}/features/{task}.pt",
        baseline="results/{dataset}/{model}/baseline/{task}.parquet",
        model=model_files,
    output:
        "results/{dataset}/{model}/knockout/{family}/{task}/{part}.parquet",
    log:
        "logs/knockout/{dataset}/{model}/{family}/{task}/{part}.log",
    wildcard_constraints:
        part=r"\d+of\d+",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **model_resources,
    params:
        model=lambda wc: model_cfg(wc.model),
        part=lambda wc: parse_part(wc.part),
        knockout=config["knockout"],
        n_frames=config["n_frames"],
        seed=config["seed"],
    script:
        "../scripts/knockout.py"


rule gather_knockout:
    input:
        lambda wc: expand(
            "results/{dataset}/{model}/knockout/{family}/{task}/{part}.parquet",
            dataset=wc.dataset,
            model=wc.model,
            family=wc.family,
            task=dataset_tasks(wc.dataset),
            part=parts(wc.model),
        ),
    output:
        "results/{dataset}/{model}/knockout/{family}.parquet",
    log:
        "logs/gather_knockout/{dataset}/{model}/{family}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/gather.py"

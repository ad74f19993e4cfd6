# Knockout experiments: one job per (dataset, model, family, sweep, task, part of the task's samples),
# gathered per family and sweep. A sweep is a window style and size, e.g. "center-w9" (a window of 9
# layers centred on each layer in turn) or "bottom_up-w1"; a model's `chunks` sets how many parts each
# task is split into.


rule knockout:
    input:
        frames="results/{dataset}/frames/{task}.npz",
        questions="results/{dataset}/questions/{task}.parquet",
        features="results/{dataset}/{model}/features/{task}.pt",
        baseline="results/{dataset}/{model}/baseline/{task}.parquet",
        model=model_files,
    output:
        "results/{dataset}/{model}/knockout/{family}/{sweep}/{task}/{part}.parquet",
    log:
        "logs/knockout/{dataset}/{model}/{family}/{sweep}/{task}/{part}.log",
    wildcard_constraints:
        part=r"\d+of\d+",
        sweep=SWEEP_PATTERN,
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **model_resources,
    params:
        model=lambda wc: model_cfg(wc.model),
        part=lambda wc: parse_part(wc.part),
        sweep=lambda wc: parse_sweep(wc.sweep),
        knockout=config["knockout"],
        n_frames=config["n_frames"],
        frame_sampling=lambda wc: frame_sampling(wc),
        seed=config["seed"],
    script:
        "../scripts/knockout.py"


rule gather_knockout:
    input:
        lambda wc: expand(
            "results/{dataset}/{model}/knockout/{family}/{sweep}/{task}/{part}.parquet",
            dataset=wc.dataset,
            model=wc.model,
            family=wc.family,
            sweep=wc.sweep,
            task=dataset_tasks(wc.dataset),
            part=parts(wc.model),
        ),
    output:
        "results/{dataset}/{model}/knockout/{family}/{sweep}.parquet",
    log:
        "logs/gather_knockout/{dataset}/{model}/{family}/{sweep}.log",
    wildcard_constraints:
        sweep=SWEEP_PATTERN,
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/gather.py"

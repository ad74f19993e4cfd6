# Model stages: the toy models' training recipe, and feature caching (video tokens + baseline).


if "toy_training" in config and "synthetic" in config["datasets"]:

    rule train_toy_models:
        output:
            "results/toy_models/toy-image/model.safetensors",
            "results/toy_models/toy-video/model.safetensors",
        log:
            "logs/train_toy_models.log",
        conda:
            "../../envs/models.yaml"
        threads: 4  # capped to --cores on a workstation
        resources:
            runtime=240,
        params:
            recipe=config["toy_training"]["recipe"],
            device=config["toy_training"].get("device", "auto"),
            # the open-ended answer prompts and the lens objective's words are the benchmark's
            answer_prompts=config["datasets"]["synthetic"]["answer_prompts"],
            lens_words=sum(config["datasets"]["synthetic"]["lens_words"].values(), []),
            image_dir=lambda wc, output: str(Path(output[0]).parent),
            video_dir=lambda wc, output: str(Path(output[1]).parent),
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
        model=lambda wc: model_cfg(wc.model),
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
    script:
        "../scripts/gather.py"


rule accuracy_table:
    input:
        [
            table
            for run in config["runs"]
            for m in run["models"]
            for table in baseline_tables(run["dataset"], m)
        ],
    output:
        report(
            "figures/accuracy.csv", caption="../report/accuracy.rst", category="Tables"
        ),
    log:
        "logs/accuracy_table.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/accuracy.py"

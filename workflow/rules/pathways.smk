# Effective pathways vs random blocking (Table 3): one job per (dataset, model, task), gathered per
# (dataset, model); the search of kept windows reads the knockout curves of the `search_on` dataset.


rule search_pathway:
    input:
        lambda wc: knockout_tables(wc.dataset, wc.model, ["cross_frame", "vql_to_ql"]),
    output:
        "results/{dataset}/{model}/pathways/searched.yaml",
    log:
        "logs/search_pathway/{dataset}/{model}.log",
    conda:
        "../../envs/data.yaml"
    params:
        threshold=config["pathways"]["search_threshold"],
    script:
        "../scripts/search_pathway.py"


rule pathways:
    input:
        questions="results/{dataset}/questions/{task}.parquet",
        features="results/{dataset}/{model}/features/{task}.pt",
        baseline="results/{dataset}/{model}/baseline/{task}.parquet",
        searched=searched_pathway,
        model=model_files,
    output:
        "results/{dataset}/{model}/pathways/{task}.parquet",
    log:
        "logs/pathways/{dataset}/{model}/{task}.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **model_resources,
    params:
        model=lambda wc: model_cfg(wc.model),
        seeds=config["pathways"]["seeds"],
        knockout=config["knockout"],
        n_frames=config["n_frames"],
        frame_sampling=lambda wc: frame_sampling(wc),
        seed=config["seed"],
    script:
        "../scripts/pathways.py"


rule gather_pathways:
    input:
        lambda wc: expand(
            "results/{dataset}/{model}/pathways/{task}.parquet",
            dataset=wc.dataset,
            model=wc.model,
            task=dataset_tasks(wc.dataset),
        ),
    output:
        "results/{dataset}/{model}/pathways.parquet",
    log:
        "logs/gather_pathways/{dataset}/{model}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/gather.py"

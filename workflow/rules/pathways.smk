# Effective pathways vs random blocking (Table 3): one job per (dataset, model, task), gathered per
# (dataset, model); the search of kept windows reads the knockout curves of the `search_on` dataset.
from vlmflow.stages.pathways import PathwaysJob, SearchJob
from vlmflow.stages.tables import GatherJob


rule search_pathway:
    input:
        lambda wc: knockout_tables(wc.dataset, wc.model, ["cross_frame", "vql_to_ql"]),
    output:
        spec="results/{dataset}/{model}/pathways/searched.yaml",
    log:
        "logs/search_pathway/{dataset}/{model}.log",
    conda:
        "../../envs/data.yaml"
    params:
        settings=params_of(SearchJob),
    script:
        "../scripts/search_pathway.py"


rule pathways:
    input:
        questions="results/{dataset}/questions/{task}.parquet",
        features="results/{dataset}/{model}/features/{task}.pt",
        baseline="results/{dataset}/{model}/baseline/{task}.parquet",
        searched=searched_pathway,
        spec=pathway_spec_file,
        model=model_files,
    output:
        table="results/{dataset}/{model}/pathways/{task}.parquet",
    log:
        "logs/pathways/{dataset}/{model}/{task}.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **model_resources,
    params:
        settings=params_of(PathwaysJob),
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
    params:
        settings=params_of(GatherJob, lambda wc: dataset_tasks(wc.dataset)),
    script:
        "../scripts/gather.py"

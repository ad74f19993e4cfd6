# Probes (Figs. 4, 5, 6, 9): one job per (dataset, model, task) for the answer probability and the
# logit lens, and one for the attention maps of Fig. 6's task; figures read these tables only.
from vlmflow.stages.probes import AttentionJob, ProbesJob


rule probes:
    input:
        questions="results/{dataset}/questions/{task}.parquet",
        features="results/{dataset}/{model}/features/{task}.pt",
        baseline="results/{dataset}/{model}/baseline/{task}.parquet",
        model=model_files,
    output:
        answer="results/{dataset}/{model}/probes/answer_probability/{task}.parquet",
        lens="results/{dataset}/{model}/probes/logit_lens/{task}.parquet",
    log:
        "logs/probes/{dataset}/{model}/{task}.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **model_resources,
    params:
        settings=params_of(ProbesJob),
    script:
        "../scripts/probes.py"


rule attention_maps:
    input:
        questions="results/{dataset}/questions/{task}.parquet",
        features="results/{dataset}/{model}/features/{task}.pt",
        baseline="results/{dataset}/{model}/baseline/{task}.parquet",
        model=model_files,
    output:
        attention="results/{dataset}/{model}/probes/attention/{task}.parquet",
        skipped="results/{dataset}/{model}/skipped/attention_maps/{task}.parquet",
    log:
        "logs/attention_maps/{dataset}/{model}/{task}.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **model_resources,
    params:
        settings=params_of(AttentionJob),
    script:
        "../scripts/attention_maps.py"

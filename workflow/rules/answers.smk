# Answers (Table 2): every sample's multiple-choice letter and generated open-ended answer, clean and
# with cross-frame attention blocked in the first half of the layers; one job per (dataset, model, task).
from vlmflow.stages.answers import AnswersJob
from vlmflow.stages.tables import GatherJob


rule answers:
    input:
        questions="results/{dataset}/questions/{task}.parquet",
        features="results/{dataset}/{model}/features/{task}.pt",
        baseline="results/{dataset}/{model}/baseline/{task}.parquet",
        model=model_files,
    output:
        table="results/{dataset}/{model}/answers/{task}.parquet",
    log:
        "logs/answers/{dataset}/{model}/{task}.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **model_resources,
    params:
        settings=params_of(AnswersJob),
    script:
        "../scripts/answers.py"


if open_ended_runs():

    rule accuracy_open_ended:
        input:
            [t for d, m in open_ended_runs() for t in answer_tables(d, [m])],
        output:
            report(
                "figures/accuracy_open_ended.csv",
                caption="../report/accuracy_open_ended.rst",
                category="Tables",
            ),
        log:
            "logs/accuracy_open_ended.log",
        conda:
            "../../envs/data.yaml"
        params:
            settings=params_of(GatherJob, [f"{d}/{m}" for d, m in open_ended_runs()]),
        script:
            "../scripts/accuracy_open_ended.py"

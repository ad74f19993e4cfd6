# Answers (Table 2): every sample's multiple-choice letter and generated open-ended answer, clean and
# with cross-frame attention blocked in the first half of the layers; one job per (dataset, model, task).


rule answers:
    input:
        questions="results/{dataset}/questions/{task}.parquet",
        features="results/{dataset}/{model}/features/{task}.pt",
        baseline="results/{dataset}/{model}/baseline/{task}.parquet",
        model=model_files,
    output:
        "results/{dataset}/{model}/answers/{task}.parquet",
    log:
        "logs/answers/{dataset}/{model}/{task}.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **model_resources,
    params:
        model=lambda wc: model_cfg(wc.model),
        answer_prompts=lambda wc: dataset_cfg(wc).get("answer_prompts", {}),
        max_new_tokens=lambda wc: dataset_cfg(wc).get("max_new_tokens", 100),
        knockout=config["knockout"],
        n_frames=config["n_frames"],
        frame_sampling=lambda wc: frame_sampling(wc),
        seed=config["seed"],
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
        script:
            "../scripts/accuracy_open_ended.py"

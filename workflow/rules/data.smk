# Datasets and frame extraction.
from vlmflow.stages.frames import FramesJob, SyntheticJob

for _name, _ds in S.datasets.items():
    if _ds.generate is not None:

        rule:
            name:
                f"synthetic_benchmark_{_name}"
            output:
                list(
                    dict.fromkeys(
                        annotation_path(_ds.format, _ds.root, t) for t in _ds.tasks
                    )
                ),
            log:
                f"logs/synthetic_benchmark_{_name}.log",
            conda:
                "../../envs/data.yaml"
            params:
                settings=params_of(SyntheticJob, _name),
            script:
                "../scripts/synthetic_benchmark.py"


rule extract_frames:
    input:
        annotation,
    output:
        frames="results/{dataset}/frames/{task}.npz",
        questions="results/{dataset}/questions/{task}.parquet",
        skipped="results/{dataset}/skipped/{task}.parquet",
    log:
        "logs/extract_frames/{dataset}/{task}.log",
    conda:
        "../../envs/data.yaml"
    params:
        settings=params_of(FramesJob),
    script:
        "../scripts/extract_frames.py"

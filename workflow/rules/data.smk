# Datasets and frame extraction.


for _name, _ds in config["datasets"].items():
    if "generate" in _ds:

        rule:
            name:
                f"synthetic_benchmark_{_name}"
            output:
                [annotation_path("tvbench", _ds["root"], t) for t in _ds["tasks"]],
            log:
                f"logs/synthetic_benchmark_{_name}.log",
            conda:
                "../../envs/data.yaml"
            params:
                root=lambda wc, output: str(Path(output[0]).parents[1]),
                tasks=_ds["tasks"],
                n_per_task=_ds["generate"]["n_per_task"],
                seed=_ds["generate"]["seed"],
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
        format=lambda wc: dataset_cfg(wc)["format"],
        root=lambda wc: dataset_cfg(wc)["root"],
        limit=lambda wc: dataset_cfg(wc).get("limit"),
        n_frames=config["n_frames"],
        sampling=lambda wc: frame_sampling(wc),
    script:
        "../scripts/extract_frames.py"

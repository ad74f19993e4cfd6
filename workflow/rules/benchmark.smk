# Engine vs reference benchmarks (not part of `all`): snakemake results/benchmarks/knockout_speed_quick.txt,
# results/benchmarks/long_video_full.txt


rule benchmark_knockout:
    output:
        "results/benchmarks/knockout_speed_{variant}.txt",
    log:
        "logs/benchmark_knockout_{variant}.log",
    wildcard_constraints:
        variant="quick|paper|gpu7b",
    conda:
        "../../envs/models.yaml"
    resources:
        gpu=lambda wc: int(wc.variant == "gpu7b"),
    params:
        flag=lambda wc: {"quick": "--quick", "paper": "", "gpu7b": "--gpu7b"}[
            wc.variant
        ],
        script=Path(workflow.basedir) / "benchmarks" / "knockout_speed.py",
    shell:
        "python {params.script} {params.flag} 2> {log} | tee {output}"


# The GPU check (engine at 7B shape in bf16 + a real-size pipeline shard): snakemake benchmark_gpu --cores all
rule benchmark_gpu:
    output:
        "results/benchmarks/gpu_pipeline.txt",
    log:
        "logs/benchmark_gpu.log",
    conda:
        "../../envs/models.yaml"
    resources:
        gpu=1,
    params:
        script=Path(workflow.basedir) / "benchmarks" / "gpu_pipeline.py",
    shell:
        "python {params.script} 2> {log} | tee {output}"


# Time and memory as the video grows (8 to 112 frames): snakemake results/benchmarks/long_video_full.txt
rule benchmark_long_video:
    output:
        "results/benchmarks/long_video_{variant}.txt",
    log:
        "logs/benchmark_long_video_{variant}.log",
    wildcard_constraints:
        variant="quick|full",
    conda:
        "../../envs/models.yaml"
    params:
        flag=lambda wc: "--quick" if wc.variant == "quick" else "",
        script=Path(workflow.basedir) / "benchmarks" / "long_video.py",
    shell:
        "python {params.script} {params.flag} 2> {log} | tee {output}"

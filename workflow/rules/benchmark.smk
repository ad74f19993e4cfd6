# Engine vs reference benchmark (not part of `all`): snakemake results/benchmarks/knockout_speed_quick.txt


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

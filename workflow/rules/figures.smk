# Figures and tables: they read result tables only, so rerunning one never loads a model.


if "fig2_cross_frame" in config["figures"]:

    rule fig2_cross_frame:
        input:
            video=knockout_tables(
                _fig("fig2_cross_frame")["dataset"],
                _fig("fig2_cross_frame")["model"],
                "cross_frame",
            ),
            image=knockout_tables(
                _fig("fig2_cross_frame")["dataset"],
                _fig("fig2_cross_frame")["image_model"],
                "cross_frame",
            ),
        output:
            report(
                "figures/fig2_cross_frame.png",
                caption="../report/fig2.rst",
                category="Figures",
            ),
            "figures/fig2_cross_frame.pdf",
            "figures/fig2_cross_frame.csv",
        log:
            "logs/figures/fig2_cross_frame.log",
        conda:
            "../../envs/plots.yaml"
        params:
            labels=[
                _fig("fig2_cross_frame")["model"],
                _fig("fig2_cross_frame")["image_model"],
            ],
            tasks=dataset_tasks(_fig("fig2_cross_frame")["dataset"]),
        script:
            "../notebooks/fig2_cross_frame.py"


if "fig3_vql_to_ql" in config["figures"]:

    rule fig3_vql_to_ql:
        input:
            knockout_tables(
                _fig("fig3_vql_to_ql")["dataset"],
                _fig("fig3_vql_to_ql")["model"],
                "vql_to_ql",
            ),
        output:
            report(
                "figures/fig3_vql_to_ql.png",
                caption="../report/fig3.rst",
                category="Figures",
            ),
            "figures/fig3_vql_to_ql.pdf",
            "figures/fig3_vql_to_ql.csv",
        log:
            "logs/figures/fig3_vql_to_ql.log",
        conda:
            "../../envs/plots.yaml"
        params:
            tasks=dataset_tasks(_fig("fig3_vql_to_ql")["dataset"]),
        script:
            "../notebooks/fig3_vql_to_ql.py"


if pathway_runs():

    rule table3_effective_pathways:
        input:
            pathway_tables(),
        output:
            report(
                "figures/table3_effective_pathways.png",
                caption="../report/table3.rst",
                category="Tables",
            ),
            "figures/table3_effective_pathways.pdf",
            "figures/table3_effective_pathways.csv",
            report(
                "figures/pathways_tradeoff.png",
                caption="../report/pathways_tradeoff.rst",
                category="Figures",
            ),
            "figures/pathways_tradeoff.pdf",
            "figures/pathways_tradeoff.csv",
        log:
            "logs/figures/table3_effective_pathways.log",
        conda:
            "../../envs/plots.yaml"
        script:
            "../notebooks/table3_effective_pathways.py"

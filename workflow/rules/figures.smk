# Figures and tables: they read result tables only, so rerunning one never loads a model.


if "fig2_cross_frame" in config["figures"]:

    rule fig2_cross_frame:
        input:
            video=[
                knockout_tables(_fig("fig2_cross_frame")["dataset"], m, "cross_frame")[
                    0
                ]
                for m, _ in fig2_pairs()
            ],
            image=[
                knockout_tables(_fig("fig2_cross_frame")["dataset"], m, "cross_frame")[
                    0
                ]
                for _, m in fig2_pairs()
            ],
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
            pairs=fig2_pairs(),
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


for _name, _family in [
    ("fig7_question_options_to_last", "question_and_options_to_last"),
    ("fig8_vq_to_true_option", "vq_to_true_opt"),
]:
    if _name in config["figures"]:

        rule:
            name:
                _name
            input:
                knockout_tables(_fig(_name)["dataset"], _fig(_name)["model"], _family),
            output:
                report(
                    f"figures/{_name}.png",
                    caption=f"../report/{_name[:4]}.rst",
                    category="Figures",
                ),
                f"figures/{_name}.pdf",
                f"figures/{_name}.csv",
            log:
                f"logs/figures/{_name}.log",
            conda:
                "../../envs/plots.yaml"
            params:
                tasks=dataset_tasks(_fig(_name)["dataset"]),
            script:
                f"../notebooks/{_name}.py"


if "figS_failure_cases" in config["figures"]:

    rule figS_failure_cases:
        input:
            wrong=knockout_tables(
                _fig("figS_failure_cases")["dataset"],
                _fig("figS_failure_cases")["model"],
                ["question_and_options_to_last", "vq_to_false_opt"],
                "wrong",
            ),
            correct=knockout_tables(
                _fig("figS_failure_cases")["dataset"],
                _fig("figS_failure_cases")["model"],
                ["question_and_options_to_last", "vq_to_true_opt"],
                "correct",
            ),
        output:
            report(
                "figures/figS_failure_cases.png",
                caption="../report/figS.rst",
                category="Figures",
            ),
            "figures/figS_failure_cases.pdf",
            "figures/figS_failure_cases.csv",
        log:
            "logs/figures/figS_failure_cases.log",
        conda:
            "../../envs/plots.yaml"
        params:
            tasks=_fig("figS_failure_cases").get(
                "tasks", dataset_tasks(_fig("figS_failure_cases")["dataset"])
            ),
        script:
            "../notebooks/figS_failure_cases.py"


if "table2_early_cross_frame" in config["figures"]:

    rule table2_early_cross_frame:
        input:
            answer_tables(
                _fig("table2_early_cross_frame")["dataset"],
                _fig("table2_early_cross_frame")["models"],
            ),
        output:
            report(
                "figures/table2_early_cross_frame.png",
                caption="../report/table2.rst",
                category="Tables",
            ),
            "figures/table2_early_cross_frame.pdf",
            "figures/table2_early_cross_frame.csv",
            "figures/table2_early_cross_frame_examples.csv",
        log:
            "logs/figures/table2_early_cross_frame.log",
        conda:
            "../../envs/plots.yaml"
        params:
            examples=_fig("table2_early_cross_frame").get("examples_per_task", 1),
        script:
            "../notebooks/table2_early_cross_frame.py"


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


if "fig9_answer_probability" in config["figures"]:

    rule fig9_answer_probability:
        input:
            probe_tables(
                "answer_probability",
                "fig9_answer_probability",
                dataset_tasks(_fig("fig9_answer_probability")["dataset"]),
            ),
        output:
            report(
                "figures/fig9_answer_probability.png",
                caption="../report/fig9.rst",
                category="Figures",
            ),
            "figures/fig9_answer_probability.pdf",
            "figures/fig9_answer_probability.csv",
        log:
            "logs/figures/fig9_answer_probability.log",
        conda:
            "../../envs/plots.yaml"
        params:
            tasks=dataset_tasks(_fig("fig9_answer_probability")["dataset"]),
            depth=_fig("fig9_answer_probability").get("depth", "layer"),
        script:
            "../notebooks/fig9_answer_probability.py"


if "fig4_logit_lens_freq" in config["figures"]:

    rule fig4_logit_lens_freq:
        input:
            probe_tables("logit_lens", "fig4_logit_lens_freq"),
        output:
            report(
                "figures/fig4_logit_lens_freq.png",
                caption="../report/fig4.rst",
                category="Figures",
            ),
            "figures/fig4_logit_lens_freq.pdf",
            "figures/fig4_logit_lens_freq.csv",
        log:
            "logs/figures/fig4_logit_lens_freq.log",
        conda:
            "../../envs/plots.yaml"
        params:
            fig=_fig("fig4_logit_lens_freq"),
        script:
            "../notebooks/fig4_logit_lens_freq.py"


if "fig5_logit_lens_frames" in config["figures"]:

    rule fig5_logit_lens_frames:
        input:
            lens=probe_tables("logit_lens", "fig5_logit_lens_frames"),
            frames=fig_input("fig5_logit_lens_frames", "frames"),
            questions=fig_input("fig5_logit_lens_frames", "questions"),
        output:
            report(
                "figures/fig5_logit_lens_frames.png",
                caption="../report/fig5.rst",
                category="Figures",
            ),
            "figures/fig5_logit_lens_frames.pdf",
            "figures/fig5_logit_lens_frames.csv",
        log:
            "logs/figures/fig5_logit_lens_frames.log",
        conda:
            "../../envs/plots.yaml"
        params:
            fig=_fig("fig5_logit_lens_frames"),
            projection=config["probes"]["projections"][0],
        script:
            "../notebooks/fig5_logit_lens_frames.py"


if "fig6_attention_maps" in config["figures"]:

    rule fig6_attention_maps:
        input:
            attention=probe_tables("attention", "fig6_attention_maps"),
            frames=fig_input("fig6_attention_maps", "frames"),
            questions=fig_input("fig6_attention_maps", "questions"),
        output:
            report(
                "figures/fig6_attention_maps.png",
                caption="../report/fig6.rst",
                category="Figures",
            ),
            "figures/fig6_attention_maps.pdf",
            "figures/fig6_attention_maps.csv",
        log:
            "logs/figures/fig6_attention_maps.log",
        conda:
            "../../envs/plots.yaml"
        params:
            fig=_fig("fig6_attention_maps"),
        script:
            "../notebooks/fig6_attention_maps.py"

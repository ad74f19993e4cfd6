# Figures and tables: they read result tables only, so rerunning one never loads a model.
from vlmflow.stages.figures import FigureJob
from vlmflow.stages.paper_comparison import PaperComparisonJob
from vlmflow.stages.tables import GatherJob

if "fig2_cross_frame" in S.figures:
    _f = S.figures["fig2_cross_frame"]

    rule fig2_cross_frame:
        input:
            video=[knockout_tables(_f.dataset, m, "cross_frame")[0] for m in _f.models],
            image=[
                knockout_tables(_f.dataset, m, "cross_frame")[0]
                for m in _f.image_models
            ],
        output:
            **figure_outputs("fig2_cross_frame", "fig2.rst"),
        log:
            "logs/figures/fig2_cross_frame.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(FigureJob, "fig2_cross_frame"),
        script:
            "../notebooks/fig2_cross_frame.py"


if "fig3_vql_to_ql" in S.figures:

    rule fig3_vql_to_ql:
        input:
            knockout_tables(
                S.figures["fig3_vql_to_ql"].dataset,
                S.figures["fig3_vql_to_ql"].model,
                "vql_to_ql",
            ),
        output:
            **figure_outputs("fig3_vql_to_ql", "fig3.rst"),
        log:
            "logs/figures/fig3_vql_to_ql.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(FigureJob, "fig3_vql_to_ql"),
        script:
            "../notebooks/fig3_vql_to_ql.py"


if "fig7_question_options_to_last" in S.figures:

    rule fig7_question_options_to_last:
        input:
            knockout_tables(
                S.figures["fig7_question_options_to_last"].dataset,
                S.figures["fig7_question_options_to_last"].model,
                "question_and_options_to_last",
            ),
        output:
            **figure_outputs("fig7_question_options_to_last", "fig7.rst"),
        log:
            "logs/figures/fig7_question_options_to_last.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(FigureJob, "fig7_question_options_to_last"),
        script:
            "../notebooks/fig7_question_options_to_last.py"


if "fig8_vq_to_true_option" in S.figures:

    rule fig8_vq_to_true_option:
        input:
            knockout_tables(
                S.figures["fig8_vq_to_true_option"].dataset,
                S.figures["fig8_vq_to_true_option"].model,
                "vq_to_true_opt",
            ),
        output:
            **figure_outputs("fig8_vq_to_true_option", "fig8.rst"),
        log:
            "logs/figures/fig8_vq_to_true_option.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(FigureJob, "fig8_vq_to_true_option"),
        script:
            "../notebooks/fig8_vq_to_true_option.py"


if "figS_failure_cases" in S.figures:
    _f = S.figures["figS_failure_cases"]

    rule figS_failure_cases:
        input:
            wrong=knockout_tables(
                _f.dataset,
                _f.model,
                ["question_and_options_to_last", "vq_to_false_opt"],
                "wrong",
            ),
            correct=knockout_tables(
                _f.dataset,
                _f.model,
                ["question_and_options_to_last", "vq_to_true_opt"],
                "correct",
            ),
        output:
            **figure_outputs("figS_failure_cases", "figS.rst"),
        log:
            "logs/figures/figS_failure_cases.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(FigureJob, "figS_failure_cases"),
        script:
            "../notebooks/figS_failure_cases.py"


if "figS_open_ended" in S.figures:
    _f = S.figures["figS_open_ended"]

    rule figS_open_ended:
        input:
            tables=open_flow_tables(_f.dataset, _f.model),
            responses=open_flow_tables(_f.dataset, _f.model, "responses"),
        output:
            **figure_outputs("figS_open_ended", "figS_open_ended.rst"),
            responses="figures/figS_open_ended_responses.csv",
        log:
            "logs/figures/figS_open_ended.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(FigureJob, "figS_open_ended"),
        script:
            "../notebooks/figS_open_ended.py"


if "table2_early_cross_frame" in S.figures:
    _f = S.figures["table2_early_cross_frame"]

    rule table2_early_cross_frame:
        input:
            answer_tables(_f.dataset, list(_f.models)),
        output:
            **figure_outputs("table2_early_cross_frame", "table2.rst", "Tables"),
            examples="figures/table2_early_cross_frame_examples.csv",
        log:
            "logs/figures/table2_early_cross_frame.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(FigureJob, "table2_early_cross_frame"),
        script:
            "../notebooks/table2_early_cross_frame.py"


if pathway_runs():

    rule table3_effective_pathways:
        input:
            pathway_tables(),
        output:
            **figure_outputs("table3_effective_pathways", "table3.rst", "Tables"),
            tradeoff_png=report(
                "figures/pathways_tradeoff.png",
                caption="../report/pathways_tradeoff.rst",
                category="Figures",
            ),
            tradeoff_pdf="figures/pathways_tradeoff.pdf",
            tradeoff_csv="figures/pathways_tradeoff.csv",
        log:
            "logs/figures/table3_effective_pathways.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(GatherJob, [f"{d}/{m}" for d, m, _ in pathway_runs()]),
        script:
            "../notebooks/table3_effective_pathways.py"


if "fig9_answer_probability" in S.figures:
    _f = S.figures["fig9_answer_probability"]

    rule fig9_answer_probability:
        input:
            probe_tables(
                "answer_probability",
                "fig9_answer_probability",
                dataset_tasks(_f.dataset),
            ),
        output:
            **figure_outputs("fig9_answer_probability", "fig9.rst"),
        log:
            "logs/figures/fig9_answer_probability.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(FigureJob, "fig9_answer_probability"),
        script:
            "../notebooks/fig9_answer_probability.py"


if "fig4_logit_lens_freq" in S.figures:

    rule fig4_logit_lens_freq:
        input:
            probe_tables("logit_lens", "fig4_logit_lens_freq"),
        output:
            **figure_outputs("fig4_logit_lens_freq", "fig4.rst"),
        log:
            "logs/figures/fig4_logit_lens_freq.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(FigureJob, "fig4_logit_lens_freq"),
        script:
            "../notebooks/fig4_logit_lens_freq.py"


if "fig5_logit_lens_frames" in S.figures:

    rule fig5_logit_lens_frames:
        input:
            lens=probe_tables("logit_lens", "fig5_logit_lens_frames"),
            frames=fig_input("fig5_logit_lens_frames", "frames"),
            questions=fig_input("fig5_logit_lens_frames", "questions"),
        output:
            **figure_outputs("fig5_logit_lens_frames", "fig5.rst"),
        log:
            "logs/figures/fig5_logit_lens_frames.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(FigureJob, "fig5_logit_lens_frames"),
        script:
            "../notebooks/fig5_logit_lens_frames.py"


if "fig6_attention_maps" in S.figures:

    rule fig6_attention_maps:
        input:
            attention=probe_tables("attention", "fig6_attention_maps"),
            frames=fig_input("fig6_attention_maps", "frames"),
            questions=fig_input("fig6_attention_maps", "questions"),
        output:
            **figure_outputs("fig6_attention_maps", "fig6.rst"),
        log:
            "logs/figures/fig6_attention_maps.log",
        conda:
            "../../envs/plots.yaml"
        params:
            settings=params_of(FigureJob, "fig6_attention_maps"),
        script:
            "../notebooks/fig6_attention_maps.py"


# any experiment's curves (figures.curves of the config); the script is one for all (a directive
# that names a loop variable is read when the job runs, with the loop's last value)
for _curves, _f in S.figures.items():
    if _f.options.get("kind") == "curves":

        rule:
            name:
                "curves_" + "".join(c if c.isalnum() else "_" for c in _curves)
            input:
                knockout_tables(
                    _f.dataset,
                    _f.model,
                    _f.options["experiment"],
                    _f.options.get("samples"),
                ),
            output:
                **figure_outputs(_curves, "curves.rst"),
            log:
                f"logs/figures/{_curves}.log",
            conda:
                "../../envs/plots.yaml"
            params:
                settings=params_of(FigureJob, _curves),
            script:
                "../notebooks/experiment_curves.py"


rule paper_comparison:
    input:
        **comparison_inputs(),
    output:
        table=report(
            "figures/paper_comparison.csv",
            caption="../report/paper_comparison.rst",
            category="Tables",
        ),
    log:
        "logs/paper_comparison.log",
    conda:
        "../../envs/data.yaml"
    params:
        settings=params_of(PaperComparisonJob),
    script:
        "../scripts/paper_comparison.py"

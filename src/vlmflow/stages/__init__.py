"""The pipeline's stages, one module per rule group of `workflow/rules/`: each reads its inputs,
calls the libraries (data, models, knockout, stats) and writes tidy tables. Each declares the
settings record its jobs read (`...Job`, with `of(settings, wildcards)`), which is the rule's params.

    frames        the synthetic benchmark; the sampled frames of every question (rule extract_frames)
    features      video tokens once per sample + the baseline prediction (rule cache_features)
    knockout      knockout sweeps of one experiment on one part of a task (rule knockout)
    probes        answer probability by layer, logit lens, attention maps (rules probes, attention_maps)
    answers       Table 2's answers before and after early cross-frame blocking (rule answers)
    pathways      effective pathways vs random blocking, the window search (rules pathways, search_pathway)
    toy_training  the seeded recipe of the embedded toy models (rule train_toy_models)
    tables        gathered tables and the accuracy tables (rules gather_*, accuracy_*)
    figures       what a figure job reads (the drawing: vlmflow.plots, from workflow/notebooks/)
"""

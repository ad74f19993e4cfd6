"""The pipeline's stages, one module per rule group of `workflow/rules/`: each reads its inputs,
calls the libraries (data, models, knockout, stats) and writes tidy tables.

    frames        decode the sampled frames of every question (rule extract_frames)
    features      video tokens once per sample + the baseline prediction (rule cache_features)
    knockout      knockout sweeps of one family on one part of a task (rule knockout)
    toy_training  the seeded recipe of the embedded toy models (rule train_toy_models)
"""

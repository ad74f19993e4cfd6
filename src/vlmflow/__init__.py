"""vlmflow: information-flow analysis of VideoLLMs (attention knockout, probes, effective pathways).

The workflow (Snakefile) runs every experiment on every sample of a benchmark; the functions below
run them on one clip from Python (see `vlmflow.api` and docs/tutorial.py)."""

__version__ = "0.1.0"

__all__ = ["Clip", "clip", "load_model", "pathway", "plot_curves", "probe", "sweep"]


def __getattr__(name: str):  # the API is imported when first used (the workflow does not need it)
    if name in __all__:
        from vlmflow import api

        return getattr(api, name)
    raise AttributeError(f"module 'vlmflow' has no attribute {name!r}")

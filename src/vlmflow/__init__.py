"""vlmflow: information-flow analysis of VideoLLMs (attention knockout, probes, effective pathways)."""

__version__ = "0.1.0"

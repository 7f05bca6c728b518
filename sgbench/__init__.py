"""sgbench: benchmark diffusion guidance methods on token-sparse diffusion transformers."""

__version__ = "0.1.0"

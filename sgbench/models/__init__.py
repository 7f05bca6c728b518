"""Backbones: the SiT/DiT family with token routing and masking, presets, checkpoint io."""

from sgbench.models.sit import EDM, PRESETS, Masking, ModelConfig, Route, SiT, num_kept, parse_route, preset, select_tokens

__all__ = ["EDM", "PRESETS", "Masking", "ModelConfig", "Route", "SiT", "num_kept", "parse_route", "preset", "select_tokens"]

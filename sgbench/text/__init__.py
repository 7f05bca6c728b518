"""Text conditioning: encoders (prompts -> token embeddings, mask, pooled embedding) and prompt files.

`TextEncoder` (sgbench.text.encoder) is the one interface; `ENCODERS` names the two implementations
(`embedded`, `open_clip`). A text model (`SiT` with a `TextConfig`) owns its encoder: `model.encode_text`.
"""

from sgbench.text.encoder import ENCODERS, TextConfig, TextEmbedding, TextEncoder

__all__ = ["ENCODERS", "TextConfig", "TextEmbedding", "TextEncoder"]

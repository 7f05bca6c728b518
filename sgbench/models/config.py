"""A backbone's configuration: size, sparsity (routes or masking), conditioning (classes or text),
preconditioning and prediction, the token-drop arithmetic, and the named presets (DiT's sizes and the
embedded benchmarks'). Stored beside the weights in every sgbench checkpoint."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from sgbench.text.encoder import TextConfig
from sgbench.utils.errors import SgbenchError

# ----------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class Route:
    """Tokens skip blocks start..end (inclusive, 0-based); `rate` is the training drop rate."""

    start: int
    end: int
    rate: float = 0.5


@dataclass(frozen=True)
class Masking:
    """MaskDiT: drop `rate` of the tokens before the encoder; a decoder restores the full set."""

    rate: float = 0.5
    decoder_depth: int = 8
    decoder_width: int = 512
    decoder_heads: int = 16
    # MaskDiT's decoder input layer: an adaLN-modulated LayerNorm before the linear embedding (imported
    # MaskDiT checkpoints); False: the linear embedding alone (models trained by sgbench).
    embed_adaln: bool = False


@dataclass(frozen=True)
class EDM:
    """The network is EDM's F (Karras et al. 2022, Table 1): D(x; sigma) = c_skip x + c_out F(c_in x, c_noise).

    Our t maps to sigma = (1 - t) / t with x_edm = x_t / t; `SiT.forward` still returns the velocity
    v = (D - x_t) / (1 - t), written so that it is finite at t = 0 and t = 1 (see `edm_velocity`).
    c_noise = log(sigma) / 4 is infinite at t = 0 (pure noise) and t = 1: there sigma is clamped to EDM's
    sampling range [sigma_min, sigma_max], where EDM's own samplers start and end.
    """

    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 80.0


@dataclass(frozen=True)
class ModelConfig:
    input_size: int  # spatial size of the model's input (latent or pixel), square
    in_channels: int
    patch_size: int
    hidden_size: int
    depth: int
    num_heads: int
    num_classes: int  # the null class (for guidance) gets index num_classes; 0 for a text model
    mlp_ratio: float = 4.0
    learn_sigma: bool = False  # DiT/SiT checkpoints output 2C channels; the second half is ignored
    time_scale: float = 1000.0  # t in [0, 1] is multiplied by this before the sinusoidal embedding
    routes: tuple[Route, ...] = ()
    masking: Masking | None = None
    edm: EDM | None = None  # EDM preconditioning of an imported network; None: the network is the velocity
    name: str = "custom"
    text: TextConfig | None = None  # a text-to-image model: prompts instead of classes
    # What the network's output is: "velocity" (SiT) or "data", the clean image x_hat, turned into
    # v = (x_hat - x_t) / (1 - t) (`velocity_from_data`). Predicting data is what makes pixel patches far
    # wider than the model work (JiT: Li & He 2025, "Back to Basics: Let Denoising Generative Models
    # Denoise"): clean images lie near a low-dimensional manifold, noise and velocity do not.
    prediction: str = "velocity"

    def __post_init__(self):
        validate_config(self)

    @property
    def num_tokens(self) -> int:
        return (self.input_size // self.patch_size) ** 2

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    @property
    def sparsity_kind(self) -> str:
        """'routing', 'masking' or 'dense'."""
        return "masking" if self.masking is not None else ("routing" if self.routes else "dense")

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.text is None:
            del d["text"]  # class models' stored configs stay what they were
        if self.prediction == "velocity":
            del d["prediction"]  # likewise for velocity models
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["routes"] = tuple(Route(**r) for r in d.get("routes", ()))
        if d.get("masking") is not None:
            d["masking"] = Masking(**d["masking"])
        if d.get("edm") is not None:
            d["edm"] = EDM(**d["edm"])
        if d.get("text") is not None:
            d["text"] = TextConfig.from_dict(d["text"])
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise SgbenchError(f"Unknown model config keys {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


PREDICTIONS = ("velocity", "data")


def validate_config(cfg: ModelConfig) -> None:
    if cfg.prediction not in PREDICTIONS:
        raise SgbenchError(f"Unknown prediction {cfg.prediction!r}; allowed: {', '.join(PREDICTIONS)}")
    if cfg.prediction == "data" and cfg.edm is not None:
        raise SgbenchError("An EDM-preconditioned network has its own output parameterisation: prediction must be 'velocity'")
    if cfg.input_size % cfg.patch_size:
        raise SgbenchError(f"input_size {cfg.input_size} is not divisible by patch_size {cfg.patch_size}")
    if cfg.hidden_size % cfg.num_heads:
        raise SgbenchError(f"hidden_size {cfg.hidden_size} is not divisible by num_heads {cfg.num_heads}")
    if cfg.routes and cfg.masking is not None:
        raise SgbenchError("A model uses either routing (routes) or masking, not both")
    if cfg.text is not None and cfg.num_classes != 0:
        raise SgbenchError(f"A text model has no classes: expected num_classes 0 but got {cfg.num_classes}")
    last_end = -1
    for r in cfg.routes:
        if not (0 <= r.start <= r.end < cfg.depth):
            raise SgbenchError(
                f"Route {r.start}..{r.end} is outside the model's blocks: expected 0 <= start <= end <= {cfg.depth - 1}"
            )
        if r.start <= last_end:
            raise SgbenchError("Routes must be in block order and must not overlap")
        last_end = r.end
        check_rate(r.rate, "route rate")
    if cfg.masking is not None:
        check_rate(cfg.masking.rate, "masking rate")
        if cfg.masking.decoder_width % cfg.masking.decoder_heads:
            raise SgbenchError("masking decoder_width must be divisible by decoder_heads")


def check_rate(gamma: float, what: str = "sparsity") -> None:
    if not (0.0 <= float(gamma) < 1.0):
        raise SgbenchError(f"Expected {what} in [0, 1) (the fraction of tokens dropped) but got {gamma}")




def num_kept(num_tokens: int, gamma: float) -> int:
    """kept = N - floor(N * gamma): the official TREAD router's rounding."""
    return num_tokens - math.floor(num_tokens * gamma)


# ----------------------------------------------------------------------------------------------------
# Presets: DiT's sizes (S, B, L, XL with patch 2, 4, 8) for ImageNet-256 latents (32x32x4) and small
# ones for the embedded Animal-MNIST benchmark (32x32x1 pixels).

SIZES = {  # name: (hidden_size, depth, num_heads)
    "S": (384, 12, 6),
    "B": (768, 12, 12),
    "L": (1024, 24, 16),
    "XL": (1152, 28, 16),
}

PRESETS: dict[str, ModelConfig] = {}
for _family in ("SiT", "DiT"):
    for _size, (_d, _depth, _heads) in SIZES.items():
        for _p in (2, 4, 8):
            _name = f"{_family}-{_size}/{_p}"
            PRESETS[_name] = ModelConfig(
                input_size=32, in_channels=4, patch_size=_p, hidden_size=_d, depth=_depth, num_heads=_heads,
                num_classes=1000, learn_sigma=True, time_scale=1.0 if _family == "SiT" else 1000.0, name=_name,
            )
# Embedded benchmark: 32x32 grayscale, 10 classes, patch 4 -> 64 tokens.
PRESETS["Animal-T/4"] = ModelConfig(
    input_size=32, in_channels=1, patch_size=4, hidden_size=128, depth=8, num_heads=4, num_classes=10,
    name="Animal-T/4",
)
PRESETS["Animal-S/4"] = ModelConfig(
    input_size=32, in_channels=1, patch_size=4, hidden_size=192, depth=8, num_heads=6, num_classes=10,
    name="Animal-S/4",
)
# Embedded text-to-image benchmark: 48x48 RGB animal scenes, patch 6 -> 64 tokens (recipes/t2i/);
# the text encoder comes from the recipe (model.text).
PRESETS["Scenes-T/6"] = ModelConfig(
    input_size=48, in_channels=3, patch_size=6, hidden_size=128, depth=8, num_heads=4, num_classes=0,
    name="Scenes-T/6",
)
PRESETS["Tiny-test"] = ModelConfig(  # for tests: a few thousand parameters
    input_size=8, in_channels=1, patch_size=2, hidden_size=32, depth=4, num_heads=2, num_classes=3, name="Tiny-test",
)


def preset(name: str, /, **overrides) -> ModelConfig:
    """A preset config with fields replaced, e.g. preset('SiT-XL/2', routes=(Route(2, 24, 0.5),))."""
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, PRESETS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise SgbenchError(f"Unknown model preset '{name}'.{hint} Available: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def parse_route(spec: str, rate: float = 0.5) -> Route:
    """'2:24' or '2:24:0.5' -> Route(2, 24, rate)."""
    parts = spec.split(":")
    try:
        if len(parts) == 2:
            return Route(int(parts[0]), int(parts[1]), rate)
        if len(parts) == 3:
            return Route(int(parts[0]), int(parts[1]), float(parts[2]))
    except ValueError:
        pass
    raise SgbenchError(f"Expected a route as START:END or START:END:RATE (blocks inclusive, 0-based) but got '{spec}'")

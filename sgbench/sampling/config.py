"""A sampling run's configuration: what determines its samples (its identity) and the checks made
before anything is loaded or written."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from sgbench.core.flow import check_solver
from sgbench.runs.rundir import RUN_FORMAT, as_json
from sgbench.sampling.decoding import resolve_decoder
from sgbench.text.prompts import PromptFile, read_prompt_file
from sgbench.utils import distributed
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import cached_sha256


@dataclass(frozen=True)
class SampleConfig:
    checkpoint: str
    out: str
    guidance: str = "unguided"
    guidance_params: dict = field(default_factory=dict)  # as given; canonical after construction (every parameter, typed)
    guide: str | None = None  # guide checkpoint for ag / ag+sg
    num: int = 64
    batch_size: int = 64
    steps: int = 40
    solver: str = "euler"
    seed: int = 0
    labels: str = "balanced"  # or "random"
    device: str = "cpu"
    vae: str | None = None  # latent models: VAE directory or HF cache name; None: the one the checkpoint records
    precision: str = "fp32"  # or "bf16": model forwards under bfloat16 autocast (CUDA; CPUs with bf16 matmuls)
    prompts: str | None = None  # text models: a prompts file (GenEval's evaluation_metadata.jsonl, or one per line)
    images_per_prompt: int = 1  # text models: sample i shows prompt i // images_per_prompt

    def __post_init__(self):
        """Build the guidance method once, here: its parameters parsed, validated and defaults filled, so
        equal settings are equal configurations however they were spelled (`-g sg` and `--gs 0.5 --gw 0.9`,
        YAML's 0.5 and the CLI's '0.5'), and every consumer reads the same typed method."""
        from sgbench.core.guidance import build_guidance

        method = build_guidance(self.guidance, **self.guidance_params)
        object.__setattr__(self, "_method", method)
        object.__setattr__(self, "guidance_params", method.params)

    def method(self):
        """The guidance method this run samples with (built once, in __post_init__)."""
        return self._method

    def identity(self) -> dict:
        """What determines the samples, as JSON: a resumed run must match it (batch size, device and
        output folder don't). The weights' hashes belong to it: a checkpoint retrained in place must not
        resume (or let `sgbench bench` reuse) samples of the old weights; so does the VAE's identity (not
        its path), so samples decoded by another VAE never resume a run. Pixel fp32 runs keep the
        identity they had before latent decoding and precision existed."""
        d = asdict(self)
        for k in ("batch_size", "device", "out", "vae", "precision", "prompts", "images_per_prompt"):
            d.pop(k)
        if self.precision != "fp32":
            d["precision"] = self.precision
        if self.prompts is not None:  # text runs: the prompts' content, not the file's path
            d.pop("labels")
            d["prompts_sha256"] = cached_sha256(self.prompts)
            d["images_per_prompt"] = self.images_per_prompt
        decoder = resolve_decoder(self)
        if decoder is not None:
            d["decoder"] = {k: v for k, v in decoder.items() if k != "source"}
        d["checkpoint_sha256"] = cached_sha256(self.checkpoint)
        d["guide_sha256"] = cached_sha256(self.guide) if self.guide else None
        d["run_format"] = RUN_FORMAT
        return as_json(d)

    def validate(self) -> PromptFile | None:
        """Everything that can be checked without loading a model, before anything is written. Returns the
        prompts file as read (None without --prompts), so that sampling reads it only this once."""
        from sgbench.core.guidance import REGISTRY

        if self.prompts is not None and self.images_per_prompt < 1:  # before --num-samples, which the CLI derives from it
            raise SgbenchError(f"Expected --images-per-prompt >= 1 but got {self.images_per_prompt}")
        if self.num < 1 or self.batch_size < 1:
            raise SgbenchError(f"Expected --num-samples >= 1 and --batch-size >= 1 but got {self.num} and {self.batch_size}")
        if self.labels not in LABELS:
            raise SgbenchError(f"Expected --labels {' or '.join(LABELS)} but got '{self.labels}'")
        check_solver(self.solver, self.steps)
        if self.seed < 0:  # seeding.derive_seed hashes it with numpy's SeedSequence: any integer >= 0, no upper bound
            raise SgbenchError(f"Expected --seed >= 0 (any non-negative integer) but got {self.seed}")
        if self.precision not in PRECISIONS:
            raise SgbenchError(f"Expected --precision {' or '.join(PRECISIONS)} but got '{self.precision}'")
        guided_by_a_model = [name for name, cls in REGISTRY.items() if cls.needs_guide]
        if self.guide is not None and self.guidance in REGISTRY and self.guidance not in guided_by_a_model:
            raise SgbenchError(f"--guide is a checkpoint for {' and '.join(guided_by_a_model)}; {self.guidance} runs no guide model: "
                               "drop --guide")
        for path, option in ((self.checkpoint, "--checkpoint"), (self.guide, "--guide")):
            if path is not None and not Path(path).is_file():
                raise SgbenchError(f"Checkpoint not found: {path} ({option}; expected a .safetensors file written by sgbench)")
        distributed.parse_device(self.device)
        resolve_decoder(self)
        if self.prompts is None:
            return None
        prompts = read_prompt_file(self.prompts)
        available = len(prompts.records) * self.images_per_prompt
        if self.num > available:
            raise SgbenchError(f"Expected --num-samples <= {available} ({self.images_per_prompt} images for each prompt of "
                               f"{self.prompts}) but got {self.num}")
        return prompts

    def check_model(self, config) -> None:
        """Text models sample from prompts, class models from labels."""
        if config.text is not None and self.prompts is None:
            raise SgbenchError(f"{self.checkpoint} is a text-to-image model: give it prompts with --prompts FILE")
        if config.text is None and self.prompts is not None:
            raise SgbenchError(f"{self.checkpoint} is class-conditional: it takes no --prompts")


def read_prompt_texts(path: str | Path) -> list[str]:
    """The prompt strings of a prompts file, in order (one-line errors for a bad file)."""
    return read_prompt_file(path).texts


LABELS = ("balanced", "random")
PRECISIONS = ("fp32", "bf16")

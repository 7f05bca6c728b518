"""Conditions for guidance branches: class labels or prompts, behind one small interface.

A guidance branch names the kind of condition it runs on (docs/design.md, "Guidance"):

    "cond"    the sample's own condition: its class, or its prompt
    "null"    no condition: the null class, or the empty prompt (trained by dropping 10% of captions)
    "random"  ICG's independent condition: a class drawn uniformly from the K classes, or a prompt drawn
              uniformly from the run's prompt set, per sample and step (stream seeding.ICG_LABEL), so
              the draw never depends on the batch

A conditioning object turns a kind into the model's input for the batch (`batch`) and stacks the
inputs of branches that run as one forward (`concat`). Guidance methods never see which one it is:
their formulas are the same for class and text models.

Text: a `PromptSet` holds the run's prompts and encodes them once per model (the main model and, for
autoguidance, the guide: each has its own trained text layers); every batch, step and branch indexes
those encodings. So each prompt is encoded once, not once per step or branch.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Sequence, Union

import torch

from sgbench.utils.errors import SgbenchError
from sgbench.core.seeding import ICG_LABEL, sample_generators
from sgbench.text.encoder import TextEmbedding

KINDS = ("cond", "null", "random")
ENCODE_CHUNK = 256  # prompts per encoder call when a prompt set is encoded


def random_labels(seed: int, indices: Sequence[int], step: int, num_classes: int) -> torch.Tensor:
    """ICG's condition: uniform over num_classes (classes, or prompts of a set), per sample and step."""
    gens = sample_generators(seed, indices, ICG_LABEL, step)
    return torch.stack([torch.randint(num_classes, (), generator=g) for g in gens]).long()


# ----------------------------------------------------------------------------------------------------
# Class labels


@dataclass
class ClassConditioning:
    labels: torch.Tensor  # (B,) long, the samples' classes

    def batch(self, kind: str, *, model, seed: int, indices: Sequence[int], step: int) -> torch.Tensor:
        """The class labels (B,) of condition `kind` for `model` (main or guide)."""
        if model.config.text is not None:
            raise SgbenchError(f"Model {model.config.name} is a text model: it takes prompts, not class labels")
        if kind == "cond":
            return self.labels
        if kind == "null":
            return torch.full_like(self.labels, model.null_class)
        return random_labels(seed, indices, step, model.config.num_classes).to(self.labels.device)

    @staticmethod
    def concat(parts: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(parts))


# ----------------------------------------------------------------------------------------------------
# Prompts


class PromptSet:
    """A run's prompts, encoded once per model on first use (under no_grad: for sampling)."""

    def __init__(self, prompts: Sequence[str]):
        if not prompts:
            raise SgbenchError("Expected at least one prompt but got none")
        self.prompts = list(prompts)
        self._encoded: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __len__(self) -> int:
        return len(self.prompts)

    @torch.no_grad()
    def encoded(self, model) -> tuple[TextEmbedding, TextEmbedding]:
        """(every prompt of the set (P, L, D), the empty prompt (1, L, D)) encoded by `model`."""
        if model not in self._encoded:
            texts = self.prompts + [""]
            parts = [model.encode_text(texts[k : k + ENCODE_CHUNK]) for k in range(0, len(texts), ENCODE_CHUNK)]
            every = TextEmbedding.cat(parts)
            P = len(self.prompts)
            self._encoded[model] = (every.select(torch.arange(P)), every.select(torch.tensor([P])))
        return self._encoded[model]


@dataclass
class PromptConditioning:
    prompt_set: PromptSet
    prompt_ids: torch.Tensor  # (B,) long: each sample's prompt, an index into prompt_set

    def batch(self, kind: str, *, model, seed: int, indices: Sequence[int], step: int) -> TextEmbedding:
        """The encoded prompts (B, L, D) of condition `kind` for `model` (main or guide)."""
        prompts, empty = self.prompt_set.encoded(model)
        if kind == "cond":
            return prompts.select(self.prompt_ids)
        if kind == "null":
            return empty.select(torch.zeros(len(self.prompt_ids), dtype=torch.long))
        return prompts.select(random_labels(seed, indices, step, len(self.prompt_set)))

    @staticmethod
    def concat(parts: Sequence[TextEmbedding]) -> TextEmbedding:
        return TextEmbedding.cat(parts)


Conditioning = Union[ClassConditioning, PromptConditioning]


def prompt_ids(indices: Sequence[int], images_per_prompt: int) -> torch.Tensor:
    """The prompt of each sample index (B,) long: i // images_per_prompt."""
    if images_per_prompt < 1:
        raise SgbenchError(f"Expected --images-per-prompt >= 1 but got {images_per_prompt}")
    return torch.tensor([int(i) // images_per_prompt for i in indices], dtype=torch.long)


def prompt_conditioning(prompt_set: PromptSet, indices: Sequence[int], images_per_prompt: int) -> PromptConditioning:
    """The conditioning of samples `indices` (what `GuidanceMethod.velocity(conditioning=...)` takes)."""
    ids = prompt_ids(indices, images_per_prompt)
    if len(ids) and int(ids.max()) >= len(prompt_set):
        raise SgbenchError(
            f"Sample {max(indices)} needs prompt {int(ids.max())} but there are {len(prompt_set)} prompts "
            f"({images_per_prompt} images each: at most {len(prompt_set) * images_per_prompt} samples)"
        )
    return PromptConditioning(prompt_set, ids)

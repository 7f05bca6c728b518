"""The `embedded` text encoder's base: a word-level tokenizer and a token table trained with the model.

Token ids: 0 is padding, 1 the start token that begins every prompt, 2.. the vocabulary's words in
order. The vocabulary is stored in the model's config, so a checkpoint tokenizes as it was trained.
"""

from __future__ import annotations

import difflib
import re
from typing import Sequence

import torch
import torch.nn as nn

from sgbench.utils.errors import SgbenchError

PAD, START = 0, 1
WORD = re.compile(r"[a-z0-9]+")


def split_words(prompt: str) -> list[str]:
    """Lower-cased words; punctuation separates words and is dropped ('A bear, left of a cat.')."""
    return WORD.findall(prompt.lower())


def named_vocabulary(name: str) -> tuple[str, ...]:
    """A dataset's caption vocabulary by name (what a recipe's `text.vocabulary` names)."""
    if name == "animal_scenes":
        from sgbench.data.scenes import caption_vocabulary

        return tuple(caption_vocabulary())
    raise SgbenchError(f"Unknown text vocabulary '{name}'; expected animal_scenes")


class WordTokenizer:
    def __init__(self, vocabulary: Sequence[str], max_length: int):
        self.max_length = max_length
        self.ids = {w: i + 2 for i, w in enumerate(vocabulary)}
        if len(self.ids) != len(vocabulary) or any(split_words(w) != [w] for w in vocabulary):
            raise SgbenchError("Expected a vocabulary of distinct lower-case words (letters and digits)")

    def __call__(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """B prompts -> token ids (B, L) long and mask (B, L) bool, L = max_length."""
        ids = torch.full((len(prompts), self.max_length), PAD, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            tokens = [START] + [self._id(w, prompt) for w in split_words(prompt)]
            if len(tokens) > self.max_length:
                raise SgbenchError(
                    f"Expected a prompt of at most {self.max_length - 1} words for this model but got "
                    f"{len(tokens) - 1}: '{prompt}'"
                )
            ids[row, : len(tokens)] = torch.tensor(tokens)
        return ids, ids != PAD

    def _id(self, word: str, prompt: str) -> int:
        if word not in self.ids:
            close = difflib.get_close_matches(word, self.ids, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise SgbenchError(
                f"The prompt '{prompt}' has the word '{word}', which is not in this model's vocabulary of "
                f"{len(self.ids)} words{hint}"
            )
        return self.ids[word]


class WordEmbeddings(nn.Module):
    """prompts -> (token table + learned positions) (B, L, D_text), mask (B, L)."""

    def __init__(self, config):
        super().__init__()
        self.tokenizer = WordTokenizer(config.vocabulary, config.max_length)
        self.embedding = nn.Embedding(len(config.vocabulary) + 2, config.width)
        self.position = nn.Parameter(torch.zeros(1, config.max_length, config.width))
        # Unit-scale words (positions at half that: a word stays itself at any position, cosine 0.8):
        # at GPT's 0.02 the first updates of the trainable layers outgrow the embeddings, their shared
        # GELU-mean direction takes over, and every prompt encodes alike (measured: cosine 0.999).
        nn.init.normal_(self.embedding.weight, std=1.0)
        nn.init.normal_(self.position, std=0.5)

    def forward(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenizer(prompts)
        ids, mask = ids.to(self.position.device), mask.to(self.position.device)
        return self.embedding(ids) + self.position, mask

"""Per-sample random streams (docs/design.md, "Randomness").

Sample i of a run draws its noise, its label and every token selection from generators seeded by
(run seed, i, stream, ...). Nothing depends on the batch a sample lands in, the number of processes,
or the point a run was resumed from.
"""

from __future__ import annotations

import numpy as np
import torch

# Stream identifiers: the second key of every per-sample seed. Never renumber (it changes samples).
NOISE = 0
LABEL = 1
TOKENS = 2  # token selection; further keys: step, branch
ICG_LABEL = 3  # independent condition guidance's random class; further keys: step
TRAIN = 4  # training batches; further keys: step, rank


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from a tuple of non-negative integers (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded by `derive_seed(*keys)`."""
    g = torch.Generator()
    g.manual_seed(derive_seed(*keys))
    return g


def sample_generators(seed: int, indices, stream: int, *extra: int) -> list[torch.Generator]:
    """One generator per sample index, for `stream` and any further keys (step, branch)."""
    return [generator(seed, int(i), stream, *extra) for i in indices]


def sample_noise(seed: int, indices, shape: tuple[int, ...]) -> torch.Tensor:
    """Initial noise z for the given sample indices: (len(indices), *shape), float32, CPU."""
    return torch.stack([torch.randn(shape, generator=g) for g in sample_generators(seed, indices, NOISE)])


def sample_labels(seed: int, indices, num_classes: int, *, balanced: bool = True) -> torch.Tensor:
    """Class labels: i mod K (class-balanced, the ADM/MAR convention) or drawn per sample."""
    if balanced:
        return torch.tensor([int(i) % num_classes for i in indices], dtype=torch.long)
    gens = sample_generators(seed, indices, LABEL)
    return torch.stack([torch.randint(num_classes, (), generator=g) for g in gens]).long()

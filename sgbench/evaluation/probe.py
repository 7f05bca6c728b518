"""The attribute-swap probe: does a text model use each word of its caption? Cheap enough to log during
training, so a recipe that will not learn is stopped early instead of after its whole budget.

For a held-out scene, the model denoises the same x_t (same noise z, same t) under its true caption and
under the caption with ONE attribute changed; the probe counts how often the true caption gives the
lower error ||v(x_t, t, c) - (x - z)||^2 (a tie counts one half). 0.5 means the model ignores that
attribute; 1.0 means it always prefers the truth. Attributes:

    class           the (first) object's class            "a red cow"          -> "a red dog"
    second_class    the second object's class             "a cow and a dog"    -> "a cow and a cat"
    colour          one named colour                      "a red cow"          -> "a blue cow"
    one_vs_two      one object against two                "a cow"              -> "two cows"
    count           a count of 2-4 against another one    "three cows"         -> "two cows"
    colour_binding  the colours of two objects swapped    "a red cow and a blue dog" -> "a blue cow and a red dog"
    relation        the relation reversed                 "a cow left of a dog" -> "a cow right of a dog"

Scenes come from their own stream (`PROBE_STREAM`), never a training stream; each attribute is scored on
the first `scenes` scenes it applies to. Everything is seeded: the same model gives the same numbers.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from sgbench.data.geneval_words import COLORS, MAX_COUNT, MIN_COUNT, RELATIONS
from sgbench.data.scenes import DEFAULT_LAYOUT, DEFAULT_OBJECTS, DEFAULT_SPRITE, describe, training_scene
from sgbench.utils.errors import SgbenchError

ATTRIBUTES = ("class", "second_class", "colour", "one_vs_two", "count", "colour_binding", "relation")
PROBE_STREAM = 987_654_321  # the scenes' stream seed: disjoint from training streams (their recipes' train.seed)
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
assert set(OPPOSITE) == set(RELATIONS)


def caption_groups(metadata: dict) -> tuple[list[tuple[str, int, str | None]], str | None]:
    """(groups [(class, count, colour or None)] in caption order, relation or None) of a scene's GenEval
    metadata: for a relation, GenEval lists the referenced group first, the caption names it second."""
    include = metadata["include"]
    groups = [(c["class"], c["count"], c.get("color")) for c in include]
    positioned = [i for i, c in enumerate(include) if c.get("position")]
    if not positioned:
        return groups, None
    relation, target = include[positioned[0]]["position"]
    return [groups[positioned[0]], groups[target]], relation


def altered(groups, relation, attribute: str, rng: random.Random, classes: tuple[str, ...]):
    """(groups, relation) with `attribute` changed, or None where the scene has no such attribute."""
    names = {g[0] for g in groups}
    if attribute in ("class", "second_class"):
        k = 0 if attribute == "class" else 1
        if k >= len(groups):
            return None
        name, count, color = groups[k]
        new = rng.choice([c for c in classes if c not in names])
        return [*groups[:k], (new, count, color), *groups[k + 1 :]], relation
    if attribute == "colour":
        coloured = [k for k, g in enumerate(groups) if g[2]]
        if not coloured:
            return None
        k = coloured[0]
        name, count, color = groups[k]
        taken = {g[2] for g in groups}
        return [*groups[:k], (name, count, rng.choice([c for c in COLORS if c not in taken])), *groups[k + 1 :]], relation
    if attribute == "one_vs_two":
        if len(groups) != 1 or groups[0][1] not in (1, 2):
            return None
        name, count, color = groups[0]
        return [(name, 3 - count, color)], relation
    if attribute == "count":
        if len(groups) != 1 or not MIN_COUNT <= groups[0][1] <= MAX_COUNT:
            return None
        name, count, color = groups[0]
        return [(name, rng.choice([n for n in range(MIN_COUNT, MAX_COUNT + 1) if n != count]), color)], relation
    if attribute == "colour_binding":
        if len(groups) != 2 or not (groups[0][2] and groups[1][2]) or groups[0][2] == groups[1][2]:
            return None
        (a, na, ca), (b, nb, cb) = groups
        return [(a, na, cb), (b, nb, ca)], relation
    if attribute == "relation":
        return (groups, OPPOSITE[relation]) if relation else None
    raise SgbenchError(f"Unknown probe attribute '{attribute}'; expected one of {', '.join(ATTRIBUTES)}")


def probe_pairs(attribute: str, scenes: int, *, canvas: int, sprite: int, classes: tuple[str, ...], objects: str = DEFAULT_OBJECTS,
                layout: str = DEFAULT_LAYOUT, max_draws: int = 20_000):
    """The first `scenes` probe scenes `attribute` applies to: (images uint8 (S, H, W, 3), true captions,
    altered captions). The caption keeps the scene's own phrasing ("a photo of", "one")."""
    images, true, false = [], [], []
    for index in range(max_draws):
        scene = training_scene(PROBE_STREAM, index, canvas=canvas, sprite=sprite, objects=objects, layout=layout)
        groups, relation = caption_groups(scene.metadata)
        change = altered(groups, relation, attribute, random.Random(f"probe:{attribute}:{index}"), classes)
        if change is None:
            continue
        prefix = scene.caption.startswith("a photo of")
        one = " one " in f" {scene.caption} "
        if describe(groups, relation, prefix=prefix, one=one)[0] != scene.caption:
            continue  # a phrasing describe() does not reproduce: skip rather than compare two rewordings
        images.append(scene.image)
        true.append(scene.caption)
        false.append(describe(*change, prefix=prefix, one=one)[0])
        if len(images) == scenes:
            return np.stack(images), true, false
    raise SgbenchError(f"Only {len(images)} of the first {max_draws} probe scenes have attribute '{attribute}'")


@torch.no_grad()
def attribute_probe(model, *, scenes: int = 300, batch_size: int = 100, attributes=ATTRIBUTES, canvas: int | None = None,
                    sprite: int = DEFAULT_SPRITE, objects: str = DEFAULT_OBJECTS, layout: str = DEFAULT_LAYOUT,
                    seed: int = 0, t: float | None = None) -> dict[str, float]:
    """{attribute: fraction of scenes whose true caption gives the lower denoising error} for a text model
    trained on Animal scenes. Noise and t (uniform in [0.1, 0.9]) are drawn per scene from `seed`, the same
    for the true and the altered caption. A fixed `t` (0 noise, 1 data) scores every scene at that time
    instead, with the same noise: where in the schedule the model uses an attribute (an object's place is
    decided near t = 0, its details later)."""
    from sgbench.data.animal import CLASS_NAMES

    if model.config.text is None:
        raise SgbenchError(f"The attribute probe needs a text model, but {model.config.name} is class-conditional")
    if t is not None and not 0.0 <= t < 1.0:
        raise SgbenchError(f"Expected a probe time t in [0, 1) (0 = pure noise) but got {t}")
    canvas = canvas or model.config.input_size
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = {}
    for attribute in attributes:
        images, true, false = probe_pairs(attribute, scenes, canvas=canvas, sprite=sprite, classes=tuple(CLASS_NAMES), objects=objects,
                                          layout=layout)
        g = torch.Generator().manual_seed(seed)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        z, times = torch.randn(x.shape, generator=g), 0.1 + 0.8 * torch.rand(len(x), generator=g)
        if t is not None:
            times = torch.full_like(times, t)
        wins = 0
        for k in range(0, len(x), batch_size):
            xs, zs, ts = x[k : k + batch_size].to(device), z[k : k + batch_size].to(device), times[k : k + batch_size].to(device)
            x_t = (1 - ts.view(-1, 1, 1, 1)) * zs + ts.view(-1, 1, 1, 1) * xs  # Eq. 1; target v = x - z (Eq. 2)
            errors = [
                (model(x_t, ts, model.encode_text(c[k : k + batch_size])) - (xs - zs)).pow(2).flatten(1).mean(1)
                for c in (true, false)
            ]
            wins += float((errors[0] < errors[1]).sum() + 0.5 * (errors[0] == errors[1]).sum())  # a tie: no preference
        out[attribute] = wins / len(x)
    model.train(was_training)
    return out

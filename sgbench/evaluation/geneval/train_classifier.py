"""Training of the scene object classifiers: one per object style (detect.CLASSIFIER_WEIGHTS), by default
the miniature's (sgbench.data.scenes.DEFAULT_OBJECTS, glyphs).

Silhouettes (`objects="silhouettes"`, the shipped sgbench/assets/scene_object_classifier.safetensors): each
class's 900 `train` silhouettes are carved into FIT (0..799), which the nets learn from, and VAL
(800..899), on which the scoring was chosen (several members, ten views, logits averaged: the lowest
NLL of the combinations tried) and the temperature is fitted; `test` (the silhouettes every
ground-truth silhouette scene is drawn from) is touched only for the held-out numbers.

Crops: one object at a time through the renderer's own path (sgbench.data.scenes: the silhouette
resized to its longest side with antialiasing, faint pixels cut, mirrored half the time, tinted
with a random palette colour, composited and rounded to uint8 on grey), then through the
detector's (find_parts, crop_input). Training sprites: 16 half the time, else 10 to 24 (so the
canvases and sprites a trainer picks are covered), each +- sprite/8 as scenes draw them; half with
Gaussian pixel noise of sigma up to 4 (a generated image's grain must not matter). Every batch is
augmented with a random small affine map (rotation up to 12 degrees, scale 0.88-1.12 per axis,
shift up to 5%) and mirroring: new silhouettes differ from the training ones by such changes.

Classifier: `members` ObjectNets, one seed each, on the same crops; logits averaged over the members
and ten views of the crop, divided by a temperature fitted on VAL (minimum negative log-likelihood),
so the score is a calibrated probability (detect.ObjectClassifier). Evaluation crops (VAL, test)
hold every silhouette at every size silhouette scenes draw at sprite 16 (14 to 18 px), without noise.
Deterministic for a seed on one thread per member, whether members train in turn or side by side in
worker processes. Reproduce: `sgbench geneval train-classifier --objects silhouettes --workers 2`
(`train_scene_classifier(objects="silhouettes")`):
two trainings of about 35 minutes on one CPU thread each, side by side on the 2-core machine, then a
few minutes of evaluation.

Glyphs (`objects="glyphs"`, the shipped sgbench/assets/scene_glyph_classifier.safetensors): the same nets,
crops and augmentation, each object drawn by sgbench.data.glyphs.glyph(class, longest side) instead of a
silhouette; sprite 18 (the glyph scenes' grid sprite) half the time, else 10 to 24, each +- sprite/8; no
mirroring at render time (every glyph is symmetric about its vertical axis). A class has one glyph, so
there are no held-out shapes: fit, VAL and test crops are independent random draws (the streams
(seed, GLYPH_STREAMS[source])). The temperature is fitted on VAL crops each passed once through an
affine map of twice the training's rotation and scale ranges (GLYPH_VAL_STRENGTH): generated images
draw imperfect shapes, and on crops the nets classify all right with wide margins (clean ones, or
distorted as in training) the NLL only falls as the temperature does, so they cannot calibrate the score.
The record holds accuracy on clean crops (every glyph at every size 10..24 px in every colour, `test`),
on test draws distorted as in training (`test_distorted`) and twice as much (`test_distorted_2x`).
Reproduce: `sgbench geneval train-classifier --objects glyphs`, or without --objects (RECIPES["glyphs"]: two
members in turn on one CPU thread, about 10 minutes in all, evaluation included).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

from sgbench.data.animal import CLASS_NAMES
from sgbench.data.geneval_words import BACKGROUND, COLORS
from sgbench.data.glyphs import glyph
from sgbench.data.scenes import DEFAULT_OBJECTS, check_style, jittered_size, tinted_sprite  # the renderer's own sprite path
from sgbench.utils.errors import SgbenchError
from sgbench.evaluation.geneval.detect import (
    CLASSIFIER_WEIGHTS, CROP, RECORD_KEY, ObjectClassifier, ObjectNet, classify, crop_input, find_parts,
    load_object_classifier,
)
from sgbench.models.checkpoint import atomic_save_safetensors
from sgbench.utils.progress import ENV as PROGRESS_ENV
from sgbench.utils.progress import track

TRAIN_COMMAND = "sgbench geneval train-classifier"
FIT_PER_CLASS = 800  # train silhouettes 0..799 of each class fit the nets, 800..899 are VAL
SOURCES = {  # name -> (Animal-MNIST split, silhouette indices within each class)
    "fit": ("train", range(FIT_PER_CLASS)),
    "val": ("train", range(FIT_PER_CLASS, 900)),
    "test": ("test", range(100)),
}
EVAL_SPRITE = 16  # the silhouette scenes' sprite (the first text models'): silhouette evaluation crops
GLYPH_SPRITE = 18  # the glyph scenes' sprite (sgbench.data.scenes.DEFAULT_SPRITE when trained): half the crops
GLYPH_STREAMS = {"fit": 0, "val": 1, "test": 2}  # glyph crops of each source: np.random.default_rng([seed, stream])
GLYPH_SIZES = range(10, 25)  # clean glyph test crops: every glyph at each of these longest sides, in every colour
GLYPH_HELD_OUT = 1000  # random glyph crops drawn for VAL and for each distorted test
GLYPH_VAL_STRENGTH = 2.0  # VAL's distortion, twice the training's: it makes errors, so the temperature is identified
RECIPES = {  # objects -> the shipped classifier's training size (sgbench/assets/README.md)
    "silhouettes": {"members": 2, "scenes": 16000, "epochs": 60},
    "glyphs": {"members": 2, "scenes": 8000, "epochs": 20},
}


# ---------------------------------------------------------------------------------------------------
# Crops through the renderer's and the detector's path

def render_object(split: str, class_id: int, which: int, longest: int, *, mirror: bool, color: str,
                  offset: tuple[int, int], noise: float, rng: np.random.Generator) -> np.ndarray:
    """One silhouette drawn as scenes draw it, alone on grey, through the detector -> crop float32 (CROP, CROP)."""
    alpha = tinted_sprite(split, class_id, which, longest)
    if mirror:
        alpha = alpha[:, ::-1]
    return composite_crop(alpha, color=color, offset=offset, noise=noise, rng=rng)


def composite_crop(alpha: np.ndarray, *, color: str, offset: tuple[int, int], noise: float,
                   rng: np.random.Generator | None) -> np.ndarray:
    """An object's alpha (h, w) tinted and composited as scenes do, alone on grey, through the detector -> crop."""
    h, w = alpha.shape
    side = 2 * (max(h, w) + 3)  # the object covers under a quarter: the median is the grey
    image = np.empty((side, side, 3), np.float32)
    image[...] = BACKGROUND
    y, x = offset[0] % (side - h - 1) + 1, offset[1] % (side - w - 1) + 1
    tint = np.asarray(COLORS[color], np.float32) - np.asarray(BACKGROUND, np.float32)
    image[y : y + h, x : x + w] = alpha[:, :, None] * tint + np.asarray(BACKGROUND, np.float32)
    image = np.rint(image)
    if noise > 0:
        image = image + rng.normal(0, noise, image.shape)
    parts = find_parts(np.clip(image, 0, 255).astype(np.uint8))
    return crop_input(max(parts, key=lambda p: (p.alpha > 0).sum()).alpha)


def render_crops(seed: int, count: int, *, source: str) -> tuple[np.ndarray, np.ndarray]:
    """`count` random training crops of `source` silhouettes -> crops float32 (count, CROP, CROP), labels int64.

    Class, silhouette, colour, mirror uniform; sprite 16 half the time, else uniform in 10..24; the
    longest side sprite +- sprite/8; Gaussian noise of sigma uniform in 0..4 on half of them.
    """
    split, silhouettes = SOURCES[source]
    rng = np.random.default_rng(seed)
    crops, labels = np.empty((count, CROP, CROP), np.float32), np.empty(count, np.int64)
    colors = tuple(COLORS)
    for i in range(count):
        label = int(rng.integers(len(CLASS_NAMES)))
        sprite = 16 if rng.random() < 0.5 else int(rng.integers(10, 25))
        longest = sprite + int(rng.integers(-jittered_size(sprite), jittered_size(sprite) + 1))
        which = silhouettes[int(rng.integers(len(silhouettes)))]
        noise = rng.uniform(0, 4) if rng.random() < 0.5 else 0.0
        crops[i] = render_object(split, label, which, longest, mirror=bool(rng.random() < 0.5),
                                 color=colors[rng.integers(len(colors))], offset=tuple(rng.integers(0, 64, 2)),
                                 noise=noise, rng=rng)
        labels[i] = label
    return crops, labels


def render_glyph_crops(seed: int, count: int, *, source: str) -> tuple[np.ndarray, np.ndarray]:
    """`count` random glyph crops from the stream (seed, GLYPH_STREAMS[source]) -> crops (count, CROP, CROP), labels.

    Class and colour uniform; sprite GLYPH_SPRITE half the time, else uniform in 10..24; the longest
    side sprite +- sprite/8; Gaussian noise of sigma uniform in 0..4 on half of them.
    """
    rng = np.random.default_rng([seed, GLYPH_STREAMS[source]])
    crops, labels = np.empty((count, CROP, CROP), np.float32), np.empty(count, np.int64)
    colors = tuple(COLORS)
    for i in range(count):
        label = int(rng.integers(len(CLASS_NAMES)))
        sprite = GLYPH_SPRITE if rng.random() < 0.5 else int(rng.integers(10, 25))
        longest = sprite + int(rng.integers(-jittered_size(sprite), jittered_size(sprite) + 1))
        noise = rng.uniform(0, 4) if rng.random() < 0.5 else 0.0
        crops[i] = composite_crop(glyph(label, longest), color=colors[rng.integers(len(colors))],
                                  offset=tuple(rng.integers(0, 64, 2)), noise=noise, rng=rng)
        labels[i] = label
    return crops, labels


def glyph_evaluation_crops(sizes: range = GLYPH_SIZES) -> tuple[np.ndarray, np.ndarray]:
    """Every glyph at every longest side in `sizes`, in every colour, no noise (clean: what the scenes draw)."""
    crops, labels = [], []
    for label in range(len(CLASS_NAMES)):
        for longest in sizes:
            for color in COLORS:
                crops.append(composite_crop(glyph(label, longest), color=color, offset=(0, 0), noise=0.0, rng=None))
                labels.append(label)
    return np.stack(crops), np.asarray(labels, np.int64)


def distorted(crops: np.ndarray, seed: int, strength: float) -> np.ndarray:
    """Each crop through one random draw of the training's affine map (_augment) at `strength` (1: as trained)."""
    with torch.no_grad():
        x = _augment(torch.from_numpy(crops)[:, None], torch.Generator().manual_seed(seed), strength)
    return x[:, 0].numpy()


def evaluation_crops(source: str, *, sprite: int = EVAL_SPRITE, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every `source` silhouette at every longest side sprite +- sprite/8 (random colour and mirror, no noise)."""
    split, silhouettes = SOURCES[source]
    rng = np.random.default_rng(seed)
    colors = tuple(COLORS)
    crops, labels = [], []
    for label in range(len(CLASS_NAMES)):
        for which in silhouettes:
            for longest in range(sprite - jittered_size(sprite), sprite + jittered_size(sprite) + 1):
                crops.append(render_object(split, label, which, longest, mirror=bool(rng.random() < 0.5),
                                           color=colors[rng.integers(len(colors))],
                                           offset=tuple(rng.integers(0, 64, 2)), noise=0.0, rng=rng))
                labels.append(label)
    return np.stack(crops), np.asarray(labels, np.int64)


def accuracy_record(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1 accuracy, the fraction also scored above 0.9 (GenEval's counting bar), NLL, per-class accuracy.

    `counting_estimate`: the mean over n = 2, 3, 4 of (right and above 0.9)^n, what a ground-truth
    counting prompt of n animals scores if objects were independent.
    """
    right = probs.argmax(1) == labels
    confident = (right & (probs.max(1) > 0.9)).mean()
    return {"accuracy": round(float(right.mean()), 4),
            "accuracy_above_0.9": round(float(confident), 4),
            "counting_estimate": round(float(np.mean([confident**n for n in (2, 3, 4)])), 4),
            "nll": round(float(-np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12)).mean()), 4),
            "per_class": {name: round(float(right[labels == k].mean()), 4) for k, name in enumerate(CLASS_NAMES)}}


# ---------------------------------------------------------------------------------------------------
# Training

def _augment(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Random rotation (<= 12 deg), per-axis scale (0.88-1.12), shift (<= 5%) and mirroring of crops (B, 1, S, S).

    `strength` multiplies the rotation and scale ranges (2: <= 24 deg, 0.76-1.24), not the shift, which
    stands for a part's centring (arbitrary to a pixel).
    """
    b = len(x)
    uniform = lambda: torch.rand(b, generator=gen) * 2 - 1  # noqa: E731  in [-1, 1)
    angle = uniform() * math.radians(12 * strength)
    scale_x, scale_y = 1 + 0.12 * strength * uniform(), 1 + 0.12 * strength * uniform()
    shift_x, shift_y = 0.1 * uniform(), 0.1 * uniform()  # in grid units: 2 = the crop's side
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * scale_x, -sin * scale_y, shift_x], 1),
                         torch.stack([sin * scale_x, cos * scale_y, shift_y], 1)], 1)  # (B, 2, 3)
    x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
    mirror = torch.rand(b, generator=gen) < 0.5
    return torch.where(mirror[:, None, None, None], x.flip(-1), x)


def train_member(
    crops: np.ndarray,           # float32 (N, CROP, CROP)
    labels: np.ndarray,          # int64 (N,)
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,                   # AdamW peak, one-cycle schedule
    weight_decay: float,
    description: str = "training",
) -> tuple[ObjectNet, float]:
    """One ObjectNet on the crops (cross-entropy, no label smoothing) -> (net in eval mode, last batch loss)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(crops)[:, None], torch.from_numpy(labels)
    net = ObjectNet().to(memory_format=torch.channels_last)  # 1.2-1.5x faster on CPU
    steps_per_epoch = len(x) // batch_size
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    net.train()
    for _ in track(range(epochs), total=epochs, description=description):
        perm = torch.randperm(len(x), generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * batch_size : (s + 1) * batch_size]
            batch = _augment(x[idx], gen).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(net(batch), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.to(memory_format=torch.contiguous_format).eval(), loss.item()


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] minimising the NLL of softmax(logits / T) (logits float (N, 10), labels (N,))."""
    z, y = torch.from_numpy(logits).double(), torch.from_numpy(labels)
    nll = lambda log_t: F.cross_entropy(z / math.exp(log_t), y).item()  # noqa: E731
    result = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return math.exp(result.x)


def calibrate(nets: list[ObjectNet], val_crops: np.ndarray, val_labels: np.ndarray) -> ObjectClassifier:
    """The members in one ObjectClassifier, rounded to float16 as shipped, its temperature fitted on VAL crops."""
    classifier = ObjectClassifier(len(nets))
    classifier.members.load_state_dict(torch.nn.ModuleList(nets).state_dict())
    classifier.half().float().eval()
    logits = classify(classifier, val_crops, calibrated=False)
    classifier.temperature.fill_(fit_temperature(logits, val_labels))
    return classifier


def save_classifier(classifier: ObjectClassifier, record: dict, out: str | Path, *,
                    held_out: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                    command: str = TRAIN_COMMAND) -> dict:
    """Save float16 safetensors with `record` plus the accuracies of the file as shipped on each `held_out`
    set (name -> crops, labels; None: the silhouettes' VAL and `test`); return the record."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in classifier.state_dict().items()}
    record = {**record, "members": len(classifier.members), "temperature": round(float(classifier.temperature), 4),
              "dtype": "float16", "command": command}
    atomic_save_safetensors(state, Path(out), {RECORD_KEY: json.dumps(record)})
    shipped = load_object_classifier(out)
    if held_out is None:
        held_out = {source: evaluation_crops(source) for source in ("val", "test")}
    for name, (crops, labels) in held_out.items():
        record[name] = accuracy_record(classify(shipped, crops), labels)
    atomic_save_safetensors(state, Path(out), {RECORD_KEY: json.dumps(record)})
    return record


def _train_member_in_process(args: tuple) -> tuple[dict, float, float]:
    """One member on `threads` threads (the same numbers in any process) -> (state_dict, last loss, seconds)."""
    crops, labels, seed, threads, quiet, options = args
    if quiet:  # side-by-side workers would draw over each other's bars; the parent shows one over members
        os.environ[PROGRESS_ENV] = "1"
    torch.set_num_threads(threads)
    start = time.time()
    net, loss = train_member(crops, labels, seed=seed, **options)
    return net.state_dict(), loss, time.time() - start


def train_members(crops: np.ndarray, labels: np.ndarray, *, members: int, seed: int, threads: int, workers: int,
                  **options) -> tuple[list[ObjectNet], list[float], list[float]]:
    """Member k trains with seed + k; `workers` processes train members side by side -> nets, losses, seconds.

    Each member is deterministic on `threads` threads whichever process runs it, so the workers change
    the wall time, never the weights (tests/test_geneval.py checks it).
    """
    jobs = [(crops, labels, seed + k, threads, workers > 1,
             {**options, "description": f"scene classifier {k + 1}/{members}"}) for k in range(members)]
    if workers <= 1:
        results = [_train_member_in_process(job) for job in jobs]
    else:
        context = multiprocessing.get_context("spawn")  # no fork of a parent's torch thread pools
        with ProcessPoolExecutor(max_workers=min(workers, members), mp_context=context) as pool:
            results = list(track(pool.map(_train_member_in_process, jobs), total=members,
                                 description=f"scene classifier: {members} members, {workers} at a time"))
    nets = []
    for state, _, _ in results:
        net = ObjectNet()
        net.load_state_dict(state)
        nets.append(net.eval())
    return nets, [round(loss, 4) for _, loss, _ in results], [round(seconds, 1) for _, _, seconds in results]


def train_scene_classifier(
    out: str | Path | None = None,  # None: the shipped file for `objects` (detect.CLASSIFIER_WEIGHTS)
    *,
    objects: str = DEFAULT_OBJECTS,  # what the scenes draw: silhouettes or glyphs (sgbench.data.scenes.OBJECT_STYLES)
    members: int | None = None,     # ObjectNets averaged; None: RECIPES[objects]
    scenes: int | None = None,      # rendered training crops (silhouettes: 2 per FIT silhouette on average); None: RECIPES
    epochs: int | None = None,      # None: RECIPES[objects]
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    seed: int = 0,                  # crops from `seed`, member k from seed + k
    threads: int = 1,               # per member: one thread keeps each member deterministic and the machine polite
    workers: int = 1,               # members trained side by side in processes (same weights, less wall time)
) -> dict:
    """Train the members on FIT, fit the temperature on VAL, save float16 safetensors with the record; return it."""
    check_style(objects)
    recipe = RECIPES[objects]
    members = recipe["members"] if members is None else members
    scenes = recipe["scenes"] if scenes is None else scenes
    epochs = recipe["epochs"] if epochs is None else epochs
    if members < 1 or workers < 1:
        raise SgbenchError(f"Expected members >= 1 and workers >= 1 but got members {members}, workers {workers}")
    torch.set_num_threads(threads)
    start = time.time()
    if objects == "glyphs":
        crops, labels = render_glyph_crops(seed, scenes, source="fit")
        val_crops, val_labels = render_glyph_crops(seed, GLYPH_HELD_OUT, source="val")
        test_crops, test_labels = render_glyph_crops(seed, GLYPH_HELD_OUT, source="test")
        held_out = {"val": (distorted(val_crops, seed, GLYPH_VAL_STRENGTH), val_labels),
                    "test": glyph_evaluation_crops(),
                    "test_distorted": (distorted(test_crops, seed + 1, 1.0), test_labels),
                    "test_distorted_2x": (distorted(test_crops, seed + 2, GLYPH_VAL_STRENGTH), test_labels)}
        described = {
            "objects": "glyphs",
            "fit_crops": f"{scenes} random draws, stream (seed, {GLYPH_STREAMS['fit']}): sprite {GLYPH_SPRITE} "
                         "half the time, else 10..24, each +- sprite/8, noise sigma 0..4 on half",
            "val_crops": f"{GLYPH_HELD_OUT} random draws as fit, stream (seed, {GLYPH_STREAMS['val']}), each through "
                         f"one random affine map of {GLYPH_VAL_STRENGTH:g}x the training's rotation and scale ranges "
                         "(generator seed `seed`); the temperature is fitted on them",
            "test_crops": f"clean: every glyph at every longest side {GLYPH_SIZES.start}..{GLYPH_SIZES.stop - 1} px in "
                          f"every colour, no noise ({len(held_out['test'][1])} crops)",
            "test_distorted_crops": f"{GLYPH_HELD_OUT} random draws as fit, stream (seed, {GLYPH_STREAMS['test']}), "
                                    "each through one random training affine map (generator seed `seed` + 1)",
            "test_distorted_2x_crops": f"the same {GLYPH_HELD_OUT} draws through one random affine map of "
                                       f"{GLYPH_VAL_STRENGTH:g}x the training's ranges (generator seed `seed` + 2)",
        }
        command = f"{TRAIN_COMMAND} --objects glyphs"
    else:
        crops, labels = render_crops(seed, scenes, source="fit")
        held_out = None  # VAL and `test` silhouettes, rendered after training (save_classifier)
        described = {"train_split": "train", "fit_silhouettes": f"0..{FIT_PER_CLASS - 1} of each class",
                     "val_silhouettes": f"{FIT_PER_CLASS}..899 of each class", "test_split": "test"}
        command = f"{TRAIN_COMMAND} --objects silhouettes"
    nets, losses, seconds = train_members(crops, labels, members=members, seed=seed, threads=threads,
                                          workers=workers, epochs=epochs, batch_size=batch_size, lr=lr,
                                          weight_decay=weight_decay)
    classifier = calibrate(nets, *(evaluation_crops("val") if held_out is None else held_out["val"]))
    record = {
        **described, "scenes": scenes,
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed,
        "threads": threads, "workers": workers, "final_losses": losses, "member_seconds": seconds,
        "train_seconds": round(time.time() - start, 1),
    }
    out = CLASSIFIER_WEIGHTS[objects] if out is None else out
    return save_classifier(classifier, record, out, held_out=held_out, command=command)

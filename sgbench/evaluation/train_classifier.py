"""Training of the `animal` classifier (the shipped sgbench/assets/animal_classifier.safetensors).

Reproduce: `sgbench eval train-classifier` (about 3-4 minutes on one CPU thread). Deterministic for a
given seed on one thread. Augmentation: random shifts of up to 2 px and horizontal flips.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sgbench.data.animal import load_animal_mnist
from sgbench.evaluation.animal_classifier import DEFAULT_WEIGHTS, AnimalNet, load_animal_net, preprocess
from sgbench.utils.progress import track
from sgbench.models.checkpoint import atomic_save_safetensors

TRAIN_COMMAND = "sgbench eval train-classifier"


def _augment(x: torch.Tensor, gen: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Random translation (zero padding, up to `shift` px) and horizontal flip, per image. x: (B, 1, H, W)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (shift,) * 4, value=-1.0)  # -1 is black in [-1, 1]
    dy, dx = torch.randint(0, 2 * shift + 1, (2, b), generator=gen)
    rows = (torch.arange(h)[None, :] + dy[:, None])[:, None, :, None].expand(b, 1, h, w + 2 * shift)
    x = padded.gather(2, rows)
    cols = (torch.arange(w)[None, :] + dx[:, None])[:, None, None, :].expand(b, 1, h, w)
    x = x.gather(3, cols)
    flip = torch.rand(b, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


@torch.no_grad()
def accuracy(net: AnimalNet, images: np.ndarray, labels: np.ndarray, batch_size: int = 500) -> float:
    """Top-1 accuracy of `net` on uint8 NHWC images."""
    net.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        x = preprocess(torch.from_numpy(images[i : i + batch_size]).permute(0, 3, 1, 2))
        correct += (net(x)[1].argmax(1).numpy() == labels[i : i + batch_size]).sum()
    return float(correct) / len(images)


def train_animal_classifier(
    out: str | Path = DEFAULT_WEIGHTS,
    *,
    epochs: int = 15,        # one epoch = 9,000 train images
    batch_size: int = 128,
    lr: float = 3e-3,        # AdamW peak, one-cycle schedule
    weight_decay: float = 5e-4,
    seed: int = 0,
    threads: int = 1,        # the machine is shared: one thread keeps training polite and deterministic
) -> dict:
    """Train on the `train` split, measure top-1 on `test` with the float16 weights that ship, save. Returns the record."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels = load_animal_mnist("train")
    x_all = preprocess(torch.from_numpy(images).permute(0, 3, 1, 2))
    y_all = torch.from_numpy(labels)
    net = AnimalNet()
    steps_per_epoch = len(x_all) // batch_size
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    start = time.time()
    for _ in track(range(epochs), total=epochs, description="training animal classifier"):
        net.train()
        perm = torch.randperm(len(x_all), generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * batch_size : (s + 1) * batch_size]
            loss = F.cross_entropy(net(_augment(x_all[idx], gen))[1], y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.time() - start
    state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    record = {
        "train_split": "train", "test_split": "test", "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "weight_decay": weight_decay, "seed": seed, "threads": threads, "train_seconds": round(seconds, 1),
        "dtype": "float16", "command": TRAIN_COMMAND,
    }
    out = Path(out)
    atomic_save_safetensors(state, out, {"sgbench_classifier": json.dumps(record)})
    test_images, test_labels = load_animal_mnist("test")
    record["test_accuracy"] = accuracy(load_animal_net(out), test_images, test_labels)  # the float16 file, as shipped
    record["train_accuracy"] = accuracy(load_animal_net(out), images, labels)
    atomic_save_safetensors(state, out, {"sgbench_classifier": json.dumps(record)})
    return record

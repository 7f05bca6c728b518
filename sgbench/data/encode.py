"""`sgbench data encode`: an ImageFolder dataset -> VAE latent shards that training reads.

    sgbench data encode IMAGENET_DIR/train data/imagenet256 --vae DIR [--flip]
    torchrun --nproc_per_node 8 -m sgbench.cli data encode ...   # the same shards, 8x faster

Images (class folders, sorted as torchvision's ImageFolder sorts them) go through ADM's centre crop
(`center_crop_arr`), optionally also mirrored, and the VAE's encoder (`sgbench.models.vae`: scaled posterior
means). The output directory holds:

    manifest.json        classes, per-class counts, the VAE's identity and where it was loaded from (which
                         `sgbench train` records in its model, so `sgbench sample` decodes without --vae),
                         the crop rule, the shard plan
    shard-00000.npz ...  latents (n, 4, 32, 32) float32, labels (n,) int64, index (n,) the source image,
                         flipped (n,) bool; with --flip each image appears twice (as is, then mirrored)

Shard k holds images k*shard_size ... (k+1)*shard_size - 1 and is written by process k % world
(rank and world from torch.distributed, which `sgbench.utils.distributed.init` joins under torchrun). Each
shard is written atomically (sgbench.utils.files), so a rerun skips finished shards and redoes only the
missing ones, and 1 or N processes write identical shards.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from sgbench.utils import distributed
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import atomic_savez, atomic_write_json, read_json
from sgbench.utils.progress import Bar

SCHEMA = 1
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's
CROP_RULE = "ADM center_crop_arr: BOX halving while the short side >= 2x the size, BICUBIC to the size, centre crop"


# ----------------------------------------------------------------------------------------------------
# Images


def center_crop_arr(image: Image.Image, size: int) -> np.ndarray:
    """ADM's centre crop (guided-diffusion image_datasets.py), used by DiT, SiT and the paper's data.

    Halve with BOX filtering while the short side is at least 2 * size, resize with BICUBIC so the short
    side is `size`, then crop the centre. Returns uint8 (size, size, C).
    """
    while min(*image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    scale = size / min(*image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), resample=Image.BICUBIC)
    arr = np.array(image)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return arr[top : top + size, left : left + size]


def scan_image_folder(root: str | Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted folder names) and (relative path, label) of every image, in a fixed order."""
    root = Path(root)
    if not root.is_dir():
        raise SgbenchError(f"Dataset directory not found: {root} (expected one folder of images per class)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    items = [
        (f"{name}/{f.name}", label)
        for label, name in enumerate(classes)
        for f in sorted((root / name).iterdir())
        if f.suffix.lower() in EXTENSIONS
    ]
    if not items:
        raise SgbenchError(f"No images found in class folders under {root} (extensions: {', '.join(EXTENSIONS)})")
    return classes, items


def load_image(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as image:
        return center_crop_arr(image.convert("RGB"), size)


# ----------------------------------------------------------------------------------------------------
# Encoding


def encode_dataset(
    root: str | Path,
    out: str | Path,
    vae,                                  # sgbench.models.vae.VAE
    *,
    size: int = 256,                      # image side after the centre crop
    flip: bool = False,                   # also encode every image mirrored left-right
    shard_size: int = 1000,               # source images per shard
    batch_size: int = 32,                 # images per VAE forward
    rank: int | None = None,              # this process; None: from torch.distributed (0 without torchrun)
    world: int | None = None,             # processes; None: from torch.distributed (1 without torchrun)
    log: Callable[[str], None] | None = print,
) -> Path:
    """Encode the class folders under `root` into latent shards in `out` (see the module docstring)."""
    if rank is None or world is None:
        rank, world = distributed.rank_and_world()
    classes, items = scan_image_folder(root)
    out = Path(out)
    manifest = _manifest(root, classes, items, vae.identity, size=size, flip=flip, shard_size=shard_size)
    if rank == 0:
        _check_or_write_manifest(out, manifest, write=True)
    distributed.barrier()  # under torchrun the others check the manifest rank 0 wrote
    if rank != 0:
        _check_or_write_manifest(out, manifest, write=False)
    mine = [k for k in range(manifest["num_shards"]) if k % world == rank]
    todo = [k for k in mine if not (out / shard_name(k)).is_file()]
    if log and rank == 0:
        log(f"encode: {len(items)} images in {len(classes)} classes -> {manifest['num_shards']} shards; "
            f"{world} process(es), process 0 has {len(todo)} of its {len(mine)} shards to do")
    with Bar("encode (process 0)", total=len(mine), completed=len(mine) - len(todo), enabled=rank == 0) as bar:
        for k in todo:
            chunk = items[k * shard_size : (k + 1) * shard_size]
            images = np.stack([load_image(Path(root) / path, size) for path, _ in chunk])
            labels = np.array([label for _, label in chunk], dtype=np.int64)
            index = np.arange(k * shard_size, k * shard_size + len(chunk), dtype=np.int64)
            flipped = np.zeros(len(chunk), dtype=bool)
            if flip:
                images = np.concatenate([images, images[:, :, ::-1]])
                labels, index, flipped = np.tile(labels, 2), np.tile(index, 2), np.repeat([False, True], len(chunk))
            latents = vae.encode(np.ascontiguousarray(images), batch_size=batch_size).numpy()
            atomic_savez(out / shard_name(k), latents=latents, labels=labels, index=index, flipped=flipped)
            bar.advance()
    distributed.barrier()
    return out


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.npz"


def _manifest(root, classes, items, vae_identity: dict, *, size: int, flip: bool, shard_size: int) -> dict:
    counts = np.bincount([label for _, label in items], minlength=len(classes))
    listing = "\n".join(f"{path}\t{label}" for path, label in items).encode()
    return {
        "schema": SCHEMA,
        "source": str(Path(root).resolve()),
        "items_sha256": hashlib.sha256(listing).hexdigest(),  # the exact file list and labels
        "classes": classes,
        "counts": [int(c) for c in counts],
        "num_images": len(items),
        "size": size,
        "crop": CROP_RULE,
        "flip": flip,
        "shard_size": shard_size,
        "num_shards": -(-len(items) // shard_size),
        "latents": "scaled posterior mean (sgbench.models.vae)",
        "vae": {k: v for k, v in vae_identity.items() if k != "source"},
        "vae_source": vae_identity["source"],
    }


WHERE_FROM = ("source", "vae_source")  # paths: the same data read or encoded from elsewhere is the same data


def _check_or_write_manifest(out: Path, manifest: dict, *, write: bool) -> None:
    path = out / "manifest.json"
    if path.is_file():
        old = read_json(path)
        same = {k: v for k, v in old.items() if k not in WHERE_FROM} == {k: v for k, v in manifest.items() if k not in WHERE_FROM}
        if not same:
            changed = sorted(k for k in set(old) | set(manifest) if k not in WHERE_FROM and old.get(k) != manifest.get(k))
            raise SgbenchError(f"{out} holds latents of another configuration (differs in {changed}); choose another output directory")
    else:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SgbenchError(f"Cannot write the output directory {out}: {e.strerror or e}") from None
        if write:
            atomic_write_json(path, manifest)


# ----------------------------------------------------------------------------------------------------
# Reading (training)


def read_latent_shards(directory: str | Path) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """All latents (N, C, h, w) float32 and labels (N,) int64 of a finished `encode_dataset` output, and its manifest.

    Refuses an unfinished directory (missing shards) instead of training on part of the data.
    """
    directory = Path(directory)
    path = directory / "manifest.json"
    if not path.is_file():
        raise SgbenchError(f"{directory} has no manifest.json: expected the output of `sgbench data encode`")
    manifest = read_json(path)
    if manifest.get("schema") != SCHEMA:
        raise SgbenchError(f"{path}: expected schema {SCHEMA} but got {manifest.get('schema')}")
    missing = [shard_name(k) for k in range(manifest["num_shards"]) if not (directory / shard_name(k)).is_file()]
    if missing:
        raise SgbenchError(
            f"{directory} is unfinished: {len(missing)} of {manifest['num_shards']} shards missing "
            f"(first {missing[0]}); rerun `sgbench data encode` with the same arguments to finish it"
        )
    latents, labels = [], []
    for k in range(manifest["num_shards"]):
        with np.load(directory / shard_name(k)) as shard:
            latents.append(shard["latents"])
            labels.append(shard["labels"])
    return torch.from_numpy(np.concatenate(latents)), torch.from_numpy(np.concatenate(labels)), manifest

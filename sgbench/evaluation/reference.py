"""Reference statistics: reference_stats/manifest.json plus one npz per entry.

An entry records how its statistics were made (extractor, weights sha256, image count, resolution,
source); its npz holds `mu`, `sigma` (features), `mu_s`, `sigma_s` (spatial, Inception only),
`features` (float16 rows of up to 10,000 reference images, for precision/recall and KID) and `meta`
(the entry as JSON, so a copied npz still describes itself). Statistics are built once and reused:
building an existing entry with the same recipe returns it without recomputing.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sgbench.utils import resources
from sgbench.utils.errors import SgbenchError
from sgbench.evaluation.base import Extractor
from sgbench.evaluation.extractor import create_extractor
from sgbench.evaluation.fd import frechet_distance
from sgbench.evaluation.features import check_batch_size, stream_features
from sgbench.evaluation.npz import open_images
from sgbench.evaluation.sources import open_source

REFERENCE_DIR_ENV = "SGBENCH_REFERENCE_STATS"
MAX_REFERENCE_FEATURES = 10_000  # the ADM reference batches hold 10,000 images
ADM_KEYS = {"mu": (2048,), "sigma": (2048, 2048), "mu_s": (2023,), "sigma_s": (2023, 2023)}


def user_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sgbench" / "reference_stats"


def search_dirs() -> list[Path]:
    """Where references are looked up, first match wins: $SGBENCH_REFERENCE_STATS, the user's cache
    (references built with an installed sgbench), and the shipped reference_stats/."""
    env = os.environ.get(REFERENCE_DIR_ENV)
    return [Path(p) for p in (env, user_dir()) if p] + [resources.shipped("reference_stats")]


def reference_dir() -> Path:
    """Where `stats build` and `stats import-adm` write: $SGBENCH_REFERENCE_STATS, else the repository's
    reference_stats/ in a source checkout, else the user's cache (never inside an installed package)."""
    env = os.environ.get(REFERENCE_DIR_ENV)
    if env:
        return Path(env)
    return resources.shipped("reference_stats") if resources.source_checkout() else user_dir()


@dataclass(frozen=True)
class ReferenceEntry:
    name: str
    file: str               # npz file name inside the reference directory
    extractor: str
    weights_sha256: str
    num_images: int
    resolution: int
    source: str
    num_features: int       # reference rows kept for precision/recall
    created: str
    notes: str = ""


@dataclass(frozen=True)
class Reference:
    entry: ReferenceEntry
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray
    mu_s: np.ndarray | None = None
    sigma_s: np.ndarray | None = None

    def check_compatible(self, extractor: Extractor, resolution: int) -> None:
        """Refuse statistics made with another extractor, other weights, or at another resolution."""
        e = self.entry
        if e.extractor != extractor.extractor_name:
            raise SgbenchError(
                f"Expected reference statistics built with extractor '{extractor.extractor_name}' but reference '{e.name}' "
                f"was built with '{e.extractor}'; pass --extractor {e.extractor} or build a reference with "
                f"`sgbench stats build NAME --extractor {extractor.extractor_name}`"
            )
        if e.weights_sha256 != extractor.weights_sha256:
            raise SgbenchError(
                f"Expected reference statistics built with {e.extractor} weights sha256 {extractor.weights_sha256[:12]}... "
                f"but reference '{e.name}' was built with {e.weights_sha256[:12]}...; rebuild it with these weights"
            )
        if e.resolution != resolution:
            raise SgbenchError(
                f"Expected samples at the reference's resolution {e.resolution}x{e.resolution} but got "
                f"{resolution}x{resolution} (reference '{e.name}')"
            )


# --- manifest --------------------------------------------------------------------------------------

def _manifest_path(root: Path) -> Path:
    return root / "manifest.json"


def _read_one_manifest(root: Path) -> dict[str, ReferenceEntry]:
    path = _manifest_path(root)
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text())["entries"]
    return {e["name"]: ReferenceEntry(**e) for e in entries}


def locate() -> dict[str, tuple[ReferenceEntry, Path]]:
    """Every known reference name -> (entry, the folder that holds it), searching `search_dirs()`."""
    found: dict[str, tuple[ReferenceEntry, Path]] = {}
    for root in search_dirs():
        for name, entry in _read_one_manifest(root).items():
            found.setdefault(name, (entry, root))
    return found


def read_manifest(root: Path | None = None) -> dict[str, ReferenceEntry]:
    """Entries of one folder's manifest, or (root None) of every folder searched."""
    if root is not None:
        return _read_one_manifest(root)
    return {name: entry for name, (entry, _) in locate().items()}


def _write_entry(root: Path, entry: ReferenceEntry, arrays: dict[str, np.ndarray]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (entry.file + ".tmp.npz")
    np.savez(tmp, meta=np.array(json.dumps(asdict(entry))), **arrays)
    os.replace(tmp, root / entry.file)
    entries = _read_one_manifest(root)
    entries[entry.name] = entry
    body = {"version": 1, "entries": [asdict(e) for e in sorted(entries.values(), key=lambda e: e.name)]}
    tmp_manifest = root / "manifest.json.tmp"
    tmp_manifest.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(tmp_manifest, _manifest_path(root))


def load_reference(ref: str | Path) -> Reference:
    """A manifest name (in reference_dir()) or a path to a reference npz written by sgbench."""
    path = Path(ref)
    if path.suffix == ".npz" and path.is_file():
        with np.load(path) as f:
            if "meta" not in f.files:
                raise SgbenchError(
                    f"Expected a reference npz written by sgbench (with 'meta') but {path} has keys {sorted(f.files)}; "
                    "import an ADM reference batch with `sgbench stats import-adm`"
                )
            entry = ReferenceEntry(**json.loads(str(f["meta"])))
    else:
        known = locate()
        if str(ref) not in known:
            raise SgbenchError(
                f"Expected a reference name ({', '.join(sorted(known)) or 'none known'}; `sgbench stats list`) "
                f"or a path to a reference .npz but got '{ref}'"
            )
        entry, root = known[str(ref)]
        path = root / entry.file
    with np.load(path) as f:
        spatial = {k: f[k] for k in ("mu_s", "sigma_s") if k in f.files}
        return Reference(entry, f["mu"], f["sigma"], f["features"].astype(np.float32), **spatial)


# --- building ---------------------------------------------------------------------------------------

def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _kept_rows(n: int) -> np.ndarray:
    if n <= MAX_REFERENCE_FEATURES:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, MAX_REFERENCE_FEATURES, replace=False))


def build_reference(
    name: str,
    source: str | Path,                # 'animal', 'animal:SPLIT', a folder of images, or an npz (arr_0)
    *,
    extractor: str = "animal",
    weights: str | Path | None = None,
    random_init: bool = False,         # tests only
    batch_size: int = 250,
    force: bool = False,               # rebuild even if an entry with this name exists
) -> tuple[ReferenceEntry, bool]:
    """Compute and store reference statistics. Returns (entry, computed); computed=False when cached."""
    check_batch_size(batch_size)
    root = reference_dir()
    images = open_source(source)
    net = create_extractor(extractor, weights=weights, random_init=random_init)
    existing = _read_one_manifest(root).get(name)
    if existing is not None and not force:
        same = (existing.extractor, existing.weights_sha256, existing.source, existing.resolution) == (
            extractor, net.weights_sha256, images.description, images.resolution)
        if same and (root / existing.file).is_file():
            return existing, False
        raise SgbenchError(
            f"Expected a new reference name but '{name}' exists (extractor {existing.extractor}, source {existing.source}); "
            "choose another name or pass --force to rebuild it"
        )
    keep = _kept_rows(images.num_images)
    result = stream_features(images, net, batch_size=batch_size, keep=keep, description=f"reference {name}")
    mu, sigma = result.stats.mu_sigma()
    arrays = {"mu": mu, "sigma": sigma, "features": result.features.astype(np.float16)}
    if result.spatial is not None:
        arrays["mu_s"], arrays["sigma_s"] = result.spatial.mu_sigma()
    entry = ReferenceEntry(
        name=name, file=f"{name}.npz", extractor=extractor, weights_sha256=net.weights_sha256,
        num_images=images.num_images, resolution=images.resolution, source=images.description,
        num_features=len(keep), created=_now(),
    )
    _write_entry(root, entry, arrays)
    return entry, True


def import_adm(
    path: str | Path,                  # e.g. VIRTUAL_imagenet256_labeled.npz from the ADM evaluation suite
    *,
    name: str | None = None,
    weights: str | Path | None = None,
    random_init: bool = False,         # tests only
    batch_size: int = 100,
    force: bool = False,
) -> tuple[ReferenceEntry, bool]:
    """Import an ADM reference batch: its own mu/sigma and mu_s/sigma_s (the TF graph's numbers), plus
    Inception features of its `arr_0` images for precision/recall (ADM recomputes those every run).

    As a check, our Inception's FID between the images and ADM's stored statistics goes in the entry's
    notes: near 0 when the PyTorch port reproduces the TF graph."""
    check_batch_size(batch_size)
    path = Path(path)
    name = name or path.stem.removesuffix("_labeled")
    root = reference_dir()
    images = open_images(path)  # validates arr_0: uint8 NHWC
    with np.load(path) as f:
        missing = [k for k in ADM_KEYS if k not in f.files]
        if missing:
            raise SgbenchError(
                f"Expected an ADM reference batch with keys arr_0, {', '.join(ADM_KEYS)} but {path} has {sorted(f.files)} "
                f"(missing {', '.join(missing)})"
            )
        stats = {k: f[k] for k in ADM_KEYS}
    for k, shape in ADM_KEYS.items():
        if stats[k].shape != shape:
            raise SgbenchError(f"Expected '{k}' of shape {shape} in {path} (ADM's Inception statistics) but got {stats[k].shape}")
    net = create_extractor("inception", weights=weights, random_init=random_init)
    existing = _read_one_manifest(root).get(name)
    if existing is not None and not force:
        if existing.weights_sha256 == net.weights_sha256 and existing.source.startswith(f"ADM {path.name}"):
            return existing, False
        raise SgbenchError(f"Expected a new reference name but '{name}' exists; pass --name or --force")
    keep = _kept_rows(images.num_images)
    result = stream_features(images, net, batch_size=batch_size, keep=keep, description=f"reference {name}")
    fid_check = frechet_distance(*result.stats.mu_sigma(), stats["mu"], stats["sigma"])
    entry = ReferenceEntry(
        name=name, file=f"{name}.npz", extractor="inception", weights_sha256=net.weights_sha256,
        num_images=images.num_images, resolution=images.resolution, source=f"ADM {path.name}",
        num_features=len(keep), created=_now(),
        notes=f"mu/sigma/mu_s/sigma_s copied from the ADM file; FID(our Inception on arr_0, ADM stats) = {fid_check:.4g}",
    )
    _write_entry(root, entry, {**stats, "features": result.features.astype(np.float16)})
    return entry, True


def reference_name(ref: str | Path) -> str:
    """The name metrics.json records for a reference: a known name as given, or a reference npz's own name."""
    path = Path(ref)
    if path.suffix == ".npz" and path.is_file():
        with np.load(path) as f:
            if "meta" in f.files:
                return json.loads(str(f["meta"]))["name"]
    return str(ref)


def check_reference(ref: str | Path, extractor: str, *, weights: str | Path | None = None) -> ReferenceEntry:
    """Fail early (before any sampling) when `ref` is unknown or was built with another extractor; returns its
    manifest entry (name, resolution, ...) for further checks."""
    entry = load_reference(ref).entry
    if entry.extractor != extractor:
        raise SgbenchError(f"Expected reference statistics built with extractor '{extractor}' but reference '{entry.name}' "
                           f"was built with '{entry.extractor}'; pass --extractor {entry.extractor} or another --ref")
    net = create_extractor(extractor, weights=weights)
    if net.weights_sha256 != entry.weights_sha256:
        raise SgbenchError(f"Reference '{entry.name}' was built with other {extractor} weights "
                           f"({entry.weights_sha256[:12]}... vs {net.weights_sha256[:12]}...); rebuild it with these weights")
    return entry

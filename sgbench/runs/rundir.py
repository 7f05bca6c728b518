"""A run directory, and the only module that knows its layout (docs/design.md, "Runs").

    RUN/
      sample_config.json  the run's identity: everything that determines its samples, as JSON
      shards/             shard-<first>-<last>.npz, samples first..last, each written atomically
      samples.npz         arr_0 uint8 (N, H, W, C) as the ADM evaluator reads it, labels int64 (N,), and
                          any other per-sample array of the run (prompt_index for text runs)
      run.json            RunInfo: resolved config, model, guidance, FLOPs, timing, environment, and the
                          sha256 of samples.npz as written (a finished run whose file changed is refused)
      prompts.jsonl       text runs: a byte-for-byte copy of the prompts file they were sampled from
      (or prompts.txt)    (its sha256 is run.json's), so they are scored without the original
      grid.png            the first samples
      metrics.json        MetricRecords; each names the sha256 of the samples.npz it scored

A run is sampled by claiming the directory with its identity (a rerun with the same identity resumes,
another identity is refused), writing shards, and assembling them into samples.npz in index order,
streamed shard by shard so memory never holds the whole run. A metric is trusted only while the
samples it scored are the ones on disk.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterator

import numpy as np

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import NpzWriter, atomic_savez, atomic_write_bytes, atomic_write_json, cached_sha256, read_json

IDENTITY_FILE = "sample_config.json"
SHARDS_DIR = "shards"
SAMPLES_FILE = "samples.npz"
RUN_FILE = "run.json"
GRID_FILE = "grid.png"
METRICS_FILE = "metrics.json"
PROMPTS_FILES = ("prompts.jsonl", "prompts.txt")  # a text run's copy of its prompts: GenEval metadata, or one per line

RUN_FORMAT = 2  # part of every identity: runs written by an older layout are never resumed
_SHARD = re.compile(r"^shard-(\d{8})-(\d{8})\.npz$")


def as_json(obj):
    """The value as it reads back from JSON (tuples become lists, keys strings): what identities compare."""
    return json.loads(json.dumps(obj))


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class State(Enum):
    EMPTY = "empty"        # nothing sampled yet (or not a run directory)
    PARTIAL = "partial"    # claimed; sampling unfinished (shards, no samples.npz or run.json)
    SAMPLED = "sampled"    # samples.npz and run.json written
    BROKEN = "broken"      # a file is unreadable


# ----------------------------------------------------------------------------------------------------
# run.json


@dataclass
class RunInfo:
    """run.json, written and read by this class only."""

    config: dict                       # the sampling configuration as given
    identity: dict                     # what determines the samples (sample_config.json)
    guidance: dict                     # {"name", "params"}: the resolved method
    model: dict                        # {"checkpoint", "sha256", "config"}
    guide: dict | None                 # the same for ag / ag+sg's guide
    flops: dict                        # sgbench.core.flops.cost_report
    num_samples: int
    world_size: int
    seed: int
    timing: dict                       # wall_time_s, images_per_s, device, threads, peak_memory_mb
    environment: dict                  # versions, git commit
    created: str
    conditioning: dict | None = None   # text runs: prompts file, its sha256, its copy's name, images per prompt, ICG's draw
    decoder: dict | None = None        # latent runs: the VAE's identity
    samples: dict | None = None        # samples.npz as written: {"sha256", "stat": [size, mtime_ns]} (None: older runs)
    version: int = RUN_FORMAT

    def to_json(self) -> dict:
        return as_json(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: dict, where: str) -> "RunInfo":
        if data.get("version") != RUN_FORMAT:
            raise SgbenchError(f"{where} has run format {data.get('version', 1)}; this sgbench reads format {RUN_FORMAT}: "
                               "sample the run again")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names if n not in data and cls.__dataclass_fields__[n].default is dataclasses.MISSING)
        if missing or set(data) - names:
            raise SgbenchError(f"{where} does not fit the run.json schema (missing {missing}, unknown {sorted(set(data) - names)})")
        return cls(**data)


# ----------------------------------------------------------------------------------------------------
# metrics.json


@dataclass
class MetricRecord:
    """One number about a run's samples, with everything needed to know what it means."""

    metric: str                        # fid, sfid, is, precision, recall, class_accuracy, geneval/<task>, hpsv3, ...
    value: float
    extractor: str                     # the feature space or scorer: animal, inception, geneval-animal, hpsv3, ...
    reference: str                     # what it compares against: reference statistics, prompt set, ...
    num_samples: int
    samples_sha256: str                # the samples.npz it scored
    ci95: list[float] | None = None    # 95% bootstrap interval over the samples
    weights_sha256: str | None = None  # of the extractor / scorer
    num_reference: int | None = None
    resolution: int | None = None
    created: str = ""
    options: dict | None = None        # what else fixed the value (eval fid: bootstrap replicates, the reference's build)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.metric, self.extractor, self.reference)


# ----------------------------------------------------------------------------------------------------
# The directory


@dataclass(frozen=True)
class Shard:
    first: int
    last: int  # inclusive
    path: Path


class RunDir:
    """The files of one run; reads are cached per instance, writes are atomic."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._info: RunInfo | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- names ------------------------------------------------------------------------------------------

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES_FILE

    @property
    def grid(self) -> Path:
        return self.path / GRID_FILE

    @property
    def shards_dir(self) -> Path:
        return self.path / SHARDS_DIR

    # -- state ------------------------------------------------------------------------------------------

    def looks_like_run(self) -> bool:
        return any((self.path / f).exists() for f in (RUN_FILE, SAMPLES_FILE, IDENTITY_FILE, SHARDS_DIR))

    def state(self) -> State:
        if not (self.path / IDENTITY_FILE).is_file():
            return State.EMPTY
        if not (self.samples.is_file() and (self.path / RUN_FILE).is_file()):
            return State.PARTIAL
        try:
            self.info()
        except SgbenchError:
            return State.BROKEN
        return State.SAMPLED

    def identity(self) -> dict | None:
        path = self.path / IDENTITY_FILE
        return read_json(path) if path.is_file() else None

    def is_finished(self, identity: dict) -> bool:
        """Sampled, with exactly this identity: nothing to do. A samples.npz changed since sampling wrote it
        is refused: keeping it would pass off other images as this configuration's."""
        try:
            finished = self.state() is State.SAMPLED and self.identity() == as_json(identity)
        except SgbenchError:
            return False
        if finished:
            self.check_samples_unchanged()
        return finished

    def samples_binding(self) -> dict:
        """What run.json records of samples.npz (sha256, and size and mtime so that a rerun hashes it only
        when those changed)."""
        st = os.stat(self.samples)
        return {"sha256": cached_sha256(self.samples), "stat": [st.st_size, st.st_mtime_ns]}

    def check_samples_unchanged(self) -> None:
        recorded = self.info().samples
        if recorded is None:  # written before run.json recorded its samples: nothing to compare with
            return
        st = os.stat(self.samples)
        if [st.st_size, st.st_mtime_ns] == recorded["stat"] or cached_sha256(self.samples) == recorded["sha256"]:
            return
        raise SgbenchError(f"{self.samples} changed since sampling wrote it (its sha256 is not the one run.json records); "
                           f"to sample the run again, delete {self.path} or choose another --out")

    def claim(self, identity: dict) -> None:
        """Make the directory this run's: create it and record the identity, or check a recorded one."""
        identity = as_json(identity)
        if self.path.exists() and not self.path.is_dir():
            raise SgbenchError(f"Expected --out to be a directory but {self.path} is a file")
        try:
            self.shards_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SgbenchError(f"Cannot write the run directory {self.path}: {e.strerror or e}") from None
        recorded = self.identity()
        if recorded is None:
            self._write(lambda: atomic_write_json(self.path / IDENTITY_FILE, identity))
        elif recorded != identity:
            changed = sorted(k for k in recorded.keys() | identity.keys() if recorded.get(k) != identity.get(k))
            raise SgbenchError(f"{self.path} holds a run with another configuration (differs in: {', '.join(changed)}); "
                               "choose another --out or delete it")

    def _write(self, fn) -> None:
        try:
            fn()
        except OSError as e:
            raise SgbenchError(f"Cannot write into the run directory {self.path}: {e.strerror or e}") from None

    # -- shards -----------------------------------------------------------------------------------------

    def shards(self) -> list[Shard]:
        if not self.shards_dir.is_dir():
            return []
        found = []
        for p in self.shards_dir.iterdir():
            m = _SHARD.match(p.name)
            if m:
                found.append(Shard(int(m.group(1)), int(m.group(2)), p))
        return sorted(found, key=lambda s: (s.first, s.last))

    def done_indices(self) -> set[int]:
        done: set[int] = set()
        for s in self.shards():
            done.update(range(s.first, s.last + 1))
        return done

    def write_shard(self, indices: list[int], images: np.ndarray, **arrays: np.ndarray) -> None:
        """Samples `indices` (consecutive) as one shard: images uint8 (B, H, W, C), other per-sample arrays."""
        first, last = indices[0], indices[-1]
        assert list(indices) == list(range(first, last + 1)), "a shard holds consecutive samples"
        name = self.shards_dir / f"shard-{first:08d}-{last:08d}.npz"
        self._write(lambda: atomic_savez(name, images=images, **arrays))

    def _pieces(self, num: int) -> Iterator[tuple[Path, slice]]:
        """(shard, rows) covering samples 0..num-1 in order; overlapping shards (two writers) are fine."""
        nxt = 0
        for s in self.shards():
            if s.last < nxt or s.first >= num:
                continue
            if s.first > nxt:
                break
            yield s.path, slice(nxt - s.first, min(s.last, num - 1) - s.first + 1)
            nxt = min(s.last, num - 1) + 1
        if nxt < num:
            raise SgbenchError(f"{self.path}: samples from {nxt} on are missing from the shards; rerun the same command to finish")

    def assemble(self, num: int) -> None:
        """samples.npz from the shards, streamed: one shard in memory at a time."""
        pieces = list(self._pieces(num))
        with np.load(pieces[0][0]) as f:
            shape, keys = f["images"].shape[1:], [k for k in f.files if k != "images"]

        def rows(key):
            for path, rows_ in pieces:
                with np.load(path) as f:
                    yield f[key][rows_]

        def write():
            with NpzWriter(self.samples) as w:
                w.write_streamed("arr_0", (num, *shape), np.uint8, rows("images"))
                for key in keys:
                    w.write(key, np.concatenate(list(rows(key))))
        self._write(write)

    def first_images(self, n: int) -> np.ndarray:
        """Images 0..n-1 from the shards that hold them (a preview grid), without reading any other."""
        parts = []
        for path, rows in self._pieces(n):
            with np.load(path) as f:
                parts.append(f["images"][rows])
        return np.concatenate(parts)

    # -- run.json ---------------------------------------------------------------------------------------

    def info(self) -> RunInfo:
        if self._info is None:
            self._info = RunInfo.from_json(read_json(self.path / RUN_FILE), str(self.path / RUN_FILE))
        return self._info

    def write_info(self, info: RunInfo) -> None:
        self._write(lambda: atomic_write_json(self.path / RUN_FILE, info.to_json()))
        self._info = info

    # -- the prompts of a text run ---------------------------------------------------------------------

    def write_prompts(self, data: bytes, *, is_jsonl: bool) -> str:
        """The run's own copy of its prompts file, byte for byte (so its sha256 is the one the identity and
        run.json record): prompts.jsonl for GenEval metadata, prompts.txt for one prompt per line. Returns
        the file's name, which run.json's conditioning records as `copy`."""
        name = PROMPTS_FILES[0] if is_jsonl else PROMPTS_FILES[1]
        self._write(lambda: atomic_write_bytes(self.path / name, data))
        return name

    def prompts_copy(self) -> Path | None:
        """The copy of the prompts file that run.json names; None for class runs and for text runs sampled
        before runs kept a copy."""
        conditioning = self.info().conditioning or {}
        name = conditioning.get("copy")
        if name is None:
            return None
        if name not in PROMPTS_FILES:
            raise SgbenchError(f"{self.path / RUN_FILE} names the prompts copy {name!r}; expected one of {', '.join(PROMPTS_FILES)}")
        return self.path / name

    # -- metrics.json -----------------------------------------------------------------------------------

    def samples_sha256(self) -> str:
        """sha256 of samples.npz, reusing the hash stored in metrics.json while the file's size and mtime match."""
        st = os.stat(self.samples)
        stamp = [st.st_size, st.st_mtime_ns]
        stored = self._metrics_file().get("samples")
        if stored and stored.get("stat") == stamp:
            return stored["sha256"]
        return cached_sha256(self.samples)

    def _metrics_file(self) -> dict:
        path = self.path / METRICS_FILE
        return read_json(path) if path.is_file() else {}

    def all_metrics(self) -> list[MetricRecord]:
        """Every record in metrics.json, for whatever samples it was computed on."""
        try:
            return [MetricRecord(**r) for r in self._metrics_file().get("records", [])]
        except TypeError as e:
            raise SgbenchError(f"{self.path / METRICS_FILE} does not fit the metrics schema ({e}); re-evaluate the run") from None

    def metrics(self) -> list[MetricRecord]:
        """The records computed on the samples now on disk (others are stale and ignored)."""
        if not self.samples.is_file():
            return []
        sha = self.samples_sha256()
        return [r for r in self.all_metrics() if r.samples_sha256 == sha]

    def write_metrics(self, records: list[MetricRecord]) -> None:
        """Add records, replacing older ones with the same (metric, extractor, reference)."""
        new = {r.key for r in records}
        kept = [r for r in self.all_metrics() if r.key not in new]
        st = os.stat(self.samples)
        body = {"version": 2,
                "samples": {"sha256": self.samples_sha256(), "stat": [st.st_size, st.st_mtime_ns]},
                "records": [dataclasses.asdict(r) for r in kept + records]}
        self._write(lambda: atomic_write_json(self.path / METRICS_FILE, body))

    def has_metric(self, metric: str, extractor: str, reference: str, num_samples: int) -> bool:
        return any(r.key == (metric, extractor, reference) and r.num_samples == num_samples for r in self.metrics())


def expand(paths) -> list[RunDir]:
    """Run directories; a folder that is not a run stands for every run beneath it (bench folders nest
    them as <backbone>/<config>)."""
    out: list[RunDir] = []
    for p in map(Path, paths):
        run = RunDir(p)
        if p.is_dir() and not run.looks_like_run():
            nested = sorted({q.parent for q in p.rglob(IDENTITY_FILE)} | {q.parent for q in p.rglob(RUN_FILE)})
            if nested:
                out.extend(RunDir(q) for q in nested)
                continue
        out.append(run)
    return out

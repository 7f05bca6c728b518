"""Writing files so that nothing is lost, and hashing them (docs/design.md, "Files").

Every file sgbench writes goes to a temporary name beside its target and is renamed into place, so a
killed process leaves either the old file or the new one, never half of one. Sample files are ADM's
layout (an .npz, i.e. a zip of .npy members) written member by member from an iterator of batches,
so 50,000 images at 256 px (9.8 GB) never sit in memory at once; zip entries carry a fixed timestamp
so that the same arrays always give the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sgbench.utils.errors import SgbenchError

# ----------------------------------------------------------------------------------------------------
# Atomic writes


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + f".tmp{os.getpid()}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = _tmp(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_jsonl(path: str | Path, records) -> Path:
    """One JSON object per line, written atomically into `path` (its folder created); a place that cannot be
    written is one line naming it and why."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    except OSError as e:
        raise SgbenchError(f"Cannot write {path}: {e.strerror or e}") from None
    return path


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: str | Path) -> dict:
    """A JSON file as a dict; one-line errors for a missing or unreadable file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SgbenchError(f"Expected {path} but there is no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SgbenchError(f"{path} is unreadable ({e.__class__.__name__}: {e})") from None
    if not isinstance(data, dict):
        raise SgbenchError(f"Expected a JSON object in {path} but got {type(data).__name__}")
    return data


# ----------------------------------------------------------------------------------------------------
# npz files written member by member (ADM's sample layout), deterministic bytes

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    import io

    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_2_0(buf, header) if _needs_v2(header) else np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def _needs_v2(header: dict) -> bool:
    return len(repr(header)) > 65000


class NpzWriter:
    """Write an .npz one member at a time; a member may be streamed in batches along its first axis.

        with NpzWriter(path) as w:
            w.write_streamed("arr_0", (N, H, W, C), np.uint8, batches)   # batches: iterator of (b, H, W, C)
            w.write("labels", labels)

    ZIP64 is used for every member, so members over 4 GB are fine; the file appears at `path` only
    when the writer closes without error.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tmp = _tmp(self.path)
        self.zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def write(self, key: str, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        self.write_streamed(key, array.shape, array.dtype, [array])

    def write_streamed(self, key: str, shape: tuple[int, ...], dtype, batches: Iterable[np.ndarray]) -> None:
        info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_TIME)
        info.compress_type = zipfile.ZIP_STORED
        expected, written = int(np.prod(shape)), 0
        with self.zip.open(info, "w", force_zip64=True) as f:
            f.write(_npy_header(shape, dtype))
            for batch in batches:
                batch = np.ascontiguousarray(batch, dtype=dtype)
                if batch.shape[1:] != tuple(shape[1:]):
                    raise ValueError(f"batch of shape {batch.shape} does not fit member {key} of shape {shape}")
                f.write(batch.tobytes())
                written += batch.size
        if written != expected:
            raise ValueError(f"member {key}: wrote {written} values, its shape {shape} needs {expected}")

    def close(self) -> None:
        self.zip.close()
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.zip.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "NpzWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort() if exc_type is not None else self.close()


def atomic_savez(path: str | Path, **arrays: np.ndarray) -> None:
    """np.savez, atomically and with deterministic bytes (no compression)."""
    with NpzWriter(path) as w:
        for key, array in arrays.items():
            w.write(key, array)


# ----------------------------------------------------------------------------------------------------
# Hashing


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=256)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def cached_sha256(path: str | Path) -> str | None:
    """sha256 of a file, hashed once per (path, size, mtime) in this process; None for a missing file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)

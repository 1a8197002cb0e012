"""Reading a user's weight file safely: format by content, SHA-256 against a hash in the published name,
``torch.load(weights_only=True)``, and errors that name the flag, the file and what was expected.

Nothing is downloaded: the user passes the files (docs/own_videos.md says which, and from where).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# torch.hub's convention: NAME-<first hex digits of the file's SHA-256>.EXT
HUB_HASH = re.compile(r"-([a-f0-9]{6,64})\.[A-Za-z0-9]+$")


@dataclass(frozen=True)
class WeightFile:
    """What was loaded: the flag it came from, the path, its format and its SHA-256 (the run's fingerprint)."""

    flag: str
    path: str
    format: str
    sha256: str

    def fingerprint(self) -> dict:
        return {"format": self.format, "sha256": self.sha256}


def check_file(flag: str, path) -> Path:
    if path is None or not os.fspath(path):
        raise ConfigError(f"{flag} must name a weight file, got {path!r}")
    p = Path(path)
    if not p.is_file():
        what = "a directory" if p.is_dir() else "no such file"
        raise ConfigError(f"{flag} {os.fspath(path)!r}: {what}, expected the weight file (docs/own_videos.md)")
    if not os.access(p, os.R_OK):
        raise ConfigError(f"{flag} {os.fspath(path)!r}: not readable")
    return p


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hash_in_name(flag: str, path: Path, sha256: str) -> None:
    """A name carrying a hash (``vgg19-dcbb9e9d.pth``) must be the start of the file's SHA-256."""
    m = HUB_HASH.search(path.name)
    if m and not sha256.startswith(m.group(1)):
        raise ConfigError(
            f"{flag} {os.fspath(path)!r}: its name says SHA-256 {m.group(1)}..., the file's is {sha256[:16]}...: "
            "a corrupt or different file under the published name (download it again)"
        )


def is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE


def _numpy_globals() -> list:
    """numpy's array reconstruction, allowed by name for weight files pickled with numpy arrays."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    names = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct")
    return [(reconstruct, n) for n in names] + [np.ndarray, np.dtype] + [
        type(np.dtype(t)) for t in ("float32", "float64")
    ]


def _reason(exc: Exception) -> str:
    """The informative line of a loading error (torch's weights-only message starts with general advice)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if "Unsupported" in line or "error:" in line.lower():
            return line
    return lines[-1] if lines else type(exc).__name__


def load_state_dict(flag: str, path: Path) -> dict:
    """``torch.load(path, weights_only=True)`` of a dict of tensors (or float numpy arrays) -> dict of tensors."""
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any unpickling failure is the same user error)
        first = _reason(exc)
        raise ConfigError(
            f"{flag} {os.fspath(path)!r}: not a PyTorch state dict that loads with weights_only=True ({first[:200]})"
        ) from None
    if not isinstance(obj, dict) or not obj:
        raise ConfigError(f"{flag} {os.fspath(path)!r}: holds a {type(obj).__name__}, expected a state dict "
                          "(a dict of tensors)")
    out = {}
    for key, value in obj.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            value = torch.from_numpy(np.array(value))
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ConfigError(f"{flag} {os.fspath(path)!r}: entry {key!r} is a {type(value).__name__}, "
                              "expected tensors under string keys")
        out[key] = value
    return out


def check_keys_and_shapes(flag: str, path: Path, state: dict, expected: dict, optional: dict | None = None) -> None:
    """``state`` has exactly the keys of ``expected`` (plus any of ``optional``), each with its shape."""
    optional = optional or {}
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected and k not in optional]
    if missing or extra:
        raise ConfigError(
            f"{flag} {os.fspath(path)!r}: keys do not match the published file: missing {missing[:4]}"
            f"{' ...' if len(missing) > 4 else ''}, unexpected {extra[:4]}{' ...' if len(extra) > 4 else ''} "
            f"(expected {len(expected)} keys such as {list(expected)[:2]})"
        )
    for key, value in state.items():
        shape = expected.get(key, optional.get(key))
        if tuple(value.shape) != tuple(shape):
            raise ConfigError(f"{flag} {os.fspath(path)!r}: {key} has shape {tuple(value.shape)}, expected "
                              f"{tuple(shape)}")
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise ConfigError(f"{flag} {os.fspath(path)!r}: {key} holds non-finite or non-float values "
                              f"(dtype {value.dtype})")

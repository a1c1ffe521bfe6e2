"""Pre-generated samples stored as uncompressed ``.npz`` shards, read by memory mapping.

A shard holds ``n`` samples with every key of the sample dict stacked on a leading axis.
``np.savez`` stores members uncompressed, so each array can be memory-mapped straight from
the zip file: reading one sample touches only its bytes (random access stays cheap).
"""
from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np


def write_shard(path: str | os.PathLike, samples: Sequence[dict]) -> None:
    """Stack ``samples`` (dicts with equal keys and shapes) into one ``.npz`` (atomic write)."""
    if not samples:
        raise ValueError("a shard needs at least one sample")
    arrays = {k: np.stack([np.asarray(s[k]) for s in samples]) for k in samples[0]}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _member_offset(f, info: zipfile.ZipInfo) -> int:
    """Byte offset of a stored member's data (after its local file header)."""
    f.seek(info.header_offset)
    header = f.read(30)
    if header[:4] != b"PK\x03\x04":
        raise ValueError("bad zip local header")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def npz_memmaps(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read-only memory maps of every array in an uncompressed ``.npz``.

    Returns:
        dict name -> np.memmap (falls back to loading an array if it cannot be mapped).
    """
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type != zipfile.ZIP_STORED:
                out[name] = np.load(zf.open(info))
                continue
            f.seek(_member_offset(f, info))
            version = np.lib.format.read_magic(f)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = reader(f)
            if dtype.hasobject:
                raise ValueError(f"{path}: object arrays are not supported ({name})")
            out[name] = np.memmap(path, dtype=dtype, mode="r", offset=f.tell(), shape=shape,
                                  order="F" if fortran else "C")
    return out


class ShardReader:
    """Random access to the samples of one shard (maps the file on first use).

    Args:
        path: the ``.npz`` shard.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._arrays: dict[str, np.ndarray] | None = None

    def _maps(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = npz_memmaps(self.path)
        return self._arrays

    def __len__(self) -> int:
        return int(next(iter(self._maps().values())).shape[0])

    def __getitem__(self, i: int) -> dict:
        """Sample ``i`` as a dict of regular (copied) numpy arrays."""
        return {k: np.array(v[i]) for k, v in self._maps().items()}

    def __getstate__(self) -> dict:  # memmaps are reopened in each DataLoader worker
        return {"path": self.path, "_arrays": None}

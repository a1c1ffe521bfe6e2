"""Synthetic two-hand samples: posed hand models, camera, DIR crop, rendering, appearance.

A sample is a pure function of ``(split, index, config)``: the random generator is seeded from
``(config.seed, split, index)`` for "train"/"val" and from a fixed constant and the index for
"test", so the held-out test split never changes with ``config.seed`` and never shares a
stream with the training data. (It still depends on the hand model and the pose prior.)

Generator versions (``SyntheticConfig.version``; recorded in shard meta.json, checkpoints and
evaluations, and part of the held-out split's seed, so each version has its own test split):

* **2** (default): a person behind the hands (:mod:`data.body`): each forearm comes from the
  shoulder on its own side through a plausible elbow, hand orientations follow the forearms
  (pronation/supination, small wrist bends), crossed arms are rare, and the camera is the
  person's own (egocentric) or someone else's (third person). Skin is shaded per pixel with
  palm-vs-back cues that hold on every skin tone (:mod:`data.skin_details`: palm colour,
  creases, nails, knuckles).
* **1**: the first generator, kept to show what it lacks: independent hand orientations, the
  right hand approaching from any direction, per-vertex skin. A network cannot tell left from
  right on it (left/right segmentation at chance).

Common to both: random plausible finger poses and shapes; the second hand brought towards the
first until the two meshes are a few millimetres apart (so they touch, overlap in the image and
occlude each other without interpenetrating); forearms; a random pinhole camera. The square DIR
crop (extent / 0.8, slightly jittered) is rendered directly with the crop intrinsics. Output:
the dict of docs/architecture.md.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .appearance import render_hands
from ..dir_net.crop import crop_intrinsics
from .render import project
from .scene import jittered_box, sample_scene
from .shards import ShardReader, write_shard
from .synthetic_config import GENERATOR_VERSION, SyntheticConfig  # noqa: F401  (GENERATOR_VERSION re-exported)
from ..hand_model.joints import SIDES

SPLIT_CODES = {"train": 0, "val": 1}
#: Entropy of the fixed test split (independent of ``SyntheticConfig.seed``).
TEST_ENTROPY = 0x7E57_1A7E


def sample_rng(split: str, index: int, seed: int, version: int = 1) -> np.random.Generator:
    """The generator of one sample (see the module docstring).

    Version 1 keeps its original streams; later versions add the version to the entropy,
    so their test split is a new, fixed set ("test split v2").
    """
    if split == "test":
        entropy = [TEST_ENTROPY, 2, int(index)]
    elif split in SPLIT_CODES:
        entropy = [int(seed), SPLIT_CODES[split], int(index)]
    else:
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if version >= 2:
        entropy.append(int(version))
    return np.random.default_rng(np.random.SeedSequence(entropy))


def load_models(mano_dir=None) -> tuple:
    """(left, right) hand models with ``flat_hand_mean=True`` (poses are full axis-angle)."""
    from ..hand_model import load_hand_model

    return tuple(load_hand_model(s, mano_dir, flat_hand_mean=True) for s in SIDES)


def generate_sample(index: int, split: str = "train", config: SyntheticConfig | None = None,
                    models: Sequence | None = None) -> dict:
    """One synthetic sample, deterministic in ``(split, index, config)``.

    Args:
        index: sample index (>= 0).
        split: "train", "val" or "test".
        config: generator parameters (defaults if None).
        models: (left, right) hand models; loaded with :func:`load_models` if None.
    Returns:
        The sample dict of docs/architecture.md (image (S, S, 3) uint8, joints3d (2, 21, 3),
        verts3d (2, V, 3), joints2d, verts2d, pose (2, 48), betas (2, 10), seg (S, S),
        dense (S, S, 3), K (3, 3), hand_valid (2,)).
    """
    cfg = config or SyntheticConfig()
    models = models if models is not None else load_models()
    if cfg.version not in (1, 2):
        raise ValueError(f"unknown synthetic generator version {cfg.version} (known: 1, 2)")
    rng = sample_rng(split, index, cfg.seed, cfg.version)
    scene = sample_scene(rng, cfg, models)
    size = cfg.img_size
    box = jittered_box(rng, project(scene.verts.reshape(-1, 3), scene.K), cfg)
    K_crop = crop_intrinsics(scene.K, box, size)
    image, seg, dense = render_hands(rng, cfg, models, scene, K_crop)
    f32 = np.float32
    return {
        "image": image,
        "joints3d": scene.joints.astype(f32),
        "verts3d": scene.verts.astype(f32),
        "joints2d": project(scene.joints.reshape(-1, 3), K_crop).reshape(2, -1, 2).astype(f32),
        "verts2d": project(scene.verts.reshape(-1, 3), K_crop).reshape(2, -1, 2).astype(f32),
        "pose": scene.pose.astype(f32),
        "betas": scene.betas.astype(f32),
        "seg": seg,
        "dense": dense,
        "K": K_crop.astype(f32),
        "hand_valid": np.array([True, True]),
    }


# ----------------------------------------------------------------------------- dataset + shards

def shard_path(cache_dir: str | os.PathLike, split: str, shard: int) -> Path:
    """Path of shard number ``shard`` of ``split`` in ``cache_dir``."""
    return Path(cache_dir) / f"{split}-{shard:05d}.npz"


class SyntheticTwoHands(torch.utils.data.Dataset):
    """``num_samples`` synthetic samples of one split, generated on the fly or read from shards.

    Args:
        num_samples: dataset length.
        split: "train", "val" or "test".
        config: generator parameters (must match the shards' ``meta.json`` when cached).
        models: (left, right) hand models; loaded lazily (per worker) if None.
        cache_dir: folder written by :func:`pregenerate`; samples whose shard is missing are
            generated on the fly.
        transform: optional callable applied to each sample dict (e.g. augmentation and
            :func:`data.dataset.to_training_targets`).
    """

    def __init__(self, num_samples: int, split: str = "train",
                 config: SyntheticConfig | None = None, models: Sequence | None = None, cache_dir: str | os.PathLike | None = None,
                 transform: Callable[[dict], dict] | None = None) -> None:
        self.num_samples = int(num_samples)
        self.split = split
        self.config = config or SyntheticConfig()
        self.models = models
        self.transform = transform
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.shard_size = 0
        self._readers: dict[int, ShardReader] = {}
        if self.cache_dir is not None and (self.cache_dir / "meta.json").exists():
            meta = json.loads((self.cache_dir / "meta.json").read_text())
            if meta["config"] != _config_dict(self.config):
                raise ValueError(f"{self.cache_dir}: shards were made with another config "
                                 f"({meta['config']})")
            self.shard_size = int(meta["shard_size"])

    def __len__(self) -> int:
        return self.num_samples

    def _cached(self, index: int) -> dict | None:
        if not self.shard_size:
            return None
        shard, offset = divmod(index, self.shard_size)
        if shard not in self._readers:
            path = shard_path(self.cache_dir, self.split, shard)
            if not path.exists():
                return None
            self._readers[shard] = ShardReader(path)
        reader = self._readers[shard]
        return reader[offset] if offset < len(reader) else None

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(index)
        sample = self._cached(index)
        if sample is None:
            if self.models is None:
                self.models = load_models()
            sample = generate_sample(index, self.split, self.config, self.models)
        return self.transform(sample) if self.transform is not None else sample


def _config_dict(config: SyntheticConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))  # tuples -> lists, as stored in meta.json


_WORKER_MODELS: tuple | None = None


def _make_shard(job: tuple) -> int:
    """Worker: generate and write one shard; returns its sample count."""
    global _WORKER_MODELS
    out_dir, split, config, mano_dir, shard, start, stop = job
    torch.set_num_threads(1)
    if _WORKER_MODELS is None:
        _WORKER_MODELS = load_models(mano_dir)
    samples = [generate_sample(i, split, config, _WORKER_MODELS) for i in range(start, stop)]
    write_shard(shard_path(out_dir, split, shard), samples)
    return stop - start


def pregenerate(out_dir: str | os.PathLike, num_samples: int, split: str = "train",
                config: SyntheticConfig | None = None, shard_size: int = 256, workers: int = 0,
                mano_dir=None, progress: bool = True) -> Path:
    """Generate samples ``0 .. num_samples-1`` of ``split`` into ``.npz`` shards.

    Existing complete shards are kept (the run can be resumed).

    Args:
        out_dir: destination folder (created); also gets ``meta.json``.
        workers: processes to use (0 = this process).
        progress: show a tqdm progress bar (in samples).
    Returns:
        ``out_dir`` as a Path.
    """
    config = config or SyntheticConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    meta = {"config": _config_dict(config), "shard_size": int(shard_size)}
    if meta_path.exists() and json.loads(meta_path.read_text()) != meta:
        raise ValueError(f"{out} holds shards of another config or shard size")
    meta_path.write_text(json.dumps(meta, indent=1))
    jobs = [(out, split, config, mano_dir, k, a, min(a + shard_size, num_samples))
            for k, a in enumerate(range(0, num_samples, shard_size))
            if not shard_path(out, split, k).exists()]
    bar = tqdm(total=sum(j[-1] - j[-2] for j in jobs), unit="sample", disable=not progress,
               desc=f"synthetic {split}")
    if workers > 0:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for n in pool.imap_unordered(_make_shard, jobs):
                bar.update(n)
    else:
        for job in jobs:
            bar.update(_make_shard(job))
    bar.close()
    return out


def benchmark_generator(sizes: Sequence[int] = (256, 128), n: int = 30, models=None) -> dict:
    """Samples per second of :func:`generate_sample` on one core; prints a table.

    Returns:
        dict size -> {"samples_per_s": wall-clock rate, "cpu_samples_per_s": process-time rate}.
    """
    torch.set_num_threads(1)
    models = models if models is not None else load_models()
    results = {}
    print(f"{'size':>6} {'samples/s (wall)':>18} {'samples/s (cpu)':>17}")
    for size in sizes:
        cfg = SyntheticConfig(img_size=size)
        generate_sample(0, "train", cfg, models)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            generate_sample(i + 1, "train", cfg, models)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        results[size] = {"samples_per_s": n / wall, "cpu_samples_per_s": n / cpu}
        print(f"{size:>6} {n / wall:>18.1f} {n / cpu:>17.1f}")
    return results


def preview_grid(samples: Sequence[dict], columns: int = 2) -> np.ndarray:
    """Picture of samples: for each, image | image with seg overlay and 2D joints | dense.

    Returns:
        (rows * S, columns * 3 * S, 3) uint8 RGB.
    """
    import cv2

    from ..hand_model.joints import BONES

    tiles = []
    for s in samples:
        img = s["image"]
        size = img.shape[0]
        colours = np.array([[0, 0, 0], [60, 140, 255], [255, 90, 60]], dtype=np.float32)
        over = img.astype(np.float32)
        m = s["seg"] > 0
        over[m] = 0.45 * over[m] + 0.55 * colours[s["seg"][m]]
        over = np.ascontiguousarray(over.astype(np.uint8))
        for k in range(2):
            j = s["joints2d"][k]
            for a, b in BONES:
                cv2.line(over, tuple(int(v) for v in j[a]), tuple(int(v) for v in j[b]),
                         (255, 255, 255), max(1, size // 256), cv2.LINE_AA)
        tiles.append(np.concatenate([img, over, s["dense"]], axis=1))
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def save_preview(path: str | os.PathLike, n: int = 8, split: str = "train",
                 config: SyntheticConfig | None = None, models=None, start: int = 0) -> Path:
    """Write :func:`preview_grid` of samples ``start .. start+n-1`` to an image file."""
    import cv2

    models = models if models is not None else load_models()
    samples = [generate_sample(i, split, config, models) for i in range(start, start + n)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), preview_grid(samples)[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path


if __name__ == "__main__":  # python -m interhand_perception.data.synthetic
    benchmark_generator()

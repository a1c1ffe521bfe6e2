"""Training targets and augmentation of sample dicts (synthetic or InterHand2.6M).

* :func:`to_training_targets` turns a sample dict (docs/architecture.md) into torch tensors
  with a collate-friendly layout (every value a tensor of fixed shape).
* :func:`augment` applies the DIR release's augmentations to a sample dict while keeping
  image, 2D labels, 3D labels, pose and intrinsics consistent:
  the in-plane rotation of the crop is a rotation of the 3D scene about the camera z axis, the
  scale and shift of the crop change ``K`` only, and the horizontal flip mirrors x and swaps
  the hands (a mirrored left hand is a right hand; the two hand models are mirror images).
  The 3D/2D consistency is exact when ``fx == fy`` (synthetic data); for ``fx != fy``
  (InterHand2.6M, < 1%) the 2D labels follow the image exactly and ``K`` is approximate.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..dir_net.inputs import UNIT, normalise_image
from ..dir_net.crop import to_normalised
from .scene import axis_angle_to_matrix, matrix_to_axis_angle
from .textures import motion_blur

_MIRROR = np.array([-1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------- targets

def _nearest_downsample(a: np.ndarray, size: int) -> np.ndarray:
    """Sample (S, S, ...) at the centres of a size x size grid (nearest neighbour)."""
    idx = np.floor((np.arange(size) + 0.5) * a.shape[0] / size).astype(np.int64)
    return a[idx][:, idx]


def resize_sample(sample: dict, size: int) -> dict:
    """Resize the image-space parts of a sample to ``size`` (2D labels and K follow).

    Returns:
        A new dict (unchanged keys shared) with image/seg/dense of side ``size``.
    """
    s0 = sample["image"].shape[0]
    if s0 == size:
        return sample
    f = size / s0
    out = dict(sample)
    interp = cv2.INTER_AREA if size < s0 else cv2.INTER_LINEAR
    out["image"] = cv2.resize(sample["image"], (size, size), interpolation=interp)
    out["dense"] = cv2.resize(sample["dense"], (size, size), interpolation=cv2.INTER_NEAREST)
    out["seg"] = _nearest_downsample(sample["seg"], size) if size < s0 else cv2.resize(
        sample["seg"], (size, size), interpolation=cv2.INTER_NEAREST)
    out["joints2d"] = sample["joints2d"] * np.float32(f)
    out["verts2d"] = sample["verts2d"] * np.float32(f)
    K = np.array(sample["K"], dtype=np.float64)
    K[:2] *= f
    out["K"] = K.astype(np.float32)
    return out


def to_training_targets(sample: dict, img_size: int = 256, aux_size: int = 32) -> dict:
    """Tensors for training from a sample dict.

    Args:
        sample: dict of docs/architecture.md (any crop size; resized to ``img_size``).
        img_size: S, the network input side.
        aux_size: S', side of the segmentation / dense targets.
    Returns:
        dict of tensors:
        ``image`` (3, S, S) float32 (ImageNet-normalised), ``joints3d_rel`` (2, 21, 3) and
        ``verts3d_rel`` (2, V, 3) float32 (metres, minus each hand's wrist), ``root3d`` (2, 3)
        camera-frame wrists, ``offset`` (3,) = (right_root - left_root) / 0.15,
        ``joints2d`` (2, 21, 2) and ``verts2d`` (2, V, 2) in [-1, 1] (``to_normalised``),
        ``seg`` (S', S') int64, ``dense`` (3, S', S') float32 in [0, 1], ``hand_valid`` (2,)
        bool, ``pose`` (2, 48), ``betas`` (2, 10), ``K`` (3, 3) float32 (of the S crop).
    """
    s = resize_sample(sample, img_size)
    joints = np.asarray(s["joints3d"], dtype=np.float32)
    root = joints[:, 0]
    seg = _nearest_downsample(np.asarray(s["seg"]), aux_size)
    dense = cv2.resize(np.asarray(s["dense"]), (aux_size, aux_size), interpolation=cv2.INTER_AREA)
    t = torch.from_numpy
    return {
        "image": normalise_image(s["image"]),
        "joints3d_rel": t(joints - root[:, None]),
        "verts3d_rel": t(np.asarray(s["verts3d"], dtype=np.float32) - root[:, None]),
        "root3d": t(root.copy()),
        "offset": t((root[1] - root[0]) / np.float32(UNIT)),
        "joints2d": t(to_normalised(np.asarray(s["joints2d"], dtype=np.float32), img_size)),
        "verts2d": t(to_normalised(np.asarray(s["verts2d"], dtype=np.float32), img_size)),
        "seg": t(seg.astype(np.int64)),
        "dense": t(np.ascontiguousarray(dense.transpose(2, 0, 1), dtype=np.float32) / 255.0),
        "hand_valid": t(np.asarray(s["hand_valid"], dtype=bool).copy()),
        "pose": t(np.asarray(s["pose"], dtype=np.float32).copy()),
        "betas": t(np.asarray(s["betas"], dtype=np.float32).copy()),
        "K": t(np.asarray(s["K"], dtype=np.float32).copy()),
    }


# ----------------------------------------------------------------------------- augmentation

@dataclass(frozen=True)
class AugmentConfig:
    """The release's augmentations (translation and blur lengths are for a 256 crop)."""

    scale: float = 0.1               # crop scale 1 +- scale
    rotation_deg: float = 180.0      # in-plane rotation +- this
    translation_px: float = 10.0     # shift +- this
    flip_p: float = 0.5              # horizontal flip with left/right swapped
    colour: float = 0.3              # per-channel gain U(1 - colour, 1 + colour)
    brightness: float = 0.2          # additive U(-b, b) x 255
    noise_std: float = 8.0           # Gaussian noise std U(0, noise_std) (0-255 scale)
    motion_blur_p: float = 0.3


def warp_image(img: np.ndarray, affine: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Warp with a 2x3 affine in crop-pixel coordinates (pixel i covers [i, i + 1)).

    Args:
        img: (S, S[, C]); affine: (2, 3) mapping input to output coordinates.
    Returns:
        (size, size[, C]) of the same dtype; outside is 0.
    """
    a = np.array(affine, dtype=np.float64)
    a[:, 2] += a[:, :2] @ [0.5, 0.5] - 0.5  # OpenCV puts pixel centres at integers
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(img, a, (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def flip_sample(sample: dict) -> dict:
    """Horizontal flip: mirror x, swap the hands (index 0 stays the left hand).

    Returns:
        A new dict; the mirrored right hand becomes the left hand and vice versa. Pose axis-
        angles are conjugated by diag(-1, 1, 1): (a, b, c) -> (a, -b, -c).
    """
    size = sample["image"].shape[0]
    out = dict(sample)
    out["image"] = np.ascontiguousarray(sample["image"][:, ::-1])
    seg = np.ascontiguousarray(sample["seg"][:, ::-1])
    out["seg"] = np.where(seg == 1, 2, np.where(seg == 2, 1, seg)).astype(seg.dtype)
    out["dense"] = np.ascontiguousarray(sample["dense"][:, ::-1])  # same colour on both hands
    for key in ("joints3d", "verts3d", "joints3d_annot"):
        if key in sample:
            out[key] = (sample[key][::-1] * _MIRROR).astype(np.float32)
    for key in ("joints2d", "verts2d"):
        p = np.array(sample[key][::-1], dtype=np.float32)
        p[..., 0] = size - p[..., 0]
        out[key] = p
    pose = np.array(sample["pose"][::-1], dtype=np.float32).reshape(2, 16, 3)
    pose[..., 1:] *= -1.0
    out["pose"] = pose.reshape(2, 48)
    for key in ("betas", "hand_valid", "joints_valid"):
        if key in sample:
            out[key] = np.ascontiguousarray(sample[key][::-1])
    K = np.array(sample["K"], dtype=np.float64)
    K[0, 2] = size - K[0, 2]
    K[0, 1] = -K[0, 1]
    out["K"] = K.astype(np.float32)
    return out


def rotate_scale_shift(sample: dict, angle: float, scale: float, shift: np.ndarray) -> dict:
    """In-plane similarity of the crop about its centre, with the 3D scene kept consistent.

    Image point ``p -> scale * R(angle) (p - c) + c + shift``; 3D points and the global
    orientation are rotated by ``Rz(angle)`` about the camera axis, and
    ``K -> [[scale f, 0, c'x], [0, scale f, c'y]]`` with ``c' = scale R (pp - c) + c + shift``.

    Args:
        angle: radians (image y points down, so positive turns clockwise on screen).
        scale: zoom factor; shift: (2,) pixels.
    Returns:
        A new sample dict.
    """
    size = sample["image"].shape[0]
    c, s = np.cos(angle), np.sin(angle)
    rot2 = np.array([[c, -s], [s, c]])
    centre = np.full(2, size / 2.0)
    affine = np.concatenate([scale * rot2, (centre + shift - scale * rot2 @ centre)[:, None]], 1)
    out = dict(sample)
    out["image"] = warp_image(sample["image"], affine, size)
    out["seg"] = warp_image(sample["seg"], affine, size, nearest=True)
    out["dense"] = warp_image(sample["dense"], affine, size, nearest=True)
    for key in ("joints2d", "verts2d"):
        out[key] = (sample[key] @ affine[:, :2].T + affine[:, 2]).astype(np.float32)
    rz = np.eye(3)
    rz[:2, :2] = rot2
    for key in ("joints3d", "verts3d", "joints3d_annot"):
        if key in sample:
            out[key] = (np.asarray(sample[key], np.float64) @ rz.T).astype(np.float32)
    pose = np.array(sample["pose"], dtype=np.float32)
    pose[:, :3] = matrix_to_axis_angle(rz @ axis_angle_to_matrix(pose[:, :3]))
    out["pose"] = pose
    K = np.asarray(sample["K"], dtype=np.float64)
    K2 = np.eye(3)
    K2[:2, :2] = scale * np.diag(np.diag(K)[:2])
    K2[:2, 2] = affine[:, :2] @ K[:2, 2] + affine[:, 2]
    out["K"] = K2.astype(np.float32)
    return out


def photometric(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Colour gain, brightness, motion blur and Gaussian noise on a uint8 RGB image."""
    img = image.astype(np.float32)
    img *= rng.uniform(1.0 - cfg.colour, 1.0 + cfg.colour, size=3).astype(np.float32)
    img += np.float32(rng.uniform(-cfg.brightness, cfg.brightness) * 255.0)
    if rng.uniform() < cfg.motion_blur_p:
        length = int(rng.integers(3, 12) * image.shape[0] / 256) + 1
        img = motion_blur(img, length, rng.uniform(0, np.pi))
    sigma = rng.uniform(0.0, cfg.noise_std)
    if sigma > 0.1:
        img += rng.normal(0.0, sigma, size=img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def augment(sample: dict, rng: np.random.Generator, cfg: AugmentConfig | None = None) -> dict:
    """Random flip, rotation/scale/shift and photometric changes, labels kept consistent.

    Args:
        sample: dict of docs/architecture.md (not modified).
        rng: the random generator.
        cfg: parameters (defaults if None).
    Returns:
        A new sample dict of the same format.
    """
    cfg = cfg or AugmentConfig()
    size = sample["image"].shape[0]
    if rng.uniform() < cfg.flip_p:
        sample = flip_sample(sample)
    angle = np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
    scale = rng.uniform(1.0 - cfg.scale, 1.0 + cfg.scale)
    shift = rng.uniform(-cfg.translation_px, cfg.translation_px, size=2) * size / 256.0
    out = rotate_scale_shift(sample, angle, scale, shift)
    out["image"] = photometric(out["image"], rng, cfg)
    return out


class TrainingTransform:
    """Sample dict -> training tensors, with optional augmentation (for ``Dataset.transform``).

    The augmentation generator is created lazily in each process from ``torch.initial_seed()``,
    so DataLoader workers draw different (and per-run reproducible) augmentations.

    Args:
        img_size: network input side; aux_size: seg/dense target side.
        augment_cfg: augmentation parameters, or None for no augmentation (evaluation).
    """

    def __init__(self, img_size: int = 256, aux_size: int = 32,
                 augment_cfg: AugmentConfig | None = None) -> None:
        self.img_size, self.aux_size, self.augment_cfg = img_size, aux_size, augment_cfg
        self._rng: np.random.Generator | None = None
        self._seed: int | None = None

    def __call__(self, sample: dict) -> dict:
        if self.augment_cfg is not None:
            seed = torch.initial_seed()
            if self._rng is None or seed != self._seed:
                self._rng, self._seed = np.random.default_rng(seed), seed
            sample = augment(sample, self._rng, self.augment_cfg)
        return to_training_targets(sample, self.img_size, self.aux_size)

"""DIR on one camera frame -> both hands in metres in the camera frame (ROS-free).

``FrameProcessor`` is method ``dir``'s chain inside :class:`~.pipeline.Pipeline` (which adds
unmirroring, the confidence threshold and post-processing around any method):

1. crop: the square the hands are in (``crop_mode``: centred square, whole image letterboxed,
   or a fixed ROI; DIR has no detector, the hands must fill that square), resized to the
   network's input size;
2. network: :class:`~interhand_perception.network.reconstructor.HandReconstructor`;
3. checks: any non-finite number in the output is an :class:`InputError` (kind "non_finite"),
   never a published NaN;
4. placement: :func:`~interhand_perception.pipeline.placement.place_hands` puts each hand in
   the camera frame from the intrinsics, the crop box and the weak-perspective camera.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..dir_net.crop import crop_box, crop_image
from .decode import InputError
from .placement import Intrinsics, PlacedHands, place_hands


@dataclass
class FrameResult:
    """What one frame gave.

    Attributes:
        placed: hands in the camera frame (metres).
        result: the network's raw :class:`TwoHandResult` (wrist-relative, crop coordinates).
        box: (3,) ``(cx, cy, side)`` of the crop in image pixels.
        confidence: (2,) left, right in [0, 1].
        pose: (2, 48) per hand: global axis-angle + 15 x 3 finger axis-angle (mean included).
        betas: (2, 10) shape.
        timings: seconds per step: ``crop``, ``network``, ``placement``.
    """

    placed: PlacedHands
    result: object
    box: np.ndarray
    confidence: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    timings: dict = field(default_factory=dict)


def pose_and_betas(result) -> tuple[np.ndarray, np.ndarray]:
    """(2, 48) pose and (2, 10) betas of a ``TwoHandResult`` (left, right)."""
    hands = (result.left, result.right)
    pose = np.stack([np.concatenate([h.global_orient, h.hand_pose]) for h in hands]).astype(np.float64)
    return pose, np.stack([np.asarray(h.betas, dtype=np.float64) for h in hands])


def _check_finite(result) -> None:
    for side in ("left", "right"):
        h = result.hand(side)
        for name in ("joints", "vertices", "camera", "global_orient", "hand_pose", "betas"):
            if not np.isfinite(getattr(h, name)).all():
                raise InputError("non_finite", f"the network returned non-finite {side} {name}; frame skipped")
    if not np.isfinite(result.offset).all():
        raise InputError("non_finite", "the network returned a non-finite right-minus-left offset; frame skipped")


class FrameProcessor:
    """Crop, reconstruct and place the hands of one RGB frame.

    Args:
        reconstructor: a ``HandReconstructor`` (or anything with ``img_size`` and
            ``__call__(crop (S, S, 3) uint8) -> TwoHandResult``).
        crop_mode: "center", "full" or "roi".
        crop_roi: ``(cx, cy, side)`` pixels, for "roi".
        placement: "pair" or "per_hand" (see ``pipeline.placement``).
    """

    def __init__(self, reconstructor, crop_mode: str = "center", crop_roi=None, placement: str = "pair"):
        self.reconstructor = reconstructor
        self.crop_mode = crop_mode
        self.crop_roi = crop_roi
        self.placement = placement

    def __call__(self, rgb: np.ndarray, intrinsics: Intrinsics) -> FrameResult:
        """Reconstruct the hands of one frame.

        Args:
            rgb: (H, W, 3) uint8.
            intrinsics: of this image (from camera_info, or assumed).
        Raises:
            InputError: kind "non_finite" when the network output is not finite.
        """
        h, w = rgb.shape[:2]
        return self.run_on_box(rgb, intrinsics, crop_box(self.crop_mode, w, h, self.crop_roi))

    def run_on_box(self, rgb: np.ndarray, intrinsics: Intrinsics, box: np.ndarray) -> FrameResult:
        """As :meth:`__call__`, with the crop box (3,) ``(cx, cy, side)`` given (e.g. detected)."""
        t0 = time.perf_counter()
        box = np.asarray(box, dtype=np.float64)
        crop = crop_image(rgb, box, self.reconstructor.img_size)
        t1 = time.perf_counter()
        result = self.reconstructor(crop)
        t2 = time.perf_counter()
        _check_finite(result)
        placed = place_hands(result, box, intrinsics, placement=self.placement)
        t3 = time.perf_counter()
        conf = np.array([result.left.confidence, result.right.confidence], dtype=np.float64)
        pose, betas = pose_and_betas(result)
        return FrameResult(placed=placed, result=result, box=box, confidence=conf, pose=pose, betas=betas,
                           timings={"crop": t1 - t0, "network": t2 - t1, "placement": t3 - t2})

"""Two predicted hands stacked in one place: a confidence penalty (ROS-free).

DIR's confidence (``network.reconstructor.hand_confidence``) asks whether each hand lies on
hand pixels of the network's own segmentation. When the network puts both hands on the same
blob (the demo weights, trained on synthetic renders, do this on real photos: both hands on
one hot dog, each at confidence 0.9), both pass that test, and nothing else notices. The
rule here looks at the pair instead: two hands whose image footprints overlap almost entirely
are more likely one hand reconstructed twice than two hands.

**Overlap.** Each hand's footprint is the axis-aligned box of its 21 image joints; the
overlap is the intersection over union (IoU) of the two boxes, in [0, 1].

**Factor.** ``f = clip((full - iou) / (full - start), 0, 1)``: 1 up to ``start`` (0.5), falling
linearly to 0 at ``full`` (0.85) and above. Both hands' confidences are multiplied by ``f``.

Why these numbers (measured; the thresholds should move with better data):

* true pairs: ground-truth joints of 150 held-out synthetic renders (interacting, crossing,
  clasped poses) have IoU <= 0.48 (99th percentile 0.45); keypoint fitting on the 13 real
  photos of ``../shared/real_hands``, <= 0.32;
* stacked: the demo weights on the hot-dog photo put both hands on one spot, IoU 0.68
  (confidences 0.93 and 0.90 -> 0.46 and 0.45 with this rule); at IoU 0.85 the two boxes
  differ by a few per cent of their size and the confidence is 0.

Worked case (also a unit test): boxes ``[0, 10] x [0, 10]`` and ``[1, 11] x [0, 10]``
overlap on ``9 x 10 = 90`` of a union of ``110``: IoU = 0.818, f = (0.85 - 0.818) / 0.35 =
0.091, so confidences (0.9, 0.9) become (0.082, 0.082), below the default ``min_confidence``
of 0.3.

Limitation: two real hands pressed palm to palm and seen face-on also overlap almost
entirely; they are penalised too (a method that cannot tell them from one hand should not
be confident about them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dir_net.crop import box_iou

#: IoU up to which the confidence is untouched.
STACK_IOU_START = 0.5
#: IoU from which the confidence is 0.
STACK_IOU_FULL = 0.85


def joint_box(joints2d: np.ndarray) -> np.ndarray:
    """(4,) ``x0, y0, x1, y1`` bounding box of (21, 2) image joints (pixels)."""
    p = np.asarray(joints2d, dtype=np.float64).reshape(-1, 2)
    return np.concatenate([p.min(axis=0), p.max(axis=0)])


def stacked_factor(iou: float, start: float = STACK_IOU_START, full: float = STACK_IOU_FULL) -> float:
    """``clip((full - iou) / (full - start), 0, 1)`` (module docstring)."""
    if not full > start:
        raise ValueError(f"full ({full}) must be above start ({start})")
    return float(np.clip((full - iou) / (full - start), 0.0, 1.0))


@dataclass(frozen=True)
class Stacking:
    """The rule's outcome for one frame.

    Attributes:
        iou: IoU of the two hands' joint boxes (NaN when a hand's joints are not finite).
        factor: what both confidences were multiplied by.
        confidence: (2,) the confidences after it, left and right.
    """

    iou: float
    factor: float
    confidence: np.ndarray

    def report(self) -> dict:
        """JSON-friendly ``{"iou", "factor"}``."""
        return {"iou": round(self.iou, 4) if np.isfinite(self.iou) else None, "factor": round(self.factor, 4)}


def stacked_confidence(confidence: np.ndarray, joints2d: np.ndarray, start: float = STACK_IOU_START,
                       full: float = STACK_IOU_FULL) -> Stacking:
    """Lower both hands' confidences when their image footprints overlap almost entirely.

    Args:
        confidence: (2,) left, right in [0, 1].
        joints2d: (2, 21, 2) image joints (pixels; any common frame), left and right.
        start, full: the IoU ramp (module docstring).
    Returns:
        :class:`Stacking`; the factor is 1 when a hand's joints are not finite (nothing known).
    """
    conf = np.asarray(confidence, dtype=np.float64)
    j = np.asarray(joints2d, dtype=np.float64)
    if j.shape[0] != 2 or not np.isfinite(j).all():
        return Stacking(iou=float("nan"), factor=1.0, confidence=conf.copy())
    iou = box_iou(joint_box(j[0]), joint_box(j[1]))
    factor = stacked_factor(iou, start, full)
    return Stacking(iou=iou, factor=factor, confidence=conf * factor)

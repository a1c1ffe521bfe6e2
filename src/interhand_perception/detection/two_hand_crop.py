"""From hand detections in a full frame to DIR's one square crop around both hands.

Why: DIR needs both hands in one square crop (side = the hands' extent / 0.8, ``dir_net.crop``),
but one MediaPipe pass over a full frame finds both hands of an interacting pair in only 3 of
our 9 real two-hand photos: the palm detector suppresses a second palm that overlaps the first
and misses occluded or border-cut hands. :func:`find_two_hands` adds passes only while no
left+right pair is known (the measured effect of each step is in ``docs/detection.md``):

1. ``full``: the whole frame, plain and flipped (the detector is not mirror-symmetric: the
   flipped pass finds other hands and adds a second handedness vote);
2. ``tiles``: only when nothing was found: overlapping windows at a lower threshold;
3. ``zoom``: around each found hand, a window ``zoom`` x its size at a lower threshold with the
   found hand painted grey, so that the palm detector cannot return the same hand again or
   suppress an overlapping partner (the same window without the paint found no new hand on
   the photos and cost handedness votes);
4. ``pose``: one hand still alone: MediaPipe Pose's wrist of the other arm, if visible, widens
   the crop (a hint only); otherwise the lone hand's crop is grown by ``single_grow``.

Detections of one hand from several passes are merged (handedness votes add up); then the
interacting pair is chosen (:func:`select_hands`). The report never counts a hand the detector
did not find: widening the crop is not a detection. :class:`CropTracker` carries the crop over
frames where the detector misses; :func:`recentre_box` re-centres it on DIR's own joints.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import cv2
import numpy as np

from ..dir_net.crop import JOINT_FILL, box_iou, square_box
from .mediapipe_hands import SIDES, HandDetection, opposite


@dataclass(frozen=True)
class SearchConfig:
    """Knobs of :func:`find_two_hands` (defaults measured on the real photos)."""

    confidence: float = 0.3          # palm threshold of the full-frame pass
    low_confidence: float = 0.1      # palm threshold of tile and zoom passes
    use_flip: bool = True
    use_tiles: bool = True
    tile_scale: float = 0.6          # tile side / image side
    tile_grid: int = 3               # tiles per axis
    use_zoom: bool = True
    zoom: float = 2.5                # zoom window side / hand size
    use_mask: bool = True            # paint the found hand grey in the zoom window
    mask_grow: float = 0.15          # painted hand: landmark hull dilated by this x hand size
    use_pose: bool = True
    min_pose_visibility: float = 0.5
    same_hand_agreement: float = 0.6  # joint agreement from which two detections are one hand
    max_pair_distance: float = 3.0   # centre distance / mean hand size of an acceptable pair
    min_size_ratio: float = 0.5      # smaller / larger hand size of an acceptable pair
    single_grow: float = 1.6         # crop side multiplier around a lone hand
    fill: float = JOINT_FILL         # joints' extent / crop side: the vertex box at 0.8 fill


@dataclass(frozen=True, eq=False)
class TwoHandCrop:
    """Result of :func:`find_two_hands`.

    Attributes:
        box: (3,) ``(cx, cy, side)`` pixels, or None when no hand was found.
        hands: the chosen detections (0-2); a pair is ordered (left, right).
        found: ``len(hands)``: hands the detector really found (never a widening hint).
        expanded: how a lone hand's crop was widened: ``"pose"``, ``"grow"``, or ``""``.
        passes: the passes that ran, in order.
        detector_calls: MediaPipe graph runs used.
        reason: one line on how the crop was made.
        side_conflict: both chosen hands carried the same label; one was overridden.
        candidates: every distinct hand the passes found.
    """

    box: np.ndarray | None
    hands: tuple[HandDetection, ...]
    found: int
    expanded: str
    passes: tuple[str, ...]
    detector_calls: int
    reason: str
    side_conflict: bool = False
    candidates: tuple[HandDetection, ...] = ()


def joint_agreement(a: HandDetection, b: HandDetection, tol: float = 0.2) -> float:
    """Fraction of the 21 joints of two detections closer than ``tol`` x mean hand size."""
    size = 0.5 * (a.size + b.size)
    return float((np.linalg.norm(a.landmarks2d - b.landmarks2d, axis=1) < tol * size).mean())


def same_hand(a: HandDetection, b: HandDetection, min_agreement: float = 0.6) -> bool:
    """Whether two detections are the same physical hand.

    Same when most joints agree (:func:`joint_agreement` >= ``min_agreement``), or when the
    wrists are close (< 0.3 x size) and the boxes overlap (IoU > 0.4): one hand whose fingers two
    passes fitted differently (a hand holding tongs). Per-joint agreement, not a mean distance,
    because a pass sometimes fits one "hand" across two interlaced hands; such a mixed fit
    agrees with neither on most joints. Two interlaced hands overlap, but their wrists are apart.
    """
    if joint_agreement(a, b) >= min_agreement:
        return True
    size = 0.5 * (a.size + b.size)
    return bool(np.linalg.norm(a.landmarks2d[0] - b.landmarks2d[0]) < 0.3 * size
                and box_iou(a.box, b.box) > 0.4)


def merge_detections(known: Sequence[HandDetection], new: Sequence[HandDetection],
                     min_agreement: float = 0.6) -> list[HandDetection]:
    """Add ``new`` detections to ``known``, merging duplicates of one hand.

    A new detection merges into the known hand it agrees with most (if :func:`same_hand`); the
    merged hand keeps the landmarks of the higher score, sums the handedness votes and takes the
    side with more votes.
    """
    out = list(known)
    for d in new:
        matches = [i for i, k in enumerate(out) if same_hand(k, d, min_agreement)]
        if not matches:
            out.append(d)
            continue
        i = max(matches, key=lambda j: joint_agreement(out[j], d))
        votes = out[i].side_votes + d.side_votes
        best = out[i] if out[i].score >= d.score else d
        out[i] = replace(best, side=SIDES[int(np.argmax(votes))], side_votes=votes, source=out[i].source)
    return out


def hits(hand: HandDetection) -> float:
    """How many passes saw this hand (each pass adds votes summing to 1)."""
    return float(hand.side_votes.sum())


def pair_distance(a: HandDetection, b: HandDetection) -> float:
    """Distance between the hands' box centres in units of their mean size."""
    return float(np.linalg.norm(a.centre - b.centre) / max(0.5 * (a.size + b.size), 1e-6))


def select_hands(dets: Sequence[HandDetection], max_pair_distance: float = 3.0,
                 min_size_ratio: float = 0.5) -> tuple[HandDetection, ...]:
    """The interacting pair (or the single best hand) among detections.

    A pair is acceptable when its centre distance is at most ``max_pair_distance`` mean hand
    sizes and the smaller hand is at least ``min_size_ratio`` of the larger (one person's hands
    look about equally big; tiny low-threshold false positives do not). Ranking: a left+right
    pair first, then the closest (interacting hands touch; two people's hands are farther
    apart). No acceptable pair: the hand seen by most passes, then the highest score, alone.
    """
    best, key = None, None
    for i in range(len(dets)):
        for j in range(i + 1, len(dets)):
            a, b = dets[i], dets[j]
            d = pair_distance(a, b)
            if d > max_pair_distance or min(a.size, b.size) < min_size_ratio * max(a.size, b.size):
                continue
            if key is None or (a.side == b.side, d) < key:
                best, key = (a, b), (a.side == b.side, d)
    if best is None:
        return (max(dets, key=lambda h: (hits(h), h.score)),) if dets else ()
    return best


def resolve_pair_sides(a: HandDetection, b: HandDetection) -> tuple[tuple[HandDetection, HandDetection], bool]:
    """Order a pair as (left, right); a same-side pair is split by the handedness votes.

    One person has one left and one right hand: when both carry the same label, the hand with
    the larger share of "right" votes becomes the right hand. Returns ``((left, right),
    conflict)``; ``conflict`` is True when a label was overridden.
    """
    if a.side != b.side:
        return ((a, b) if a.side == "left" else (b, a)), False
    share = [h.side_votes[1] / max(hits(h), 1e-9) for h in (a, b)]
    right, left = (a, b) if share[0] >= share[1] else (b, a)
    return (replace(left, side="left"), replace(right, side="right")), True


def hand_mask(shape: tuple[int, int], hand: HandDetection, grow: float) -> np.ndarray:
    """(H, W) bool: the landmarks' convex hull dilated by ``grow`` x hand size."""
    m = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(m, cv2.convexHull(hand.landmarks2d.astype(np.float32)).astype(np.int32), 1)
    k = int(grow * hand.size) | 1
    if k > 1:
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return m > 0


def paint_out(rgb: np.ndarray, hand: HandDetection, grow: float) -> np.ndarray:
    """(H, W, 3) copy of ``rgb`` with the hand's dilated hull filled with mid-grey."""
    out = rgb.copy()
    out[hand_mask(rgb.shape[:2], hand, grow)] = 128
    return out


def square_region(centre: np.ndarray, side: float) -> np.ndarray:
    """(4,) ``x0, y0, x1, y1`` of a square of ``side`` around ``centre`` (2,)."""
    return np.array([centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2])


def tile_regions(width: int, height: int, scale: float, grid: int) -> list[np.ndarray]:
    """Overlapping windows (4,) of ``scale`` x the image size on a ``grid`` x ``grid`` lattice."""
    tw, th = scale * width, scale * height
    steps = np.linspace(0.0, 1.0, grid) if grid > 1 else np.array([0.5])
    return [np.array([fx * (width - tw), fy * (height - th), fx * (width - tw) + tw, fy * (height - th) + th])
            for fy in steps for fx in steps]


def union_box(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3,) smallest square ``(cx, cy, side)`` containing the squares a and b (3,)."""
    lo = np.minimum(a[:2] - a[2] / 2, b[:2] - b[2] / 2)
    hi = np.maximum(a[:2] + a[2] / 2, b[:2] + b[2] / 2)
    return np.array([*(lo + hi) / 2, float((hi - lo).max())])


def hands_box(hands: Sequence[HandDetection], fill: float = JOINT_FILL) -> np.ndarray:
    """(3,) DIR crop ``(cx, cy, side)`` around all landmarks of the hands (``fill``: the
    landmarks' extent over the side; the default makes it the vertex box DIR was trained on)."""
    return square_box(np.concatenate([h.landmarks2d for h in hands]), fill=fill)


def pose_partner_box(wrists: Sequence[Any], hand: HandDetection, min_visibility: float = 0.5,
                     max_distance: float = 4.0) -> np.ndarray | None:
    """Box (4,) pixels where Pose puts the lone hand's partner, or None.

    The partner is the :class:`~.mediapipe_hands.BodyWrist` of the other side with visibility
    >= ``min_visibility`` within ``max_distance`` hand sizes of the found hand; its centre is
    taken 0.6 of the way from the wrist to Pose's index point, the box one hand size wide.
    """
    for wr in wrists:
        if wr.side != opposite(hand.side) or wr.visibility < min_visibility:
            continue
        if np.linalg.norm(wr.wrist - hand.centre) <= max_distance * hand.size:
            return square_region(wr.wrist + 0.6 * (wr.index - wr.wrist), hand.size)
    return None


def single_hand_box(hand: HandDetection, partner: np.ndarray | None, grow: float = 1.6,
                    fill: float = JOINT_FILL) -> np.ndarray:
    """(3,) crop around a lone hand: its own crop with the side times ``grow``, widened to
    take in the partner box (4,) when one is given."""
    box = square_box(hand.landmarks2d, fill=fill) * np.array([1.0, 1.0, grow])
    if partner is not None:
        corners = np.array([[partner[0], partner[1]], [partner[2], partner[3]]])
        box = union_box(box, square_box(np.concatenate([hand.landmarks2d, corners]), fill=fill))
    return box


def _pass(detector: Any, image: np.ndarray, dets: list, config: SearchConfig, source: str,
          mirrored: bool, **kwargs: Any) -> list:
    """Run one detection pass (plain, and flipped if enabled) and merge into ``dets``."""
    for flip in ((False, True) if config.use_flip else (False,)):
        found = detector.detect(image, mirrored=mirrored, flip=flip, source=source, **kwargs)
        dets = merge_detections(dets, found, config.same_hand_agreement)
    return dets


def find_two_hands(detector: Any, rgb: np.ndarray, mirrored: bool = False,
                   config: SearchConfig = SearchConfig()) -> TwoHandCrop:
    """Find the (interacting) pair of hands in a full frame and DIR's crop around them.

    Args:
        detector: a :class:`~.mediapipe_hands.MediaPipeHands`, or anything with
            ``detect(image, mirrored=, flip=, source=, region=, confidence=) -> list`` and
            ``calls``; ``body_wrists(image, mirrored)`` is optional (the pose step).
        rgb: (H, W, 3) uint8 RGB full frame.
        mirrored: the camera image is a mirror image (selfie camera).
        config: search knobs.
    """
    c = config
    calls0 = getattr(detector, "calls", 0)
    h, w = rgb.shape[:2]
    passes = ["full"]
    dets = _pass(detector, rgb, [], c, "full", mirrored, confidence=c.confidence)
    if not dets and c.use_tiles:
        passes.append("tiles")
        for region in tile_regions(w, h, c.tile_scale, c.tile_grid):
            dets = _pass(detector, rgb, dets, c, "tiles", mirrored, region=region, confidence=c.low_confidence)
    pair = select_hands(dets, c.max_pair_distance, c.min_size_ratio)
    if dets and c.use_zoom and not (len(pair) == 2 and pair[0].side != pair[1].side):
        passes.append("zoom")
        for hand in sorted(dets, key=lambda d: -d.score)[:2]:
            region = square_region(hand.centre, c.zoom * hand.size)
            image = paint_out(rgb, hand, c.mask_grow) if c.use_mask else rgb
            dets = _pass(detector, image, dets, c, "zoom", mirrored, region=region, confidence=c.low_confidence)
    hands = select_hands(dets, c.max_pair_distance, c.min_size_ratio)
    if len(hands) == 2:
        pair, conflict = resolve_pair_sides(*hands)
        note = "; both had the same label, split by handedness votes" if conflict else ""
        return TwoHandCrop(hands_box(pair, c.fill), pair, 2, "", tuple(passes),
                           getattr(detector, "calls", 0) - calls0,
                           f"two hands (passes {', '.join(passes)}){note}", conflict, tuple(dets))
    if len(hands) == 1:
        partner = None
        if c.use_pose and hasattr(detector, "body_wrists"):
            passes.append("pose")
            partner = pose_partner_box(detector.body_wrists(rgb, mirrored), hands[0], c.min_pose_visibility)
        how = "pose" if partner is not None else "grow"
        return TwoHandCrop(single_hand_box(hands[0], partner, c.single_grow, c.fill), hands, 1, how,
                           tuple(passes), getattr(detector, "calls", 0) - calls0,
                           f"one {hands[0].side} hand (passes {', '.join(passes)}); crop widened by "
                           f"{how} for its partner", False, tuple(dets))
    return TwoHandCrop(None, (), 0, "", tuple(passes), getattr(detector, "calls", 0) - calls0,
                       f"no hand found (passes {', '.join(passes)}): no crop")


def recentre_box(box: np.ndarray, joints2d_left: np.ndarray, joints2d_right: np.ndarray,
                 valid: Sequence[bool], fill: float = JOINT_FILL, max_change: float = 2.0) -> np.ndarray:
    """Re-centre a crop on DIR's own two-hand prediction when both hands are confident.

    Args:
        box: (3,) current ``(cx, cy, side)`` pixels.
        joints2d_left, joints2d_right: (21, 2) DIR's projected joints in full-frame pixels
            (map crop pixels back with ``x = cx - side / 2 + u * side / S``).
        valid: (2,) whether DIR's left and right hands are confident.
        fill: the joints' extent / crop side (default: the vertex box DIR was trained on).
        max_change: the new side must be within [1 / max_change, max_change] x the old side.
    Returns:
        (3,) the re-centred box, or ``box`` unchanged (one or no confident hand, non-finite
        joints, or an implausible change of size).
    """
    box = np.asarray(box, dtype=np.float64).reshape(3)
    if not (bool(valid[0]) and bool(valid[1])):
        return box
    pts = np.concatenate([np.asarray(joints2d_left, np.float64).reshape(-1, 2),
                          np.asarray(joints2d_right, np.float64).reshape(-1, 2)])
    if not np.isfinite(pts).all():
        return box
    new = square_box(pts, fill=fill)
    if not box[2] / max_change <= new[2] <= box[2] * max_change:
        return box
    return new


class CropTracker:
    """Per frame, the crop to use: the new one, or the last one carried over detector misses.

    Args:
        carry_frames: how many consecutive missed frames may reuse the last crop.
        max_age: seconds after which a carried crop expires regardless of the frame count
            (None: frames only). Times are passed in by the caller (message stamps), never read
            from a clock here.
    """

    def __init__(self, carry_frames: int = 5, max_age: float | None = None):
        if carry_frames < 0:
            raise ValueError(f"carry_frames must be >= 0, got {carry_frames}")
        self.carry_frames = int(carry_frames)
        self.max_age = max_age
        self.box: np.ndarray | None = None
        self.missed = 0
        self._stamp: float | None = None

    def update(self, found: TwoHandCrop | np.ndarray | None, stamp: float | None = None) -> np.ndarray | None:
        """Feed one frame's detection result; returns the (3,) box to use or None (no hands).

        Args:
            found: this frame's :class:`TwoHandCrop`, a (3,) box, or None (detector not run or
                missed; a TwoHandCrop with ``box`` None is a miss too).
            stamp: the frame's time in seconds (needed for ``max_age``).
        """
        box = found.box if isinstance(found, TwoHandCrop) else found
        if box is not None:
            self.box, self.missed, self._stamp = np.asarray(box, dtype=np.float64).reshape(3), 0, stamp
            return self.box
        if self.box is None:
            return None
        self.missed += 1
        too_old = (self.max_age is not None and stamp is not None and self._stamp is not None
                   and stamp - self._stamp > self.max_age)
        if self.missed > self.carry_frames or too_old:
            self.reset()
            return None
        return self.box

    def reset(self) -> None:
        """Forget the carried crop."""
        self.box, self.missed, self._stamp = None, 0, None

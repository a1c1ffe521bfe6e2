"""From hand detections in a full frame to DIR's one square crop around both hands.

Why: DIR needs both hands in one square crop (side = the hands' extent / 0.8, ``data.crop``),
but a single MediaPipe pass on a full frame finds both hands of an interacting pair in only
3 of our 9 real two-hand photos: the palm detector suppresses a second palm that overlaps the
first, and misses hands that are occluded or cut by the border. :func:`find_two_hands` adds
passes only while fewer than two hands are known (measured effect per step in
``docs/detection.md``):

1. ``full``: the whole frame, and the same frame flipped (the detector is not mirror-symmetric,
   the flipped pass finds other hands and gives a second handedness vote);
2. ``zoom``: around each found hand, a window ``zoom`` x its size at a lower threshold, plain,
   flipped and with the found hand painted out (so the palm detector's suppression cannot hide
   the partner);
3. ``tiles``: only when nothing was found, overlapping windows at a lower threshold.

Detections of the same hand from several passes are merged (their handedness votes are added).
Then one pair is chosen (:func:`select_hands`: opposite sides first, closest relative to hand
size; this picks the interacting pair when several people are visible). With two hands the crop
is ``square_box`` of their landmarks; with one hand it is grown towards the skin-coloured blob
next to it (:func:`skin_partner_box`; the colour model is the found hand's own pixels) or, without
one, grown in place. That only widens the crop: the report never counts a hand the detector did
not find. :class:`CropTracker` carries a crop across frames where the detector misses.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import cv2
import numpy as np

from ..data.crop import CROP_FILL, square_box
from .mediapipe_hands import SIDES, HandDetection


@dataclass(frozen=True)
class SearchConfig:
    """Knobs of :func:`find_two_hands` (defaults measured on the real photos)."""

    confidence: float = 0.3        # first pass palm threshold
    low_confidence: float = 0.1    # zoom / tile passes
    zoom: float = 2.5              # zoom window side / hand size
    mask_grow: float = 0.15        # painted-out hand: hull dilated by this x hand size
    tile_scale: float = 0.6        # tile side / image side
    tile_grid: int = 3             # tiles per axis
    same_hand_tol: float = 0.3     # mean landmark distance / hand size below which two are one
    max_pair_distance: float = 3.0  # centre distance / mean hand size of an acceptable pair
    single_grow: float = 1.6       # crop side multiplier around a lone hand without a skin blob
    skin_search: float = 5.0       # skin search window side / hand size
    fill: float = CROP_FILL


@dataclass(frozen=True)
class TwoHandCrop:
    """Result of :func:`find_two_hands`.

    Attributes:
        box: (3,) ``(cx, cy, side)`` pixels, or None when no hand was found.
        hands: the chosen detections (0-2), ordered (left, right) when both sides differ.
        found: ``len(hands)``: hands the detector really found (never an expansion).
        expanded: the box was grown around a lone hand (``"skin"``, ``"grow"``) or ``""``.
        passes: names of the passes that ran, in order.
        detector_calls: MediaPipe passes used.
        reason: one line on how the crop was made.
        side_conflict: both chosen hands had the same label and one was overridden.
    """

    box: np.ndarray | None
    hands: tuple[HandDetection, ...]
    found: int
    expanded: str
    passes: tuple[str, ...]
    detector_calls: int
    reason: str
    side_conflict: bool = False


def mean_landmark_distance(a: HandDetection, b: HandDetection) -> float:
    """Mean distance (pixels) between corresponding landmarks of two detections."""
    return float(np.linalg.norm(a.landmarks2d - b.landmarks2d, axis=1).mean())


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``x0, y0, x1, y1`` boxes (4,)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def same_hand(a: HandDetection, b: HandDetection, tol: float = 0.3) -> bool:
    """Whether two detections are the same physical hand.

    Same when the landmarks nearly coincide (mean distance < ``tol`` x mean size); or the wrists
    nearly coincide (< 0.25 x size) and the boxes overlap (IoU > 0.3): one hand whose fingers were
    fitted differently by two passes (seen on a hand holding tongs); or both carry the same side
    label and their boxes overlap strongly (IoU > 0.6: one hand fitted twice). Two interlaced
    hands overlap too, but their wrists are far apart.
    """
    size = 0.5 * (a.size + b.size)
    iou = box_iou(a.box, b.box)
    if mean_landmark_distance(a, b) < tol * size:
        return True
    if np.linalg.norm(a.landmarks2d[0] - b.landmarks2d[0]) < 0.25 * size and iou > 0.3:
        return True
    return a.side == b.side and iou > 0.6


def merge_detections(known: Sequence[HandDetection], new: Sequence[HandDetection],
                     tol: float = 0.3) -> list[HandDetection]:
    """Add ``new`` detections to ``known``, merging duplicates of one hand.

    A merged hand keeps the landmarks of the higher-score detection, sums both handedness votes
    and takes the side with more votes.
    """
    out = list(known)
    for d in new:
        for i, k in enumerate(out):
            if same_hand(k, d, tol):
                votes = k.side_votes + d.side_votes
                best = k if k.score >= d.score else d
                out[i] = replace(best, side=SIDES[int(np.argmax(votes))], side_votes=votes, source=k.source)
                break
        else:
            out.append(d)
    return out


def pair_distance(a: HandDetection, b: HandDetection) -> float:
    """Distance between the hands' box centres in units of their mean size."""
    return float(np.linalg.norm(a.centre - b.centre) / max(0.5 * (a.size + b.size), 1e-6))


def select_hands(dets: Sequence[HandDetection], max_pair_distance: float = 3.0) -> tuple[HandDetection, ...]:
    """The interacting pair (or the single best hand) among detections.

    Rule: among pairs closer than ``max_pair_distance`` (centre distance / mean hand size), a
    left+right pair beats a same-side pair; then the closest pair wins. No acceptable pair: the
    highest-score hand alone. A left+right pair is returned as (left, right).
    """
    best, key = None, None
    for i in range(len(dets)):
        for j in range(i + 1, len(dets)):
            d = pair_distance(dets[i], dets[j])
            if d > max_pair_distance:
                continue
            k = (dets[i].side == dets[j].side, d)
            if key is None or k < key:
                best, key = (dets[i], dets[j]), k
    if best is None:
        return (max(dets, key=lambda h: h.score),) if dets else ()
    a, b = best
    return (b, a) if (a.side, b.side) == ("right", "left") else (a, b)


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
    """(4,) ``x0, y0, x1, y1`` of a square."""
    return np.array([centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2])


def tile_regions(width: int, height: int, scale: float, grid: int) -> list[np.ndarray]:
    """Overlapping windows (4,) of ``scale`` x the image size on a ``grid`` x ``grid`` lattice."""
    tw, th = scale * width, scale * height
    steps = np.linspace(0.0, 1.0, grid) if grid > 1 else np.array([0.5])
    return [np.array([fx * (width - tw), fy * (height - th), fx * (width - tw) + tw, fy * (height - th) + th])
            for fy in steps for fx in steps]


def skin_partner_box(rgb: np.ndarray, hand: HandDetection, search: float = 5.0,
                     max_mahalanobis: float = 2.5) -> np.ndarray | None:
    """Box (4,) of the skin-coloured blob that most likely is the lone hand's partner, or None.

    The colour model is the found hand's own pixels (Lab a, b: mean and covariance), so it
    adapts to skin tone and lighting. Candidates: pixels within ``max_mahalanobis`` inside a
    window of ``search`` x hand size, outside the found hand (hull dilated by 0.25 x size),
    cleaned by an opening; the blob with the largest area / (1 + distance / size) wins if its
    area is at least 10% of the hand's and its extent at most 2.5 x the hand size (not a face
    merged with an arm). This is a crop hint only, never a detection.
    """
    h, w = rgb.shape[:2]
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float64)
    inner = hand_mask((h, w), hand, 0.0)
    ab = lab[inner][:, 1:]
    if len(ab) < 20:
        return None
    mu, cov = ab.mean(axis=0), np.cov(ab.T) + np.eye(2) * 4.0
    win = np.clip(square_region(hand.centre, search * hand.size), 0, [w, h, w, h]).astype(int)
    sub = lab[win[1]:win[3], win[0]:win[2], 1:] - mu
    d2 = np.einsum("...i,ij,...j->...", sub, np.linalg.inv(cov), sub)
    skin = (d2 < max_mahalanobis ** 2) & ~hand_mask((h, w), hand, 0.25)[win[1]:win[3], win[0]:win[2]]
    k = max(3, int(hand.size / 20) | 1)
    skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    n, _, stats, cents = cv2.connectedComponentsWithStats(skin, connectivity=8)
    best, best_val = None, 0.0
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        dist = np.linalg.norm(cents[i] + win[:2] - hand.centre) / hand.size
        if area < 0.1 * inner.sum() or max(bw, bh) > 2.5 * hand.size:
            continue
        val = area / (1.0 + dist)
        if val > best_val:
            best, best_val = np.array([x, y, x + bw, y + bh], dtype=np.float64) + np.tile(win[:2], 2), val
    return best


def hands_box(hands: Sequence[HandDetection], fill: float = CROP_FILL) -> np.ndarray:
    """(3,) DIR crop ``(cx, cy, side)`` around all landmarks of the hands."""
    return square_box(np.concatenate([h.landmarks2d for h in hands]), fill=fill)


def single_hand_box(hand: HandDetection, partner: np.ndarray | None, grow: float = 1.6,
                    fill: float = CROP_FILL) -> np.ndarray:
    """(3,) crop around a lone hand: around it and the partner blob box (4,) if given, else
    the hand's own crop with the side multiplied by ``grow``."""
    if partner is not None:
        corners = np.array([[partner[0], partner[1]], [partner[2], partner[3]]])
        return square_box(np.concatenate([hand.landmarks2d, corners]), fill=fill)
    box = square_box(hand.landmarks2d, fill=fill)
    return np.array([box[0], box[1], box[2] * grow])


def resolve_pair_sides(a: HandDetection, b: HandDetection) -> tuple[tuple[HandDetection, HandDetection], bool]:
    """Order a pair as (left, right); a same-side pair is split by the handedness votes.

    One person has one left and one right hand, so when both hands of the chosen pair carry
    the same label, the hand with the larger share of "right" votes becomes the right hand.
    Returns ``((left, right), conflict)``; ``conflict`` is True when a label was overridden.
    """
    if a.side != b.side:
        return ((a, b) if a.side == "left" else (b, a)), False
    share = [h.side_votes[1] / max(float(h.side_votes.sum()), 1e-9) for h in (a, b)]
    right, left = (a, b) if share[0] >= share[1] else (b, a)
    return (replace(left, side="left"), replace(right, side="right")), True


def _pass(detector, image: np.ndarray, dets: list, name: str, mirrored: bool, tol: float,
          **kwargs) -> list:
    """Run one detection pass, plain and flipped, and merge the results into ``dets``."""
    for flip in (False, True):
        found = detector.detect(image, mirrored=mirrored, flip=flip, source=name, **kwargs)
        dets = merge_detections(dets, found, tol)
    return dets


def _has_opposite_pair(dets: Sequence[HandDetection], max_pair_distance: float) -> bool:
    hands = select_hands(dets, max_pair_distance)
    return len(hands) == 2 and hands[0].side != hands[1].side


def find_two_hands(detector, rgb: np.ndarray, mirrored: bool = False,
                   config: SearchConfig = SearchConfig()) -> TwoHandCrop:
    """Find the (interacting) pair of hands in a full frame and DIR's crop around them.

    Args:
        detector: a :class:`~.mediapipe_hands.MediaPipeHands` (or anything with the same
            ``detect(rgb, mirrored=, region=, flip=, confidence=, source=)`` and ``calls``).
        rgb: (H, W, 3) uint8 RGB full frame.
        mirrored: the camera image is a mirror image (selfie camera).
        config: search knobs.
    """
    c = config
    calls0 = getattr(detector, "calls", 0)
    h, w = rgb.shape[:2]
    passes = ["full"]
    dets = _pass(detector, rgb, [], "full", mirrored, c.same_hand_tol, confidence=c.confidence)
    if not dets:
        passes.append("tiles")
        for region in tile_regions(w, h, c.tile_scale, c.tile_grid):
            dets = _pass(detector, rgb, dets, "tiles", mirrored, c.same_hand_tol, region=region,
                         confidence=c.low_confidence)
    if dets and not _has_opposite_pair(dets, c.max_pair_distance):
        passes.append("zoom")
        for hand in sorted(dets, key=lambda d: -d.score)[:2]:
            region = square_region(hand.centre, c.zoom * hand.size)
            dets = _pass(detector, rgb, dets, "zoom", mirrored, c.same_hand_tol, region=region,
                         confidence=c.low_confidence)
            dets = _pass(detector, paint_out(rgb, hand, c.mask_grow), dets, "zoom_masked", mirrored,
                         c.same_hand_tol, region=region, confidence=c.low_confidence)
    hands = select_hands(dets, c.max_pair_distance)
    calls = getattr(detector, "calls", 0) - calls0
    trail = ", ".join(passes)
    if len(hands) == 2:
        pair, conflict = resolve_pair_sides(*hands)
        note = "; both were labelled the same side, split by handedness votes" if conflict else ""
        return TwoHandCrop(hands_box(pair, c.fill), pair, 2, "", tuple(passes), calls,
                           f"two hands from passes {trail}{note}", conflict)
    if len(hands) == 1:
        partner = skin_partner_box(rgb, hands[0], c.skin_search)
        how = "skin" if partner is not None else "grow"
        return TwoHandCrop(single_hand_box(hands[0], partner, c.single_grow, c.fill), hands, 1, how,
                           tuple(passes), calls, f"one {hands[0].side} hand (passes {trail}); crop grown "
                           f"({how}) to take in its partner")
    return TwoHandCrop(None, (), 0, "", tuple(passes), calls, f"no hand found (passes {trail}): no crop")

"""Reconciling the detector's left/right with DIR's, with the reason for every decision.

Why: DIR predicts a "left" and a "right" hand from appearance alone. When the hands are
interlaced or seen from an unusual angle it can swap them, and so can MediaPipe; the two are
independent opinions. The detector's hands come with 2D landmarks, DIR's with projected joints,
so we can see which detector hand each DIR hand lies on and check the labels against each other.

Mirrored (selfie) cameras: the image of a right hand in a mirror looks like a left hand. DIR,
which judges by appearance, then outputs the person's right hand in its "left" slot; MediaPipe's
label, which assumes a mirror, is then the person's side (``mediapipe_hands.person_side``
converts it; ``HandDetection.side`` is always the person's side). :func:`dir_person_sides`
gives the person's side of DIR's two slots.

Decision rules of :func:`reconcile_sides` (never a silent guess; the result says why):

* no detector hand lies on a DIR hand: keep DIR's sides (reason says there was no evidence);
* two detector hands of different sides on the two DIR hands: keep or swap, whichever assignment
  puts the detector's hands closer to DIR's; swap only when it is clearly better (its cost at most
  ``swap_ratio`` x the other) and ``conflict`` reports that DIR and the detector disagreed;
* one detector hand (or two of the same side, then the better-matching one) on one DIR hand:
  that DIR hand takes the detector's side, the other DIR hand the other side.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .mediapipe_hands import SIDES, HandDetection, opposite


@dataclass(frozen=True)
class SideDecision:
    """Final sides of DIR's two output hands.

    Attributes:
        sides: person's side of DIR's slot 0 (its "left" output) and slot 1 (its "right").
        swapped: ``sides`` differ from DIR's own reading (after the mirror mapping).
        conflict: the detector and DIR disagreed about a hand the detector saw.
        evidence: detector hands that lay on a DIR hand (0, 1, 2).
        reason: one line explaining the decision.
    """

    sides: tuple[str, str]
    swapped: bool
    conflict: bool
    evidence: int
    reason: str


def dir_person_sides(mirrored: bool) -> tuple[str, str]:
    """Person's side of DIR's (left slot, right slot): swapped for a mirrored camera image."""
    return ("right", "left") if mirrored else ("left", "right")


def match_cost(landmarks2d: np.ndarray, joints2d: np.ndarray) -> float:
    """Mean joint distance between two (21, 2) skeletons, in units of the detector hand's size."""
    a = np.asarray(landmarks2d, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(joints2d, dtype=np.float64).reshape(-1, 2)
    size = max(float(np.ptp(a, axis=0).max()), 1e-6)
    return float(np.linalg.norm(a - b, axis=1).mean() / size)


def reconcile_sides(detections: Sequence[HandDetection], dir_left2d: np.ndarray, dir_right2d: np.ndarray,
                    mirrored: bool = False, max_cost: float = 0.5, swap_ratio: float = 0.7) -> SideDecision:
    """Decide the person's side of each of DIR's two hands from the detector's hands.

    Args:
        detections: detector hands (``side`` = person's side, ``landmarks2d`` (21, 2) pixels).
        dir_left2d, dir_right2d: (21, 2) DIR's projected joints of its left and right output,
            full-frame pixels, same joint order.
        mirrored: the camera image is a mirror image.
        max_cost: a detector hand lies on a DIR hand when :func:`match_cost` is below this.
        swap_ratio: a swap needs the swapped assignment's cost <= this x the straight one.
    """
    base = dir_person_sides(mirrored)
    dirs = (np.asarray(dir_left2d, np.float64), np.asarray(dir_right2d, np.float64))
    cost = np.array([[match_cost(d.landmarks2d, j) for j in dirs] for d in detections]).reshape(-1, 2)
    on = [i for i in range(len(detections)) if cost[i].min() < max_cost]
    if not on:
        return SideDecision(base, False, False, 0, "no detector hand lies on a DIR hand: DIR's sides kept")
    sides_seen = {detections[i].side for i in on}
    if len(on) >= 2 and sides_seen == set(SIDES):
        i_l = min((i for i in on if detections[i].side == "left"), key=lambda i: cost[i].min())
        i_r = min((i for i in on if detections[i].side == "right"), key=lambda i: cost[i].min())
        # slot k of DIR holds the person's side base[k]; straight = detector agrees with that
        slot_of = {s: k for k, s in enumerate(base)}
        straight = cost[i_l, slot_of["left"]] + cost[i_r, slot_of["right"]]
        crossed = cost[i_l, slot_of["right"]] + cost[i_r, slot_of["left"]]
        if crossed <= swap_ratio * straight:
            return SideDecision((base[1], base[0]), True, True, 2,
                                f"detector's left/right hands lie on DIR's opposite hands "
                                f"(cost {crossed:.2f} vs {straight:.2f}): swapped")
        agree = "agrees" if straight <= crossed else "is ambiguous (no clear swap)"
        return SideDecision(base, False, straight > crossed, 2,
                            f"detector {agree} with DIR (cost {straight:.2f} vs swapped {crossed:.2f}): kept")
    i = min(on, key=lambda j: cost[j].min())
    det, slot = detections[i], int(np.argmin(cost[i]))
    note = " (the detector gave both hands the same side; the better-matching one used)" if len(on) >= 2 else ""
    if base[slot] == det.side:
        return SideDecision(base, False, False, 1,
                            f"detector's {det.side} hand lies on DIR's {det.side} hand: kept{note}")
    sides = (det.side, opposite(det.side)) if slot == 0 else (opposite(det.side), det.side)
    return SideDecision(sides, True, True, 1,
                        f"detector's {det.side} hand lies on DIR's {base[slot]} hand: swapped{note}")

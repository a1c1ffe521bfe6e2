"""Which hand is it? The side of a detected hand from its landmarks' geometry (ROS-free).

A hand's 2D landmarks alone cannot tell a left hand from a right one: mirroring a hand through
a plane parallel to the image leaves its projection (almost) unchanged and turns a valid left
pose into a valid right pose. What does tell them apart is chirality in 3D: which side of the
palm the thumb and the flexing fingers lie on, relative to the order wrist -> index ->
little. MediaPipe's metric "world" landmarks carry that 3D shape, and a hand model of the
wrong side cannot reproduce it (no rotation or scale mirrors a shape). So each detection is
fitted with both hand models (:func:`fit_hands`); the side whose model fits better wins:

    log_odds(right) = log(q_R + eps) - log(q_L + eps) + w * log((v_R + a) / (v_L + a))

with ``q`` the fit quality (the confidence without the detector's score:
``1 / ((1 + (e_2d / e_px)^2) (1 + (e_3d / e_mm)^2))``, see :func:`keypoint_fit.confidence`),
``v`` MediaPipe's handedness votes summed over the passes that saw the hand
(``HandDetection.side_votes``) and ``w`` small: the label only breaks near-ties. The label is
the handedness classifier's reading of the same pixels and flips with them (an 80 px shift or a
grey image flipped it on the real photos, where the fits' comparison did not; measured in
docs/keypoint_fit.md). The two hands of a pair (``find_two_hands``: one person's interacting
hands) are one left and one right: the hand with the larger log-odds is the right one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..hand_model.joints import SIDES
from .keypoint_fit import FitConfig, FitResult, confidence, fit_hands


@dataclass(frozen=True)
class SideDecision:
    """The side chosen for one detected hand and why.

    Attributes:
        side: "left" or "right".
        log_odds: evidence for "right" (> 0) against "left" (< 0), geometry plus label.
        geometry: the fits' part, ``log(q_R + eps) - log(q_L + eps)``.
        label: MediaPipe's part, ``log((v_R + a) / (v_L + a))`` (before the weight).
        fits: {side: FitResult} of both models.
    """

    side: str
    log_odds: float
    geometry: float
    label: float
    fits: Mapping[str, FitResult]


def fit_quality(fit: FitResult, cfg: FitConfig = FitConfig()) -> float:
    """How well a model fits, in (0, 1]: the confidence of a detector score of 1 (0 for a fit
    that diverged or lies behind the camera)."""
    if not (math.isfinite(fit.error_2d) and math.isfinite(fit.error_3d) and fit.wrist[2] > 0):
        return 0.0
    if fit.confidence <= 0.0:
        return 0.0
    return confidence(1.0, fit.error_2d, fit.error_3d / 1000.0, fit.hand_size, cfg)


def label_log_odds(votes: Sequence[float], smoothing: float = 0.5) -> float:
    """``log((v_R + a) / (v_L + a))`` of handedness votes (left, right) (2,)."""
    v = np.asarray(votes, dtype=np.float64).reshape(2)
    return float(np.log((v[1] + smoothing) / (v[0] + smoothing)))


def side_log_odds(fit_left: FitResult, fit_right: FitResult, votes: Sequence[float], label_weight: float = 0.5,
                  cfg: FitConfig = FitConfig(), eps: float = 1e-3) -> tuple[float, float, float]:
    """(log-odds of "right", geometry part, label part) of one hand (module docstring)."""
    geometry = math.log(fit_quality(fit_right, cfg) + eps) - math.log(fit_quality(fit_left, cfg) + eps)
    label = label_log_odds(votes)
    return geometry + label_weight * label, geometry, label


def assign_sides(log_odds: Sequence[float], pair: bool) -> list[str]:
    """Sides of hands with these log-odds of "right": each by its sign, or for a pair (two
    hands of one person) the larger one right, the other left."""
    if pair:
        if len(log_odds) != 2:
            raise ValueError(f"a pair has two hands, got {len(log_odds)}")
        right = int(np.argmax(log_odds))
        return [SIDES[1] if i == right else SIDES[0] for i in range(2)]
    return [SIDES[1] if x > 0 else SIDES[0] for x in log_odds]


def decide_sides(hands: Sequence[Any], intrinsics: Any, hand_models: Mapping[str, Any], pair: bool,
                 config: FitConfig | None = None, label_weight: float = 0.5) -> list[SideDecision]:
    """Fit both models to every hand and choose the sides (module docstring).

    Args:
        hands: ``HandDetection``-like objects (``landmarks2d``, ``world``, ``score``,
            ``side_votes``).
        intrinsics: ``(fx, fy, cx, cy)`` or ``placement.Intrinsics``.
        hand_models: {side: HandModel}, both sides.
        pair: the hands are one person's two hands (one left, one right).
        config: fit settings (defaults: :class:`FitConfig`).
        label_weight: weight ``w`` of MediaPipe's label.
    Returns:
        one :class:`SideDecision` per hand, in order.
    """
    cfg = config or FitConfig()
    fits, odds = [], []
    for hand in hands:
        both = {s: fit_hands({s: hand}, intrinsics, hand_models, config=cfg)[s] for s in SIDES}
        fits.append(both)
        odds.append(side_log_odds(both["left"], both["right"], hand.side_votes, label_weight, cfg))
    sides = assign_sides([o[0] for o in odds], pair)
    return [SideDecision(side=s, log_odds=o[0], geometry=o[1], label=o[2], fits=f)
            for s, o, f in zip(sides, odds, fits)]

"""Finding the hands in full camera frames and building DIR's two-hand crop.

DIR reconstructs two hands from a square crop in which both hands fill about 80% of the side,
and has no detector of its own. This package turns a full frame into that crop:
:mod:`.mediapipe_hands` detects hands (MediaPipe, imported lazily: it is optional),
:mod:`.two_hand_crop` makes detection robust for interacting hands, chooses one crop and carries
it over missed frames, and :mod:`.handedness` reconciles the detector's left/right with DIR's.
Measured results on real photos: ``docs/detection.md``.
"""
from __future__ import annotations

from .handedness import SideDecision, dir_person_sides, reconcile_sides
from .mediapipe_hands import (INSTALL_HINT, BodyWrist, DetectorUnavailable, HandDetection, MediaPipeHands,
                              person_side)
from .two_hand_crop import CropTracker, SearchConfig, TwoHandCrop, find_two_hands, recentre_box

__all__ = ["INSTALL_HINT", "BodyWrist", "CropTracker", "DetectorUnavailable", "HandDetection",
           "MediaPipeHands", "SearchConfig", "SideDecision", "TwoHandCrop", "dir_person_sides",
           "find_two_hands", "person_side", "recentre_box", "reconcile_sides"]

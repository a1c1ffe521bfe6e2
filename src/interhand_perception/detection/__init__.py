"""Finding the hands in full camera frames and building DIR's two-hand crop.

DIR reconstructs two hands from a square crop in which both hands fill about 80% of the side.
This package turns a full frame into that crop: :mod:`.mediapipe_hands` detects hands (lazy
MediaPipe import), :mod:`.two_hand_crop` makes the detector robust for interacting hands and
chooses one crop (plus a tracker that carries it across missed frames), and
:mod:`.handedness` reconciles the detector's left/right with DIR's.
"""
from __future__ import annotations

from .mediapipe_hands import (INSTALL_HINT, DetectorUnavailable, HandDetection, MediaPipeHands,
                              person_side)

__all__ = ["INSTALL_HINT", "DetectorUnavailable", "HandDetection", "MediaPipeHands", "person_side"]

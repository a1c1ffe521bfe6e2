"""Inference: the HandReconstructor API and benchmarks."""
from .reconstructor import HandReconstructor, HandResult, TwoHandResult, hand_confidence

__all__ = ["HandReconstructor", "HandResult", "TwoHandResult", "hand_confidence"]

"""Keypoint fitting: hand-model meshes from a detector's 2D + 3D keypoints (no network weights).

:mod:`.twist_swing` gives an analytic start (twist-swing inverse kinematics), :mod:`.keypoint_fit`
refines it against pixels and metric landmarks and returns camera-frame meshes
(:func:`fit_hands`; ``pipeline.placement.to_placed_hands`` turns them into the pipeline's
``PlacedHands``). See docs/keypoint_fit.md.
"""
from .keypoint_fit import FitConfig, FitResult, fit_hands, fit_keypoints
from .twist_swing import HandSkeleton, ik_axis_angle, skeleton_from_model, twist_swing_ik

__all__ = ["FitConfig", "FitResult", "HandSkeleton", "fit_hands", "fit_keypoints", "ik_axis_angle",
           "skeleton_from_model", "twist_swing_ik"]

"""Keypoint fitting: hand-model meshes from detector keypoints (no network weights)."""

"""The DIR network at inference (ROS-free): :class:`HandReconstructor` and its runtimes.

* :mod:`.reconstructor`: ``HandReconstructor`` (a checkpoint -> per-crop two-hand results:
  hand-model meshes, joints, camera, confidence);
* :mod:`.backends`: PyTorch, ONNX Runtime and TensorRT behind one interface
  (:mod:`.tensorrt_engine`, :mod:`.tensorrt_backend`: engines built and cached per TensorRT
  version, GPU, precision and model), accepted wherever a ``HandReconstructor`` is;
* :mod:`.export_onnx`: DIR with its hand-model layer to ONNX; :mod:`.fast_inference`: the
  measured CPU speed-ups (docs/cpu_speed.md).
"""
from .reconstructor import HandReconstructor, HandResult, TwoHandResult, hand_confidence

__all__ = ["HandReconstructor", "HandResult", "TwoHandResult", "hand_confidence"]

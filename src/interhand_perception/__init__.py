"""interhand_perception: two interacting hands from one RGB camera with DIR (ROS-free core).

``from interhand_perception import HandReconstructor, load_hand_model`` gives the inference API
and the hand models; the heavy modules are imported on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "HandReconstructor": ("interhand_perception.network.reconstructor", "HandReconstructor"),
    "TwoHandResult": ("interhand_perception.network.reconstructor", "TwoHandResult"),
    "HandResult": ("interhand_perception.network.reconstructor", "HandResult"),
    "load_hand_model": ("interhand_perception.hand_model", "load_hand_model"),
    "JOINT_NAMES": ("interhand_perception.hand_model.joints", "JOINT_NAMES"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'interhand_perception' has no attribute {name!r}")

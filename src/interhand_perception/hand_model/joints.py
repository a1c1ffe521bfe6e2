"""Joint names, orders and kinematic trees shared by every part of the project.

Two joint orders exist:

* The **16-joint skinning order** of MANO (and of the built-in model, which copies it):
  ``0 wrist, 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb``, each finger
  proximal to distal. The 45 pose values of a hand are the axis-angle rotations of joints
  1..15 in this order (15 x 3).
* The **21-joint output order** used by every output of the project (network, metrics,
  ROS messages): ``wrist``, then thumb, index, middle, ring, little, each
  MCP -> PIP -> DIP -> tip (for the thumb: CMC -> MCP -> IP -> tip). Index 9 is the middle
  MCP. The five tips are mesh vertices, not skinning joints.

Sides are always ordered ``("left", "right")``: index 0 is the left hand, index 1 the right.
"""
from __future__ import annotations

import numpy as np

SIDES: tuple[str, str] = ("left", "right")

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")

#: Names of the 21 output joints, in output order.
JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)
NUM_JOINTS = len(JOINT_NAMES)  # 21
ROOT_JOINT = 0  # wrist
MIDDLE_MCP = 9

#: Parent of each output joint (21-joint order); -1 for the wrist.
JOINT_PARENTS: tuple[int, ...] = (
    -1,
    0, 1, 2, 3,
    0, 5, 6, 7,
    0, 9, 10, 11,
    0, 13, 14, 15,
    0, 17, 18, 19,
)

#: The 20 bones of the 21-joint skeleton as (parent, child) pairs.
BONES: tuple[tuple[int, int], ...] = tuple(
    (p, c) for c, p in enumerate(JOINT_PARENTS) if p >= 0
)

#: Names of the 16 skinning joints (MANO order).
SKIN_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index_mcp", "index_pip", "index_dip",
    "middle_mcp", "middle_pip", "middle_dip",
    "little_mcp", "little_pip", "little_dip",
    "ring_mcp", "ring_pip", "ring_dip",
    "thumb_cmc", "thumb_mcp", "thumb_ip",
)
NUM_SKIN_JOINTS = len(SKIN_JOINT_NAMES)  # 16

#: Parent of each skinning joint (MANO kinematic tree).
SKIN_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

#: Fingertip order of a model's ``tip_vertex_ids``: thumb, index, middle, ring, little.
TIP_ORDER: tuple[str, ...] = FINGERS

#: Fingertip vertex ids of the official MANO right/left meshes (778 vertices).
MANO_TIP_VERTEX_IDS: tuple[int, ...] = (745, 317, 444, 556, 673)


def skin_to_output_index() -> np.ndarray:
    """Index array mapping ``concat(skin_joints16, tips5)`` to the 21-joint output order.

    Returns:
        (21,) int64 array ``idx`` such that ``out = cat[idx]`` where ``cat`` stacks the 16
        skinning joints followed by the 5 tip vertices (thumb, index, middle, ring, little).
    """
    name_to_cat = {n: i for i, n in enumerate(SKIN_JOINT_NAMES)}
    for k, finger in enumerate(TIP_ORDER):
        name_to_cat[f"{finger}_tip"] = NUM_SKIN_JOINTS + k
    return np.array([name_to_cat[n] for n in JOINT_NAMES], dtype=np.int64)


SKIN_TO_OUTPUT = skin_to_output_index()


def adjacency(self_loops: bool = True) -> np.ndarray:
    """Symmetric adjacency matrix of the 21-joint skeleton.

    Returns:
        (21, 21) float32 array with 1 where two joints share a bone (and on the diagonal
        when ``self_loops``).
    """
    a = np.zeros((NUM_JOINTS, NUM_JOINTS), dtype=np.float32)
    for p, c in BONES:
        a[p, c] = a[c, p] = 1.0
    if self_loops:
        a += np.eye(NUM_JOINTS, dtype=np.float32)
    return a

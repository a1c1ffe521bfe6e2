"""The arrays that define a hand model (MANO or built-in), independent of any framework."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

from .joints import NUM_SKIN_JOINTS, SKIN_PARENTS


@dataclass(frozen=True)
class HandModelData:
    """Numpy arrays of one hand model (one side). Shapes: see docs/architecture.md.

    Attributes:
        v_template: (V, 3) rest-pose vertices, metres.
        faces: (F, 3) int64 triangles, counter-clockwise seen from outside.
        shapedirs: (V, 3, S) shape blend shapes (S = 10).
        posedirs: (V, 3, 135) pose-corrective blend shapes (may be all zeros).
        J_regressor: (16, V) dense joint regressor.
        weights: (V, 16) linear-blend-skinning weights (rows sum to 1).
        parents: (16,) int64 kinematic tree, parents[0] == -1.
        hands_components: (45, 45) PCA basis of the 45 pose values, one component per row.
        hands_mean: (45,) mean pose (axis-angle).
        tip_vertex_ids: (5,) int64 fingertip vertices: thumb, index, middle, ring, little.
        side: "left" or "right".
        name: "builtin" or "mano".
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    hands_components: np.ndarray
    hands_mean: np.ndarray
    tip_vertex_ids: np.ndarray
    side: str
    name: str
    extras: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def num_verts(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    def validate(self) -> "HandModelData":
        """Check shapes and invariants; raise ValueError naming the first problem."""
        v = self.num_verts
        checks = [
            (self.v_template.shape == (v, 3), f"v_template {self.v_template.shape}"),
            (self.faces.ndim == 2 and self.faces.shape[1] == 3, f"faces {self.faces.shape}"),
            (self.faces.min() >= 0 and self.faces.max() < v, "faces index out of range"),
            (self.shapedirs.shape[:2] == (v, 3), f"shapedirs {self.shapedirs.shape}"),
            (self.posedirs.shape == (v, 3, (NUM_SKIN_JOINTS - 1) * 9), f"posedirs {self.posedirs.shape}"),
            (self.J_regressor.shape == (NUM_SKIN_JOINTS, v), f"J_regressor {self.J_regressor.shape}"),
            (self.weights.shape == (v, NUM_SKIN_JOINTS), f"weights {self.weights.shape}"),
            (tuple(int(p) for p in self.parents) == SKIN_PARENTS, f"parents {self.parents}"),
            (self.hands_components.shape == (45, 45), f"hands_components {self.hands_components.shape}"),
            (self.hands_mean.shape == (45,), f"hands_mean {self.hands_mean.shape}"),
            (self.tip_vertex_ids.shape == (5,), f"tip_vertex_ids {self.tip_vertex_ids.shape}"),
            (self.side in ("left", "right"), f"side {self.side!r}"),
        ]
        for ok, what in checks:
            if not ok:
                raise ValueError(f"invalid {self.name} {self.side} hand model: {what}")
        return self

    def fingerprint(self) -> str:
        """Short stable hash of the arrays: identifies the exact model in checkpoints/messages."""
        h = hashlib.sha256()
        for arr in (self.v_template, self.faces, self.shapedirs, self.J_regressor,
                    self.weights, self.hands_components, self.hands_mean):
            h.update(np.ascontiguousarray(arr, dtype=np.float64 if arr.dtype.kind == "f" else np.int64).tobytes())
        return f"{self.name}-{self.side}-{h.hexdigest()[:12]}"

    def with_side(self, side: str) -> "HandModelData":
        return replace(self, side=side)

"""After the method: depth fusion, smoothing, interpenetration (ROS-free).

The per-frame order, and why:

1. **depth** (optional aligned depth image): each hand is moved along its viewing ray to the
   distance the sensor measures (``pipeline.depth``); the image projection does not change;
2. **smoothing** (One Euro, ``pipeline.smoothing``): joints, mesh, wrist position and orientation
   are smoothed per hand, identities kept per side, a hand unseen for ``timeout_s`` becomes
   invalid;
3. **interpenetration** (``pipeline.penetration``): measured on every output; with
   ``resolve=True`` the two hands are moved apart (half each) until no vertex is deeper than
   1 mm inside the other hand. Last, so that what is published does not interpenetrate.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from .depth import apply_depth, depth_shifts
from .smoothing import HandTracks
from .penetration import measure_penetration, resolve
from .placement import Intrinsics


@dataclass(frozen=True)
class PostConfig:
    """Switches and parameters of :class:`PostProcessor` (see the node parameters)."""

    smoothing: bool = True
    min_cutoff: float = 1.0     # Hz: lower = smoother when still, more lag
    beta: float = 10.0          # speed coefficient: higher = less lag when moving, more jitter
    d_cutoff: float = 1.0       # Hz, of the speed estimate
    timeout_s: float = 0.25     # a hand unseen this long becomes invalid
    resolve_penetration: bool = False


class PostProcessor:
    """Depth, filtering and interpenetration for a stream of frames (keeps filter state).

    Args:
        config: :class:`PostConfig`.
        faces: {side: (F, 3)} triangles of the hand models.
    """

    def __init__(self, config: PostConfig, faces: dict):
        self.config = config
        self.faces = faces
        self.tracks = HandTracks(min_cutoff=config.min_cutoff, beta=config.beta, d_cutoff=config.d_cutoff,
                                 timeout_s=config.timeout_s) if config.smoothing else None

    def __call__(self, frame, valid: np.ndarray, t: float, intrinsics: Intrinsics,
                 depth: np.ndarray | None = None) -> tuple[object, np.ndarray, dict]:
        """Post-process one frame.

        Args:
            frame: a ``pipeline.FrameResult`` (its ``placed`` is replaced, nothing else).
            valid: (2,) bool, hands found in this frame.
            t: the frame's time (image stamp), seconds.
            intrinsics: of the colour image.
            depth: (H, W) metres aligned with the colour image, NaN where invalid, or None.
        Returns:
            (frame, valid (2,), report) with report keys ``depth`` ([bool, bool]: moved by
            depth), ``penetration_cm3`` (before resolution), ``penetration_after_cm3``,
            ``separation_mm``, ``ms``.
        """
        t0 = time.perf_counter()
        placed = frame.placed
        report: dict = {"depth": [False, False]}
        if depth is not None and valid.any():
            shifts = depth_shifts(placed, intrinsics, depth, valid=tuple(bool(v) for v in valid))
            report["depth"] = [s is not None for s in shifts]
            if any(report["depth"]):
                placed = apply_depth(placed, shifts)
        if self.tracks is not None:
            placed, valid = self.tracks.filter_placed(t, placed, valid)
        if valid.all():
            before = measure_penetration(placed.vertices, self.faces)
            report["penetration_cm3"] = float(before["volume_cm3"])
            report["penetration_after_cm3"] = report["penetration_cm3"]
            report["separation_mm"] = 0.0
            if self.config.resolve_penetration and before["num_inside"] > 0:
                placed, res = resolve(placed, self.faces, mode="translate")
                report["penetration_after_cm3"] = float(res["after"]["volume_cm3"])
                report["separation_mm"] = float(res["moved_mm"])
        report["ms"] = (time.perf_counter() - t0) * 1e3
        return replace(frame, placed=placed), np.asarray(valid, dtype=bool), report

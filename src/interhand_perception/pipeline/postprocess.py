"""After the method: depth fusion, smoothing, interpenetration (ROS-free).

The per-frame order, and why:

1. **depth** (optional aligned depth image): each hand is moved along its viewing ray to the
   distance the sensor measures (``pipeline.depth``); the image projection does not change;
2. **smoothing** (One Euro, ``pipeline.smoothing``): joints, mesh, wrist position and orientation
   are smoothed per hand, identities kept per side, a hand unseen for ``timeout_s`` becomes
   invalid;
3. **interpenetration** (``pipeline.penetration``): with ``resolve=True`` measured on every
   output and the two hands moved apart (half each) until no vertex is deeper than 1 mm inside
   the other hand; last, so that what is published does not interpenetrate. Otherwise it only
   reports, so it is measured when first read (:class:`Penetration`): the measure costs ~2.4 ms
   (a quarter of a 10 ms frame budget on a GPU) and the node reads it once per diagnostics
   period, not per frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from .depth import apply_depth, depth_shifts
from .smoothing import HandTracks
from .penetration import measure_penetration, resolve
from .placement import Intrinsics


class Penetration:
    """The interpenetration of one output: ``values()`` -> {``penetration_cm3`` (measured),
    ``penetration_after_cm3`` (after resolution), ``separation_mm`` (how far resolution moved
    the hands)}. Given ``values``, it is those; else it measures ``vertices`` (2, V, 3), its own
    copy, on the first call and keeps the result.
    """

    def __init__(self, vertices: np.ndarray | None = None, faces: dict | None = None, values: dict | None = None):
        self._vertices = None if vertices is None else np.array(vertices, copy=True)
        self._faces = faces
        self._values = values

    def values(self) -> dict:
        if self._values is None:
            volume = float(measure_penetration(self._vertices, self._faces)["volume_cm3"])
            self._values = {"penetration_cm3": volume, "penetration_after_cm3": volume, "separation_mm": 0.0}
            self._vertices = None
        return self._values


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
            depth), ``ms`` and, when both hands are valid, ``penetration`` (a
            :class:`Penetration`).
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
            if self.config.resolve_penetration:
                before = measure_penetration(placed.vertices, self.faces)
                values = {"penetration_cm3": float(before["volume_cm3"]), "separation_mm": 0.0}
                values["penetration_after_cm3"] = values["penetration_cm3"]
                if before["num_inside"] > 0:
                    placed, res = resolve(placed, self.faces, mode="translate")
                    values["penetration_after_cm3"] = float(res["after"]["volume_cm3"])
                    values["separation_mm"] = float(res["moved_mm"])
                report["penetration"] = Penetration(values=values)
            else:
                report["penetration"] = Penetration(placed.vertices, self.faces)  # measured when read
        report["ms"] = (time.perf_counter() - t0) * 1e3
        return replace(frame, placed=placed), np.asarray(valid, dtype=bool), report

"""How far from the truth does a method place the hands in 3D? (ROS-free)

Rendered frames with known hands (:mod:`evaluation.placement_frames`: 640 x 480, fx = 600,
hands at chosen distances) go through a reconstruction method exactly as the node runs it
(``pipeline.methods``: ``method(rgb, intrinsics, t) -> (FrameResult, report)``; valid hands =
confidence >= ``min_confidence``), in up to three settings:

* ``known``: the true intrinsics (a calibrated camera, ``camera_info``);
* ``assumed``: ``placement.assumed_intrinsics`` (60 deg horizontal field of view, fx = 554 px
  at 640 px: 7.6% below the true 600);
* ``depth``: the ``known`` result refined with the aligned depth image, as the node does
  (``pipeline.postprocess.PostProcessor``, smoothing off);
* ``oracle``: not a method but the floor of the detector's pixels: for every hand the detector
  found (the method's report ``landmarks2d``), the *true* 3D hand (true shape and pose) placed
  by a robust translation-only fit to the detector's 21 pixels with the true intrinsics. No
  method that places the hand from those pixels does better than a perfect 3D hand would;
  its side is the true one.

Each valid output hand is matched to a true hand by its image position (the output's
joints projected with the intrinsics it was placed with, against the true joints' pixels;
mean distance below half the true hand's size, best one-to-one assignment), so a hand with
the wrong side still counts for placement, and its side is scored separately. Per bin of
true wrist depth: detection rate (true hands matched), side correctness, wrist error (3D,
camera frame, mm: median, mean, 90th percentile), depth error of the wrist (% of the true
depth: median of the absolute value and of the signed value; negative = too close) and
wrist-relative MPJPE (mm).

The detector runs once per frame (:class:`MemoDetector` replays its answers in the other
settings), so the settings differ only in what the setting changes.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any, Callable, Sequence

import numpy as np

from ..hand_model.joints import SIDES
from .placement_frames import CameraSpec, EvalFrame, frame_plan, render_frame

SETTINGS: tuple[str, ...] = ("known", "assumed", "depth", "oracle")
DEFAULT_EDGES: tuple[float, ...] = (0.3, 0.45, 0.6, 0.8, 1.0, 1.2)


class MemoDetector:
    """Wraps a detector; identical calls on identical pixels return the first answer.

    ``detect`` and ``body_wrists`` are keyed by a hash of the image and the call's arguments;
    ``calls`` counts real detector runs only.
    """

    def __init__(self, detector: Any, max_items: int = 256):
        self.detector = detector
        self.max_items = int(max_items)
        self._memo: dict = {}

    @property
    def calls(self) -> int:
        return getattr(self.detector, "calls", 0)

    def _key(self, name: str, image: np.ndarray, kwargs: dict) -> tuple:
        digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest()
        items = tuple(sorted((k, tuple(np.ravel(v)) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()))
        return name, image.shape, digest, items

    def _memoised(self, name: str, image: np.ndarray, **kwargs: Any) -> Any:
        key = self._key(name, image, kwargs)
        if key not in self._memo:
            if len(self._memo) >= self.max_items:
                self._memo.clear()
            self._memo[key] = getattr(self.detector, name)(image, **kwargs)
        return self._memo[key]

    def detect(self, image: np.ndarray, **kwargs: Any) -> list:
        return self._memoised("detect", image, **kwargs)

    def body_wrists(self, image: np.ndarray, mirrored: bool = False) -> list:
        return self._memoised("body_wrists", image, mirrored=mirrored)

    def close(self) -> None:
        if hasattr(self.detector, "close"):
            self.detector.close()


@dataclass
class HandRecord:
    """One true hand in one frame and what the method made of it (NaN where not found)."""

    frame: int
    distance: float          # the frame's nominal distance (m)
    true_side: str
    true_z: float            # true wrist depth (m)
    found: bool = False
    side: str = ""           # the output's side
    wrist_err_mm: float = float("nan")
    depth_err_pct: float = float("nan")   # signed: 100 (z_out - z_true) / z_true
    mpjpe_mm: float = float("nan")        # wrist-relative
    confidence: float = float("nan")


@dataclass
class SettingResult:
    """All hand records of one setting, and counts of output hands matched to nothing."""

    setting: str
    hands: list = field(default_factory=list)
    false_positives: int = 0


def true_pixels(frame: EvalFrame) -> np.ndarray:
    """(2, 21, 2) true joints' pixels (NaN for an absent hand)."""
    j = frame.joints @ frame.K.T
    return j[..., :2] / j[..., 2:3]


def project_with(points: np.ndarray, intrinsics: Any) -> np.ndarray:
    """(N, 2) pixels of camera points (N, 3) with ``(fx, fy, cx, cy)`` of ``intrinsics``."""
    p = np.asarray(points, np.float64)
    return np.stack([intrinsics.fx * p[:, 0] / p[:, 2] + intrinsics.cx,
                     intrinsics.fy * p[:, 1] / p[:, 2] + intrinsics.cy], axis=1)


def match_outputs(out2d: Sequence[np.ndarray], true2d: Sequence[np.ndarray], max_cost: float = 0.5) -> dict:
    """One-to-one matching of output hands to true hands by image position.

    Args:
        out2d: per output hand, (21, 2) pixels; true2d: per true hand, (21, 2) pixels.
        max_cost: a pair needs mean joint distance < this x the true hand's size (px).
    Returns:
        {output index: true index} of the cheapest assignment among acceptable pairs.
    """
    def cost(a: np.ndarray, b: np.ndarray) -> float:
        size = max(float(np.ptp(b, axis=0).max()), 1.0)
        c = float(np.linalg.norm(a - b, axis=1).mean()) / size
        return c if c < max_cost else np.inf

    c = np.array([[cost(a, b) for b in true2d] for a in out2d]).reshape(len(out2d), len(true2d))
    best, best_key = {}, (1, 0.0)
    for outs in permutations(range(len(out2d)), min(len(out2d), len(true2d))):
        for truths in permutations(range(len(true2d)), len(outs)):
            pairs = {o: t for o, t in zip(outs, truths) if np.isfinite(c[o, t])}
            key = (-len(pairs), float(sum(c[o, t] for o, t in pairs.items())))
            if key < best_key:
                best, best_key = pairs, key
    return best


def place_translation(points: np.ndarray, pixels: np.ndarray, intrinsics: Any, iterations: int = 5) -> np.ndarray:
    """Translation that best puts rigid points on pixels (robust, linear pinhole equations).

    Args:
        points: (N, 3) the hand in the camera's orientation, any origin (m).
        pixels: (N, 2) where they are seen (px).
        intrinsics: ``fx, fy, cx, cy``.
    Returns:
        (3,) T such that ``points + T`` projects onto ``pixels``: least squares of
        ``fx (T_x + X_x) = (u - cx)(T_z + X_z)`` (and y), reweighted ``iterations`` times with
        Huber weights at 1.5 x the median pixel residual (at least 1 px).
    """
    x = np.asarray(points, np.float64)
    du = np.asarray(pixels, np.float64) - (intrinsics.cx, intrinsics.cy)
    n = len(x)
    a = np.zeros((2 * n, 3))
    a[0::2, 0], a[1::2, 1] = intrinsics.fx, intrinsics.fy
    a[0::2, 2], a[1::2, 2] = -du[:, 0], -du[:, 1]
    b = np.empty(2 * n)
    b[0::2] = du[:, 0] * x[:, 2] - intrinsics.fx * x[:, 0]
    b[1::2] = du[:, 1] * x[:, 2] - intrinsics.fy * x[:, 1]
    w = np.ones(n)
    for _ in range(iterations):
        ww = np.repeat(np.sqrt(w), 2)
        t = np.linalg.lstsq(a * ww[:, None], b * ww, rcond=None)[0]
        r = np.linalg.norm(project_with(x + t, intrinsics) - pixels, axis=1)
        s = max(1.5 * float(np.median(r)), 1.0)
        w = np.where(r < s, 1.0, s / np.maximum(r, 1e-12))
    return t


def oracle_records(frame: EvalFrame, landmarks2d: Sequence[np.ndarray], intrinsics: Any) -> list[HandRecord]:
    """Hand records of the ``oracle`` setting: each true hand matched to a detection (by image
    position) is the true 3D hand placed on that detection's pixels (:func:`place_translation`)."""
    truth = [k for k in range(2) if frame.present[k]]
    t2d = true_pixels(frame)
    match = match_outputs(list(landmarks2d), [t2d[k] for k in truth])
    records = []
    for t, k in enumerate(truth):
        gt = frame.joints[k]
        rec = HandRecord(frame=frame.index, distance=frame.distance, true_side=SIDES[k], true_z=float(gt[0, 2]))
        hit = [o for o, tt in match.items() if tt == t]
        if hit:
            wrist = place_translation(gt - gt[0], landmarks2d[hit[0]], intrinsics)
            rec.found, rec.side, rec.confidence = True, SIDES[k], 1.0
            rec.wrist_err_mm = 1000.0 * float(np.linalg.norm(wrist - gt[0]))
            rec.depth_err_pct = 100.0 * float((wrist[2] - gt[0, 2]) / gt[0, 2])
        records.append(rec)
    return records


def score_frame(frame: EvalFrame, placed: Any, valid: np.ndarray, confidence: np.ndarray,
                intrinsics: Any) -> tuple[list[HandRecord], int]:
    """Hand records of one frame's output (``PlacedHands``, valid (2,), confidence (2,)),
    and the number of valid outputs on no true hand."""
    truth = [k for k in range(2) if frame.present[k]]
    t2d = true_pixels(frame)
    outs = [i for i in range(2) if valid[i]]
    match = match_outputs([project_with(placed.joints[i], intrinsics) for i in outs], [t2d[k] for k in truth])
    records = []
    for t, k in enumerate(truth):
        gt = frame.joints[k]
        rec = HandRecord(frame=frame.index, distance=frame.distance, true_side=SIDES[k], true_z=float(gt[0, 2]))
        hit = [outs[o] for o, tt in match.items() if tt == t]
        if hit:
            i = hit[0]
            j = placed.joints[i]
            rec.found, rec.side, rec.confidence = True, SIDES[i], float(confidence[i])
            rec.wrist_err_mm = 1000.0 * float(np.linalg.norm(j[0] - gt[0]))
            rec.depth_err_pct = 100.0 * float((j[0, 2] - gt[0, 2]) / gt[0, 2])
            rec.mpjpe_mm = 1000.0 * float(np.linalg.norm((j - j[0]) - (gt - gt[0]), axis=1).mean())
        records.append(rec)
    return records, len(outs) - len(match)


def bin_summary(records: Sequence[HandRecord], edges: Sequence[float]) -> list[dict]:
    """Per bin of true wrist depth ``[lo, hi)`` (the last bin closed) and over all: counts,
    detection rate, side correctness, wrist error (median / mean / p90 mm), depth error
    (median |%|, median signed %) and MPJPE (median mm)."""
    rows = []
    e = list(edges)
    bins = [(lo, hi, f"{lo:.2f}-{hi:.2f}") for lo, hi in zip(e, e[1:])] + [(e[0], e[-1], "all")]
    for n, (lo, hi, name) in enumerate(bins):
        last = n >= len(e) - 2
        sel = [r for r in records if lo <= r.true_z < hi or (last and r.true_z == hi)]
        found = [r for r in sel if r.found]
        w = np.array([r.wrist_err_mm for r in found])
        d = np.array([r.depth_err_pct for r in found])
        m = np.array([r.mpjpe_mm for r in found])

        def stat(fn: Callable, x: np.ndarray) -> float:
            return float(fn(x)) if len(x) else float("nan")

        rows.append({"bin": name, "hands": len(sel), "found": len(found),
                     "detection_rate": len(found) / len(sel) if sel else float("nan"),
                     "side_correct": (sum(r.side == r.true_side for r in found) / len(found)) if found else float("nan"),
                     "wrist_median_mm": stat(np.median, w), "wrist_mean_mm": stat(np.mean, w),
                     "wrist_p90_mm": stat(lambda x: np.percentile(x, 90), w),
                     "depth_abs_median_pct": stat(np.median, np.abs(d)), "depth_signed_median_pct": stat(np.median, d),
                     "mpjpe_median_mm": stat(np.median, m)})
    return rows


def evaluate_placement(method: Callable, faces: dict | None = None, edges: Sequence[float] = DEFAULT_EDGES,
                       frames_per_bin: int = 8, single_per_bin: int = 4, seed: int = 0,
                       settings: Sequence[str] = SETTINGS, camera: CameraSpec = CameraSpec(),
                       min_confidence: float = 0.3, hfov_deg: float = 60.0, models: Sequence | None = None,
                       progress: Callable[[str], None] | None = None) -> dict:
    """Evaluate a method's 3D placement on rendered frames (module docstring).

    Args:
        method: ``method(rgb, intrinsics, t) -> (FrameResult, report)`` (``pipeline.methods``).
        faces: {side: (F, 3)} of the method's hand models (needed for ``depth``).
        edges: distance bin edges (m); frames are spread evenly over each bin.
        frames_per_bin, single_per_bin: two-hand and one-hand frames per bin.
        seed: frame seed (same seed, same pixels).
        settings: any of ``SETTINGS``.
        camera: the rendering camera (its intrinsics are the ``known`` ones).
        min_confidence: output hands below it are not valid (the node's ``min_confidence``).
        hfov_deg: field of view of the ``assumed`` intrinsics.
        models: (left, right) flat-mean hand models for rendering (loaded when None).
        progress: called with one line per frame.
    Returns:
        dict: ``settings`` {name: {"bins": bin_summary rows, "false_positives": n}},
        ``hands`` {name: [HandRecord as dict]}, ``frames``, ``camera``, ``seed``, ``edges``,
        ``seconds``.
    """
    from dataclasses import asdict

    from ..data.synthetic import load_models
    from ..pipeline.placement import Intrinsics, assumed_intrinsics
    from ..pipeline.postprocess import PostProcessor, PostConfig

    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        raise ValueError(f"unknown settings {bad}; known: {SETTINGS}")
    if "depth" in settings and faces is None:
        raise ValueError("the depth setting needs the hand models' faces")
    models = models if models is not None else load_models()
    w, h = camera.width, camera.height
    known = Intrinsics(camera.focal, camera.focal, w / 2.0, h / 2.0, w, h)
    intr = {"known": known, "depth": known, "oracle": known, "assumed": assumed_intrinsics(w, h, hfov_deg)}
    results = {s: SettingResult(s) for s in settings}
    plan = frame_plan(edges, frames_per_bin, single_per_bin)
    t0 = time.perf_counter()
    for n, (index, distance, hands) in enumerate(plan):
        frame = render_frame(index, distance, hands, seed=seed, camera=camera, models=models)
        cache: dict = {}
        for s in settings:
            base = "known" if s in ("depth", "oracle") else s
            if base not in cache:
                cache[base] = method(frame.rgb, intr[base], float(index))
            out, report = cache[base]
            if s == "oracle":
                if "landmarks2d" not in report:
                    raise ValueError("the oracle setting needs a method whose report has the detector's landmarks2d")
                results[s].hands += oracle_records(frame, report["landmarks2d"], known)
                continue
            valid = out.confidence >= min_confidence
            placed = out.placed
            if s == "depth" and valid.any():
                refiner = PostProcessor(PostConfig(smoothing=False), faces)
                placed = refiner(out, valid, float(index), known, frame.depth)[0].placed
            recs, fp = score_frame(frame, placed, valid, out.confidence, intr[s])
            results[s].hands += recs
            results[s].false_positives += fp
        if progress is not None:
            progress(f"frame {n + 1}/{len(plan)}: {hands} hand(s) at {distance:.2f} m")
    return {"settings": {s: {"bins": bin_summary(r.hands, edges), "false_positives": r.false_positives}
                         for s, r in results.items()},
            "hands": {s: [asdict(h) for h in r.hands] for s, r in results.items()},
            "frames": len(plan), "seed": int(seed), "edges": list(map(float, edges)),
            "camera": {"width": w, "height": h, "focal": camera.focal, "assumed_fx": intr["assumed"].fx},
            "seconds": time.perf_counter() - t0}


#: The keypoint-fit method as it was before issue 10: MediaPipe's world landmarks taken as
#: metric (the model's size followed them), MediaPipe's handedness label alone.
LEGACY_FIT = {"fit_world_scale": False, "sigma_size": 0.0}


def keypoint_fit_method(legacy: bool = False, mano_dir: str | None = None, label_weight: float = 0.5
                        ) -> tuple[Any, dict, MemoDetector]:
    """The node's default method (``pipeline.methods.KeypointFitMethod``) on a memoising
    MediaPipe detector: (method, {side: faces}, detector). ``legacy``: the fit and side
    decision as they were before issue 10 (:data:`LEGACY_FIT`, MediaPipe's labels)."""
    from ..detection import MediaPipeHands
    from ..fitting import FitConfig
    from ..hand_model import load_hand_model
    from ..pipeline.methods import KeypointFitMethod

    models = {s: load_hand_model(s, mano_dir) for s in SIDES}
    detector = MemoDetector(MediaPipeHands())
    config = FitConfig(**LEGACY_FIT) if legacy else FitConfig()
    method = KeypointFitMethod(models, detector, config=config, sides="label" if legacy else "geometry",
                               label_weight=label_weight)
    return method, {s: m.faces for s, m in models.items()}, detector


def format_table(result: dict) -> str:
    """Markdown table of :func:`evaluate_placement`'s per-bin summaries, one block per setting."""
    head = ("| setting | true wrist z (m) | hands | detected | side correct | wrist error median / mean / p90 (mm) "
            "| depth error median abs / signed (%) | MPJPE median (mm) |")
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s, res in result["settings"].items():
        for r in res["bins"]:
            lines.append(f"| {s} | {r['bin']} | {r['hands']} | {100 * r['detection_rate']:.0f}% | "
                         f"{100 * r['side_correct']:.0f}% | {r['wrist_median_mm']:.0f} / {r['wrist_mean_mm']:.0f} / "
                         f"{r['wrist_p90_mm']:.0f} | {r['depth_abs_median_pct']:.1f} / {r['depth_signed_median_pct']:+.1f} | "
                         f"{r['mpjpe_median_mm']:.0f} |")
    cam = result["camera"]
    lines.append(f"\n{result['frames']} frames, seed {result['seed']}, {cam['width']}x{cam['height']}, fx {cam['focal']:.0f} "
                 f"(assumed: {cam['assumed_fx']:.0f}); output hands on no true hand: "
                 + ", ".join(f"{s} {r['false_positives']}" for s, r in result["settings"].items())
                 + f"; {result['seconds']:.0f} s")
    return "\n".join(lines)

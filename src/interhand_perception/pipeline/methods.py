"""The two reconstruction methods behind one call (ROS-free): DIR, and keypoint fitting.

Both take an RGB frame, its intrinsics and its time, and return a
:class:`~interhand_perception.pipeline.frame.FrameResult` (hands in metres in the camera
frame, confidence, pose and shape per hand) plus a small report; the node, ``interhand infer``
and the tests call them alike.

* :class:`DIRMethod`: DIR on a square crop. The crop is fixed (``center``/``full``/``roi``) or
  found by MediaPipe (``detect``: both hands, widened around a lone hand, carried over a few
  missed frames by :class:`~interhand_perception.detection.CropTracker`, re-centred on DIR's
  own two-hand prediction). With a detector, the detector's sides and DIR's left/right
  assignment are reconciled (``detection.handedness``), and a DIR hand the detector did not
  see must be confidently supported by DIR's own segmentation to count. Two hands stacked in
  one place (their joint boxes overlap almost entirely) lose confidence (:mod:`.stacking`).
* :class:`KeypointFitMethod`: MediaPipe's landmarks, and the hand model fitted to them
  (``fitting``): no DIR weights needed. What makes the node useful on real cameras until DIR
  weights trained on real data exist. A hand the detector did not find is not valid.

Mirrored (selfie) cameras are handled before either method: :func:`unmirror` flips the image
and the principal point back, so that outputs are in the true, right-handed optical frame and
sides are always the person's own.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..dir_net.checkpoint import file_sha256
from ..dir_net.crop import crop_to_frame
from ..hand_model.joints import SIDES
from .frame import FrameProcessor, FrameResult
from .placement import Intrinsics, project_points
from .stacking import stacked_confidence

#: A DIR hand that the detector did not see is valid only above this confidence. The demo
#: weights' segmentation-based confidence is 0.7-0.9 even for hands that are not there (single-
#: hand photos), so the default demands near-certainty: a hand is not invented.
UNSEEN_HAND_CONFIDENCE = 0.95


def unmirror(rgb: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, Intrinsics]:
    """Undo a horizontal mirror: (H, W, 3) image flipped back, cx -> W - 1 - cx (ROS pixel
    centres at integers). The 3D results are then in the camera's true optical frame."""
    w = rgb.shape[1]
    return np.ascontiguousarray(rgb[:, ::-1]), replace(intrinsics, cx=(w - 1) - intrinsics.cx)


def _empty_frame(num_vertices: int, box=None) -> FrameResult:
    from .placement import PlacedHands

    rot = np.broadcast_to(np.eye(3), (2, 3, 3)).copy()
    placed = PlacedHands(joints=np.zeros((2, 21, 3)), vertices=np.zeros((2, num_vertices, 3), np.float32),
                         wrist=np.zeros((2, 3)), wrist_rotation=rot,
                         wrist_quaternion=np.tile([0.0, 0.0, 0.0, 1.0], (2, 1)), right_minus_left=np.zeros(3),
                         depth_from="none")
    return FrameResult(placed=placed, result=None, box=box, confidence=np.zeros(2), pose=np.zeros((2, 48)),
                       betas=np.zeros((2, 10)))


def _swap_sides(frame: FrameResult) -> FrameResult:
    """Exchange the left and right slots (all per-hand arrays)."""
    p = frame.placed
    placed = replace(p, joints=p.joints[::-1].copy(), vertices=p.vertices[::-1].copy(), wrist=p.wrist[::-1].copy(),
                     wrist_rotation=p.wrist_rotation[::-1].copy(), wrist_quaternion=p.wrist_quaternion[::-1].copy(),
                     right_minus_left=-p.right_minus_left)
    return replace(frame, placed=placed, confidence=frame.confidence[::-1].copy(), pose=frame.pose[::-1].copy(),
                   betas=frame.betas[::-1].copy())


class DIRMethod:
    """DIR on a fixed or detected crop.

    Args:
        reconstructor: a ``HandReconstructor``.
        crop_mode: "center", "full", "roi" or "detect".
        crop_roi: (cx, cy, side) for "roi".
        placement: "pair" or "per_hand".
        detector: a ``detection.MediaPipeHands`` (required for "detect").
        carry_frames: missed detections bridged by the last crop.
        unseen_min_confidence: a DIR hand the detector did not find counts only above this.
        search: ``detection.SearchConfig`` or None for the defaults.
    """

    def __init__(self, reconstructor, crop_mode: str = "center", crop_roi=None, placement: str = "pair",
                 detector=None, carry_frames: int = 5, search=None,
                 unseen_min_confidence: float = UNSEEN_HAND_CONFIDENCE):
        from ..detection import CropTracker, SearchConfig

        if crop_mode == "detect" and detector is None:
            raise ValueError("crop_mode 'detect' needs a detector (detection.MediaPipeHands)")
        self.reconstructor = reconstructor
        self.processor = FrameProcessor(reconstructor, "center" if crop_mode == "detect" else crop_mode,
                                        crop_roi, placement)
        self.crop_mode = crop_mode
        self.detector = detector
        self.tracker = CropTracker(carry_frames=carry_frames)
        self.search = search or SearchConfig()
        self.unseen_min_confidence = float(unseen_min_confidence)
        self.num_vertices = int(reconstructor.hand_models["left"].v_template.shape[0])

    def __call__(self, rgb: np.ndarray, intrinsics: Intrinsics, t: float) -> tuple[FrameResult, dict]:
        """One frame -> (FrameResult, report). report: crop box, hands found, sides decision."""
        if self.crop_mode != "detect":
            frame = self.processor(rgb, intrinsics)
            report = {"box": frame.box, "found": None}
            return self._unstack(frame, intrinsics, report), report
        from ..detection import find_two_hands, reconcile_sides, recentre_box

        t0 = time.perf_counter()
        found = find_two_hands(self.detector, rgb, mirrored=False, config=self.search)
        box = self.tracker.update(found, stamp=t)
        report = {"box": box, "found": found.found, "carried": found.box is None and box is not None,
                  "reason": found.reason, "detect_ms": (time.perf_counter() - t0) * 1e3,
                  "detections": detections_report(found.hands)}
        if box is None:
            return _empty_frame(self.num_vertices), report
        frame = self.processor.run_on_box(rgb, intrinsics, box)
        frame.timings["detect"] = report["detect_ms"] / 1e3
        dir2d = list(self._joints2d(frame))
        seen = set()
        if found.hands:
            decision = reconcile_sides(found.hands, dir2d[0], dir2d[1], mirrored=False)
            report["sides"] = decision.reason
            if decision.swapped:
                frame = _swap_sides(frame)
                dir2d = dir2d[::-1]
            seen = {h.side for h in found.hands}
        conf = frame.confidence.copy()
        for i, side in enumerate(SIDES):
            if side not in seen and conf[i] < self.unseen_min_confidence:
                conf[i] = 0.0  # not seen by the detector and weakly supported: not invented
        frame = self._unstack(replace(frame, confidence=conf), intrinsics, report)
        if (frame.confidence > 0).all():
            self.tracker.box = recentre_box(box, dir2d[0], dir2d[1], valid=(True, True))
        return frame, report

    def reset(self) -> None:
        """Forget the carried crop (a new stream, or unrelated images)."""
        self.tracker.reset()

    def _joints2d(self, frame: FrameResult) -> np.ndarray:
        """(2, 21, 2) DIR's own image joints (left, right slots of the network), frame pixels."""
        size = self.reconstructor.img_size
        return np.stack([crop_to_frame(frame.result.hand(s).joints2d, frame.box, size) for s in SIDES])

    @staticmethod
    def _unstack(frame: FrameResult, intrinsics: Intrinsics, report: dict) -> FrameResult:
        """Both confidences lowered when the two placed hands, projected into the image, are
        stacked in one place (:func:`~interhand_perception.pipeline.stacking.stacked_confidence`);
        ``report["stacking"]``."""
        joints2d = np.stack([project_points(j, intrinsics) for j in frame.placed.joints])  # (2, 21, 2)
        stack = stacked_confidence(frame.confidence, joints2d)
        report["stacking"] = stack.report()
        return replace(frame, confidence=stack.confidence)


def detections_report(hands, sides=None) -> list[dict]:
    """JSON-friendly detector hands: ``[{"side", "score", "box": [x0, y0, x1, y1] pixels}]``;
    ``sides``: the sides finally given to them (default: the detector's)."""
    sides = sides or [h.side for h in hands]
    return [{"side": s, "score": round(float(h.score), 4), "box": np.round(np.asarray(h.box, float), 1).tolist()}
            for h, s in zip(hands, sides)]


class KeypointFitMethod:
    """MediaPipe landmarks + hand-model fitting.

    Args:
        hand_models: {side: HandModel}.
        detector: a ``detection.MediaPipeHands``.
        search: ``detection.SearchConfig`` or None (the full search; ``use_pose``/``tiles`` cost time).
        iterations: Levenberg-Marquardt iterations of the fit (None: the fit's default).
        config: ``fitting.FitConfig`` (None: the defaults).
        sides: "geometry" (default): both hand models are fitted to every hand and the better
            fit decides, MediaPipe's label only breaks near-ties (``fitting.sides``); "label":
            MediaPipe's label alone, one fit per hand (the former behaviour).
        label_weight: weight of MediaPipe's label in the "geometry" decision.
    """

    def __init__(self, hand_models: dict, detector, search=None, iterations: int | None = None, config=None,
                 sides: str = "geometry", label_weight: float = 0.5):
        from ..detection import SearchConfig
        from ..fitting import FitConfig

        if sides not in ("geometry", "label"):
            raise ValueError(f"sides must be 'geometry' or 'label', got {sides!r}")
        self.hand_models = hand_models
        self.detector = detector
        self.search = search or SearchConfig()
        self.config = config or FitConfig()
        if iterations is not None:
            self.config = replace(self.config, iterations=int(iterations))
        self.sides = sides
        self.label_weight = float(label_weight)
        self.num_vertices = int(hand_models["left"].v_template.shape[0])

    def _fit(self, hands: list, intrinsics: Intrinsics, pair: bool) -> tuple[dict, list, list]:
        """{side: FitResult} of the detections, one line per hand on its side, and the side
        given to each hand (in ``hands`` order)."""
        from ..fitting import fit_hands
        from ..fitting.sides import decide_sides

        if self.sides == "geometry":
            decisions = decide_sides(hands, intrinsics, self.hand_models, pair, self.config, self.label_weight)
            fits = {}
            for d in sorted(decisions, key=lambda d: -abs(d.log_odds)):   # one hand per side
                fits.setdefault(d.side, d.fits[d.side])
            return (fits, [f"{d.side} (geometry {d.geometry:+.2f}, label {d.label:+.2f})" for d in decisions],
                    [d.side for d in decisions])
        dets = {}
        for h in hands:  # one per side (a same-side conflict keeps the better score)
            if h.side not in dets or h.score > dets[h.side].score:
                dets[h.side] = h
        return (fit_hands(dets, intrinsics, self.hand_models, config=self.config), [f"{h.side} (label)" for h in hands],
                [h.side for h in hands])

    def __call__(self, rgb: np.ndarray, intrinsics: Intrinsics, t: float) -> tuple[FrameResult, dict]:
        from ..detection import find_two_hands
        from .placement import to_placed_hands

        t0 = time.perf_counter()
        found = find_two_hands(self.detector, rgb, mirrored=False, config=self.search)
        t1 = time.perf_counter()
        hands = [h for h in found.hands if np.isfinite(h.landmarks2d).all() and np.isfinite(h.world).all()]
        report = {"box": found.box, "found": len(hands), "reason": found.reason, "detect_ms": (t1 - t0) * 1e3,
                  "landmarks2d": [h.landmarks2d for h in hands], "detections": detections_report(hands)}
        if not hands:
            return _empty_frame(self.num_vertices, found.box), report
        fits, why, sides = self._fit(hands, intrinsics, pair=len(hands) == 2)
        report["sides"] = "; ".join(why)
        report["detections"] = detections_report(hands, sides)
        placed = to_placed_hands(fits, depth_from="assumed" if intrinsics.assumed else "camera_info")
        conf = np.array([fits[s].confidence if s in fits else 0.0 for s in SIDES], dtype=np.float64)
        pose = np.zeros((2, 48))
        betas = np.zeros((2, 10))
        for i, s in enumerate(SIDES):
            if s in fits:
                pose[i] = np.concatenate([fits[s].global_orient, fits[s].hand_pose])
                betas[i, :len(fits[s].betas)] = fits[s].betas
        t2 = time.perf_counter()
        report["fit_ms"] = (t2 - t1) * 1e3
        frame = FrameResult(placed=placed, result=fits, box=found.box, confidence=conf, pose=pose, betas=betas,
                            timings={"detect": t1 - t0, "fit": t2 - t1})
        return frame, report


# ----------------------------------------------------------------------------- construction
class MethodUnavailable(RuntimeError):
    """A method cannot be built: missing weights, hand-model files or detector."""


def file_id(path: str) -> str:
    """``<stem>-<first 12 hex of sha256>``: identifies the exact checkpoint in messages."""
    return f"{Path(path).stem}-{file_sha256(path)[:12]}"


def load_network(p):
    """The network backend (``network.backends``) of the parameters, or
    :class:`MethodUnavailable` saying why not. Returns (the backend, its name)."""
    from ..network.backends import BackendUnavailable
    from ..network.factory import make_backend, resolve_backend

    name = resolve_backend(p.backend, p.device, p.precision)
    options = {"cuda_graph": None if p.cuda_graph else False} if name == "pytorch" else {}  # None: on CUDA only
    try:
        return make_backend(name, p.checkpoint, device=p.device, precision=p.precision,
                            threads=p.cpu_threads or None, mano_dir=p.mano_dir, **options), name
    except (FileNotFoundError, ValueError, KeyError, OSError, BackendUnavailable) as e:
        raise MethodUnavailable(f"cannot load the reconstruction model ({name}): {e}") from e


def build_method(p) -> tuple:
    """(method, hand_models, model_id, what runs) for validated node parameters (``pipeline.config``);
    what runs is the backend's ``describe()``, e.g. "pytorch on cuda:0 (fp16), CUDA graphs for
    batch sizes [1]", or "cpu" for the keypoint fit.

    Raises:
        MethodUnavailable: the weights, hand model or detector cannot be loaded (says why).
    """
    detector = None
    if p.method == "keypoint_fit" or p.crop_mode == "detect":
        from ..detection import DetectorUnavailable, MediaPipeHands

        detector = MediaPipeHands()
        try:
            detector.detect(np.zeros((64, 64, 3), np.uint8))  # loads MediaPipe and its models now
        except DetectorUnavailable as e:
            raise MethodUnavailable(f"the hand detector is not available: {e}") from e
    if p.method == "dir":
        rec, _ = load_network(p)
        method = DIRMethod(rec, p.crop_mode, p.crop_roi, p.placement, detector=detector,
                           carry_frames=p.carry_frames, unseen_min_confidence=p.unseen_hand_min_confidence)
        return method, rec.hand_models, file_id(p.checkpoint), rec.describe()  # runtime, device, precision, graphs
    from ..hand_model import load_hand_model

    try:
        models = {s: load_hand_model(s, p.mano_dir) for s in ("left", "right")}
    except (FileNotFoundError, ValueError, KeyError, OSError) as e:
        raise MethodUnavailable(f"cannot load the hand model: {e}") from e
    import mediapipe

    return KeypointFitMethod(models, detector), models, f"mediapipe-{mediapipe.__version__}+keypoint_fit", "cpu"

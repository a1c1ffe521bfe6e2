"""MediaPipe Hands as a hand detector for full camera frames (lazy import, any image size).

Why this module exists: DIR has no detector; it needs a square crop in which both hands fill
most of the image. MediaPipe Hands (``mediapipe==0.10.14``, ``mp.solutions.hands``, the last
release that ships its model files) finds hands in a full frame and gives 21 landmarks per hand
in exactly our joint order (``hand_model.joints.JOINT_NAMES``: wrist, thumb CMC..tip, index,
middle, ring, little MCP..tip), so its points feed ``dir_net.crop.square_box`` directly.

Facts this wrapper encodes (checked with 0.10.14 on the real photos, see ``docs/detection.md``):

* **Handedness.** MediaPipe labels hands as if the image were a mirror (a selfie camera). For a
  normal, non-mirrored camera its "Left" is the person's RIGHT hand. Our messages carry the
  person's anatomical side, so :func:`person_side` converts the label with the camera's
  ``mirrored`` flag and whether we flipped the image ourselves before detection.
* **Coordinates.** Landmarks come normalised to the processed image ([0, 1] over width and
  height); we map them back to full-frame pixels (pixel i covers [i, i + 1), as in
  ``dir_net.crop``). The image (or a region of it) is resized so that its longer side is
  ``work_size`` (640 px by default) before detection: the palm detector sees a 192 x 192
  letterboxed copy anyway, big frames only cost time, and small regions are upscaled (zoom).
* **World landmarks** are metric (metres) and hand-centred, passed on as given. Measured on
  the real photos: the origin is at the middle-finger MCP (joint 9) within 4-7 mm, not at the
  wrist; x and y follow the image's x (right) and y (down) (correlation with the 2D landmarks
  0.86-1.0); z runs along the viewing direction (MediaPipe: smaller = closer to the camera).
  Wrist to middle MCP measures 0.08-0.10 m (an adult hand model's scale). For a pass on a
  flipped image we negate x so that the hand is the unflipped one.
* **Score.** The solutions API exposes the handedness classifier's score per hand (the palm
  detection and landmark presence scores are only used internally against the thresholds), so
  ``score`` is that classification score in [0.5, 1].
* **Pose.** The same wheel ships MediaPipe Pose; :meth:`MediaPipeHands.body_wrists` reads the
  body model's wrists (landmarks 15/16, named for a non-mirrored image), a coarse hint where a
  hand is that the palm detector missed.

Install (deliberately without its declared deps jax, jaxlib, sounddevice and
opencv-contrib-python, which clashes with our opencv-python-headless):
``pip install --no-deps mediapipe==0.10.14 absl-py attrs flatbuffers "protobuf>=4.25.3,<5"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from ..hand_model.joints import SIDES

INSTALL_HINT = ('pip install --no-deps mediapipe==0.10.14 absl-py attrs flatbuffers '
                '"protobuf>=4.25.3,<5"')


class DetectorUnavailable(ImportError):
    """MediaPipe (or one of its runtime dependencies) is not installed."""


@dataclass(frozen=True, eq=False)
class HandDetection:
    """One detected hand in full-frame pixels.

    Attributes:
        side: "left" or "right", the PERSON's anatomical side (see :func:`person_side`).
        score: handedness classification score in [0, 1].
        landmarks2d: (21, 2) float64 full-frame pixels, ``JOINT_NAMES`` order.
        world: (21, 3) float64 metres, MediaPipe world landmarks as given (hand-centred).
        box: (4,) float64 ``x0, y0, x1, y1`` pixels, the landmarks' bounding box.
        source: which detection pass found it (e.g. "full", "flip", "zoom").
        side_votes: (2,) float64 summed handedness evidence for (left, right) over the passes
            that saw this hand (merging keeps the evidence; ``side`` is its argmax).
    """

    side: str
    score: float
    landmarks2d: np.ndarray
    world: np.ndarray
    box: np.ndarray
    source: str = "full"
    side_votes: np.ndarray = field(default_factory=lambda: np.zeros(2))

    @property
    def size(self) -> float:
        """Hand size in pixels: the larger side of ``box``."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def centre(self) -> np.ndarray:
        """(2,) centre of ``box`` in pixels."""
        return np.array([(self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0])


def opposite(side: str) -> str:
    """The other side: "left" <-> "right"."""
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return "right" if side == "left" else "left"


def person_side(label: str, mirrored: bool, flipped: bool = False) -> str:
    """The person's anatomical side from a MediaPipe handedness label.

    MediaPipe assumes a mirrored (selfie) image. A mirrored camera image, or a normal image we
    flipped ourselves (but not both: two flips cancel), is exactly that assumption, so the
    label is the person's side; otherwise it is the opposite side.

    Args:
        label: "Left" or "Right" (case-insensitive).
        mirrored: the camera image is a mirror image (selfie camera).
        flipped: we flipped the image horizontally before detection.
    """
    side = label.strip().lower()
    if side not in SIDES:
        raise ValueError(f"MediaPipe handedness label must be Left/Right, got {label!r}")
    return side if (mirrored != flipped) else opposite(side)


def landmarks_box(points2d: np.ndarray) -> np.ndarray:
    """(4,) ``x0, y0, x1, y1`` bounding box of (N, 2) points."""
    p = np.asarray(points2d, dtype=np.float64).reshape(-1, 2)
    return np.concatenate([p.min(axis=0), p.max(axis=0)])


def region_geometry(region: Sequence[float] | None, width: int, height: int,
                    work_size: int) -> tuple[np.ndarray, float]:
    """Integer pixel window of a region clipped to the image, and the resize factor.

    Args:
        region: ``x0, y0, x1, y1`` pixels (may reach outside the image) or None = whole image.
        width, height: full image size.
        work_size: the longer side of the window after resizing.
    Returns:
        ``((4,) int window x0, y0, x1, y1, scale)``; window pixels * scale = working pixels.
    """
    if region is None:
        win = np.array([0, 0, width, height])
    else:
        r = np.asarray(region, dtype=np.float64).reshape(4)
        win = np.array([max(0, int(np.floor(r[0]))), max(0, int(np.floor(r[1]))),
                        min(width, int(np.ceil(r[2]))), min(height, int(np.ceil(r[3])))])
    if win[2] - win[0] < 2 or win[3] - win[1] < 2:
        raise ValueError(f"detection region {region} has no area inside the {width}x{height} image")
    scale = work_size / float(max(win[2] - win[0], win[3] - win[1]))
    return win, scale


def window_to_frame(norm_xy: np.ndarray, window: np.ndarray, flipped: bool) -> np.ndarray:
    """Normalised landmark coordinates of a (possibly flipped) window -> full-frame pixels.

    Args:
        norm_xy: (N, 2) coordinates in [0, 1] over the processed window.
        window: (4,) ``x0, y0, x1, y1`` of the window in full-frame pixels.
        flipped: the window was flipped horizontally before detection.
    Returns:
        (N, 2) float64 pixels.
    """
    xy = np.asarray(norm_xy, dtype=np.float64).copy()
    if flipped:
        xy[:, 0] = 1.0 - xy[:, 0]
    w, h = float(window[2] - window[0]), float(window[3] - window[1])
    return np.stack([window[0] + xy[:, 0] * w, window[1] + xy[:, 1] * h], axis=1)


@dataclass(frozen=True, eq=False)
class BodyWrist:
    """A wrist estimated by MediaPipe Pose (the body model), in full-frame pixels.

    Pose locates an arm's wrist from the whole body even where the palm detector sees no hand
    (occluded or cut palms), but it is coarse: only a hint for where a missed hand is.

    Attributes:
        side: "left"/"right", the person's side.
        wrist: (2,) pixels.
        index: (2,) pixels of Pose's index-finger point (about the knuckles).
        visibility: Pose's visibility estimate in [0, 1].
    """

    side: str
    wrist: np.ndarray
    index: np.ndarray
    visibility: float


#: MediaPipe Pose landmark indices (wrist, index) per side, named for a non-mirrored image.
POSE_WRISTS = {"left": (15, 19), "right": (16, 20)}


def _import_solution(name: str) -> Any:
    """``mediapipe.solutions.<name>``, or DetectorUnavailable naming the install command."""
    try:
        import mediapipe as mp  # noqa: PLC0415 (lazy on purpose: optional, slow import)
        return getattr(mp.solutions, name)
    except (ImportError, AttributeError) as exc:
        raise DetectorUnavailable(
            f"the hand detector needs MediaPipe ({exc}); install it with: {INSTALL_HINT}") from exc


class MediaPipeHands:
    """Hand detector on RGB uint8 images of any size.

    One MediaPipe graph is built per detection threshold on first use (lazily; thresholds are
    fixed at graph construction) and kept by this object; call :meth:`close` (or use it as a
    context manager) to release them.

    Args:
        max_hands: most hands per pass.
        min_confidence: palm-detection threshold of :meth:`detect` unless given per call.
        work_size: longer side (pixels) the image or region is resized to before detection.
        model_complexity: 0 (lite) or 1 (full) landmark model.
    """

    def __init__(self, max_hands: int = 2, min_confidence: float = 0.3, work_size: int = 640,
                 model_complexity: int = 1):
        self.max_hands = int(max_hands)
        self.min_confidence = float(min_confidence)
        self.work_size = int(work_size)
        self.model_complexity = int(model_complexity)
        self._graphs: dict[tuple[float, int], Any] = {}
        self._pose: Any = None
        self.calls = 0  # number of MediaPipe passes run (for reports and tests)

    def _graph(self, confidence: float, max_hands: int) -> Any:
        key = (round(float(confidence), 3), int(max_hands))
        if key not in self._graphs:
            hands = _import_solution("hands")
            self._graphs[key] = hands.Hands(static_image_mode=True, max_num_hands=key[1],
                                            model_complexity=self.model_complexity,
                                            min_detection_confidence=key[0],
                                            min_tracking_confidence=0.5)
        return self._graphs[key]

    def detect(self, rgb: np.ndarray, mirrored: bool = False, region: Sequence[float] | None = None,
               flip: bool = False, confidence: float | None = None, max_hands: int | None = None,
               work_size: int | None = None, source: str = "full") -> list[HandDetection]:
        """Detect hands in the image, or in a region of it.

        Args:
            rgb: (H, W, 3) uint8 RGB image.
            mirrored: the camera image is a mirror image (selfie camera).
            region: ``x0, y0, x1, y1`` pixels to detect in (clipped to the image); None = all.
            flip: flip the window horizontally before detection (a second opinion: the
                detector is not mirror-symmetric).
            confidence: palm-detection threshold (default ``min_confidence``).
            max_hands: most hands (default ``max_hands``).
            work_size: longer side the window is resized to (default ``work_size``).
            source: label stored in the detections.
        Returns:
            detections in full-frame pixels, in MediaPipe's order.
        """
        img = np.asarray(rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        win, scale = region_geometry(region, w, h, int(work_size or self.work_size))
        patch = img[win[1]:win[3], win[0]:win[2]]
        size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        patch = cv2.resize(patch, size, interpolation=interp)
        if flip:
            patch = patch[:, ::-1]
        graph = self._graph(self.min_confidence if confidence is None else confidence,
                            self.max_hands if max_hands is None else max_hands)
        result = graph.process(np.ascontiguousarray(patch))
        self.calls += 1
        return parse_result(result, win, flip, mirrored, source)

    def body_wrists(self, rgb: np.ndarray, mirrored: bool = False) -> list[BodyWrist]:
        """Both wrists from MediaPipe Pose (plain and flipped pass; per side the more visible).

        Args:
            rgb: (H, W, 3) uint8 RGB image.
            mirrored: the camera image is a mirror image.
        Returns:
            0-2 :class:`BodyWrist` (none when Pose finds no person).
        """
        if self._pose is None:
            self._pose = _import_solution("pose").Pose(static_image_mode=True, model_complexity=1,
                                                       min_detection_confidence=0.3)
        h, w = rgb.shape[:2]
        win, scale = region_geometry(None, w, h, self.work_size)
        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        best: dict[str, BodyWrist] = {}
        for flip in (False, True):
            res = self._pose.process(np.ascontiguousarray(small[:, ::-1] if flip else small))
            self.calls += 1
            if res.pose_landmarks is None:
                continue
            lm = res.pose_landmarks.landmark
            for name, (iw, ii) in POSE_WRISTS.items():
                side = name if mirrored == flip else opposite(name)
                pts = window_to_frame(np.array([[lm[iw].x, lm[iw].y], [lm[ii].x, lm[ii].y]]), win, flip)
                cand = BodyWrist(side, pts[0], pts[1], float(lm[iw].visibility))
                if side not in best or cand.visibility > best[side].visibility:
                    best[side] = cand
        return [best[s] for s in SIDES if s in best]

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        for graph in self._graphs.values():
            graph.close()
        self._graphs.clear()
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def __enter__(self) -> "MediaPipeHands":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_result(result: Any, window: np.ndarray, flipped: bool, mirrored: bool,
                 source: str) -> list[HandDetection]:
    """MediaPipe solution output -> :class:`HandDetection` list in full-frame pixels.

    Args:
        result: the object ``Hands.process`` returns (``multi_hand_landmarks``,
            ``multi_hand_world_landmarks``, ``multi_handedness``).
        window: (4,) the processed window in full-frame pixels.
        flipped: the window was flipped before detection.
        mirrored: the camera image is a mirror image.
        source: label stored in the detections.
    """
    lms = result.multi_hand_landmarks or []
    worlds = result.multi_hand_world_landmarks or [None] * len(lms)
    handed = result.multi_handedness or []
    out = []
    for lm, wl, hd in zip(lms, worlds, handed):
        norm = np.array([[p.x, p.y] for p in lm.landmark], dtype=np.float64)
        pts = window_to_frame(norm, window, flipped)
        world = (np.array([[p.x, p.y, p.z] for p in wl.landmark], dtype=np.float64)
                 if wl is not None else np.full((21, 3), np.nan))
        if flipped:
            world[:, 0] = -world[:, 0]  # back to the unflipped image's x axis
        cls = hd.classification[0]
        side = person_side(cls.label, mirrored, flipped)
        votes = np.zeros(2)
        votes[SIDES.index(side)] = float(cls.score)
        votes[1 - SIDES.index(side)] = 1.0 - float(cls.score)
        out.append(HandDetection(side=side, score=float(cls.score), landmarks2d=pts, world=world,
                                 box=landmarks_box(pts), source=source, side_votes=votes))
    return out

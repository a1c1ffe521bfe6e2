"""camera_info -> the intrinsics and the undistortion of each image (ROS-free).

A ``sensor_msgs/CameraInfo`` describes the camera at one resolution. The image it comes with
may not match it, and the ways that happens decide what is right:

* **binning and ROI** (REP 104): the image is the sensor's region ``roi`` read out with
  ``binning_x/y``; K refers to the full-resolution sensor, so ``fx' = fx / binning_x`` and
  ``cx' = (cx - roi.x_offset) / binning_x`` (as ``image_geometry`` does);
* **a resized stream** (same aspect ratio): every pixel quantity scales by one factor; done, and
  said once;
* **a different aspect ratio** (640x480 images with a 1280x720 camera_info): no single scale
  is right, the camera_info belongs to another stream or mode. It is refused for those images:
  the node uses its assumed field of view, as without camera_info, and says why.

Lens distortion (``D`` not all zero) is handled per ``distortion`` mode:

* ``undistort`` (default): the image is remapped to the ideal pinhole image of the same K
  before anything else runs (``cv2.remap`` with maps built once per camera; plumb_bob and
  rational_polynomial through ``cv2.initUndistortRectifyMap``, equidistant through
  ``cv2.fisheye``). Everything downstream (detector, network, placement, depth lookup) then
  sees straight lines. Cost: one bilinear remap per frame (``undistort_ms`` in /diagnostics;
  docs/ros_node.md has the measured figures).
* ``rectified``: the image is already rectified (``image_proc``'s ``image_rect`` comes with
  the raw camera's camera_info): intrinsics from the projection matrix P, D not applied.
* ``ignore``: K as it is and D not applied, with one warning when D is not zero.

An unknown distortion model is not applied, with a warning. A camera_info whose frame_id
differs from the image's is used, with a warning (the hands are published in the image's frame).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .decode import InputError
from .placement import Intrinsics, assumed_intrinsics, intrinsics_from_camera_info

DISTORTION_MODES: tuple[str, ...] = ("undistort", "rectified", "ignore")
PINHOLE_MODELS = ("plumb_bob", "rational_polynomial")
FISHEYE_MODELS = ("equidistant", "fisheye")

#: Two axes scale "equally" when their factors differ by at most this fraction (pixel rounding
#: of a resized image).
SCALE_TOLERANCE = 0.01


@dataclass(frozen=True)
class CameraInfoFields:
    """The fields of a ``sensor_msgs/CameraInfo`` this module uses (plain Python values).

    Attributes:
        k: 9 values, row-major K. p: 12 values, row-major P (zeros when unset).
        d: distortion coefficients. distortion_model: e.g. "plumb_bob".
        width, height: the calibrated resolution (0 = unset).
        binning_x, binning_y: 0 or 1 = no binning.
        roi: (x_offset, y_offset, width, height); width or height 0 = the full image.
        frame_id: header.frame_id.
    """

    k: tuple
    d: tuple = ()
    distortion_model: str = ""
    p: tuple = ()
    width: int = 0
    height: int = 0
    binning_x: int = 0
    binning_y: int = 0
    roi: tuple = (0, 0, 0, 0)
    frame_id: str = ""

    @classmethod
    def from_msg(cls, msg) -> "CameraInfoFields":
        """From a ``sensor_msgs/CameraInfo`` (or anything with its attributes)."""
        roi = msg.roi
        return cls(k=tuple(float(v) for v in msg.k), d=tuple(float(v) for v in msg.d),
                   distortion_model=str(msg.distortion_model), p=tuple(float(v) for v in msg.p),
                   width=int(msg.width), height=int(msg.height), binning_x=int(msg.binning_x),
                   binning_y=int(msg.binning_y),
                   roi=(int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)),
                   frame_id=str(msg.header.frame_id))


@dataclass(frozen=True)
class CameraFit:
    """What one camera_info means for images of one size.

    Attributes:
        intrinsics: of the (undistorted) image, or None when the camera_info was refused for
            this image size (use assumed intrinsics).
        distortion: (N,) coefficients to undistort the image with, or None (nothing to do).
        fisheye: whether ``distortion`` is the equidistant (fisheye) model.
        summary: one line for /diagnostics ("camera_info", "camera_info scaled by 0.5", ...).
        notes: ((kind, message), ...) to warn about (once each).
        level: 0 OK, 1 WARN (something the user should fix).
    """

    intrinsics: Intrinsics | None
    distortion: np.ndarray | None = None
    fisheye: bool = False
    summary: str = "camera_info"
    notes: tuple = field(default_factory=tuple)
    level: int = 0


def _k_from_p(p: tuple) -> list[float] | None:
    """K (9 values) from P's left 3x3, or None when P is unset or not a projection."""
    if len(p) != 12:
        return None
    m = np.asarray(p, dtype=np.float64).reshape(3, 4)
    if not np.isfinite(m).all() or m[0, 0] <= 0 or m[1, 1] <= 0:
        return None
    return m[:, :3].reshape(-1).tolist()


def fit_camera_info(info: CameraInfoFields, image_width: int, image_height: int,
                    image_frame: str = "", distortion_mode: str = "undistort") -> CameraFit:
    """The intrinsics (and undistortion) of a ``image_width x image_height`` image from ``info``.

    Raises:
        InputError: kind "intrinsics" when K itself is unusable (NaN, zeros, wrong length).
        ValueError: an unknown ``distortion_mode``.
    """
    if distortion_mode not in DISTORTION_MODES:
        raise ValueError(f"distortion_mode must be one of {DISTORTION_MODES}, got {distortion_mode!r}")
    notes: list[tuple[str, str]] = []
    level = 0
    k = list(info.k)
    if distortion_mode == "rectified":
        from_p = _k_from_p(info.p)
        if from_p is None:
            notes.append(("camera_info_p", "distortion: rectified, but camera_info's P is unset or invalid: "
                                           "using K"))
            level = 1
        else:
            k = from_p
    base = intrinsics_from_camera_info(k, max(image_width, 1), max(image_height, 1))  # validates K
    bx, by = max(info.binning_x, 1), max(info.binning_y, 1)
    ox, oy, rw, rh = info.roi
    if rw <= 0 or rh <= 0:
        ox, oy, rw, rh = 0, 0, info.width, info.height
    fx, fy, cx, cy = base.fx / bx, base.fy / by, (base.cx - ox) / bx, (base.cy - oy) / by
    summary = "camera_info"
    if rw > 0 and rh > 0:
        ew, eh = rw / bx, rh / by
        sx, sy = image_width / ew, image_height / eh
        if abs(sx - 1.0) * ew > 0.5 or abs(sy - 1.0) * eh > 0.5:
            if abs(sx - sy) > SCALE_TOLERANCE * max(sx, sy):
                msg = (f"camera_info describes {ew:g}x{eh:g} images but the images are {image_width}x{image_height} "
                       f"(x {sx:.3g}, y {sy:.3g}: a different aspect ratio, so it belongs to another stream or "
                       "mode): refused for these images, hands are placed with the assumed field of view "
                       "(assumed_hfov_deg) until a camera_info of this size arrives")
                return CameraFit(None, summary=f"refused: camera_info {ew:g}x{eh:g} for {image_width}x{image_height} images",
                                 notes=(("camera_info_size", msg),), level=1)
            s = 0.5 * (sx + sy)
            fx, fy, cx, cy = fx * s, fy * s, cx * s, cy * s
            summary = f"camera_info scaled by {s:.4g}"
            notes.append(("camera_info_scaled", f"camera_info describes {ew:g}x{eh:g} images, the images are "
                                                f"{image_width}x{image_height}: intrinsics scaled by {s:.4g} (a resized "
                                                "stream)"))
    intr = Intrinsics(float(fx), float(fy), float(cx), float(cy), int(image_width), int(image_height))
    if image_frame and info.frame_id and info.frame_id != image_frame:
        notes.append(("camera_info_frame", f"camera_info frame_id '{info.frame_id}' differs from the image's "
                                           f"'{image_frame}': used anyway; hands are published in '{image_frame}'"))
        level = 1
    d = np.asarray(info.d, dtype=np.float64)
    if d.size == 0 or not np.any(d != 0) or distortion_mode == "rectified":
        return CameraFit(intr, summary=summary, notes=tuple(notes), level=level)
    if not np.isfinite(d).all():
        raise InputError("intrinsics", f"camera_info D has NaN/inf values: {d.tolist()}")
    model = info.distortion_model.lower()
    if distortion_mode == "ignore":
        notes.append(("distortion_ignored", f"camera_info has {model or 'unnamed'} distortion {d.tolist()} and "
                                            "distortion is 'ignore': the image is used as if undistorted"))
        return CameraFit(intr, summary=summary + ", distortion ignored", notes=tuple(notes), level=1)
    if model in PINHOLE_MODELS and d.size in (4, 5, 8, 12, 14):
        return CameraFit(intr, distortion=d, summary=summary + f", undistorted ({model})", notes=tuple(notes),
                         level=level)
    if model in FISHEYE_MODELS and d.size >= 4:
        return CameraFit(intr, distortion=d[:4], fisheye=True, summary=summary + f", undistorted ({model})",
                         notes=tuple(notes), level=level)
    notes.append(("distortion_unsupported", f"camera_info distortion model '{info.distortion_model}' with {d.size} "
                                            "coefficients is not supported (plumb_bob, rational_polynomial, "
                                            "equidistant): the image is used as if undistorted"))
    return CameraFit(intr, summary=summary + ", distortion not applied (unsupported model)", notes=tuple(notes),
                     level=1)


class Undistorter:
    """Remaps images to the ideal pinhole image of the same K (maps cached per camera).

    Args:
        max_cached: camera/size combinations kept (a camera switching modes).
    """

    def __init__(self, max_cached: int = 4):
        self.max_cached = int(max_cached)
        self._maps: dict = {}
        self.last_ms = 0.0

    def _maps_for(self, fit: CameraFit) -> tuple[np.ndarray, np.ndarray]:
        intr = fit.intrinsics
        key = (intr.width, intr.height, intr.fx, intr.fy, intr.cx, intr.cy, tuple(fit.distortion.tolist()), fit.fisheye)
        maps = self._maps.get(key)
        if maps is None:
            K = intr.matrix()
            size = (intr.width, intr.height)
            if fit.fisheye:
                maps = cv2.fisheye.initUndistortRectifyMap(K, fit.distortion, np.eye(3), K, size, cv2.CV_16SC2)
            else:
                maps = cv2.initUndistortRectifyMap(K, fit.distortion, None, K, size, cv2.CV_16SC2)
            if len(self._maps) >= self.max_cached:
                self._maps.pop(next(iter(self._maps)))
            self._maps[key] = maps
        return maps

    def image(self, img: np.ndarray, fit: CameraFit) -> np.ndarray:
        """(H, W, C) or (H, W) image -> the same, undistorted (bilinear); returned as is when
        ``fit`` has no distortion."""
        if fit.distortion is None or fit.intrinsics is None:
            return img
        t0 = time.perf_counter()
        m1, m2 = self._maps_for(fit)
        out = cv2.remap(img, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        self.last_ms = (time.perf_counter() - t0) * 1e3
        return out

    def depth(self, depth: np.ndarray, fit: CameraFit) -> np.ndarray:
        """(H, W) float depth registered to the colour image -> undistorted the same way
        (nearest neighbour: no depth is invented between surfaces; NaN outside)."""
        if fit.distortion is None or fit.intrinsics is None or depth.shape != (fit.intrinsics.height,
                                                                              fit.intrinsics.width):
            return depth
        m1, m2 = self._maps_for(fit)
        return cv2.remap(depth.astype(np.float32, copy=False), m1, m2, cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))


class CameraInfoTracker:
    """The newest camera_info of a stream and what it means for each image (thread-safe use:
    the caller serialises :meth:`update` and :meth:`for_image`, e.g. with a lock).

    Each distinct warning (kind and text) is returned once by :meth:`for_image`, so that the
    node logs it once, however many frames it concerns.

    Args:
        distortion_mode: one of :data:`DISTORTION_MODES`.
        assumed_hfov_deg: field of view used without a usable camera_info.
        timeout_s: images arriving this long without camera_info give the "no camera_info"
            warning.
        topic: the camera_info topic, for that warning.
    """

    def __init__(self, distortion_mode: str = "undistort", assumed_hfov_deg: float = 60.0, timeout_s: float = 2.0,
                 topic: str = "camera_info"):
        self.topic = topic
        self.distortion_mode = distortion_mode
        self.assumed_hfov_deg = float(assumed_hfov_deg)
        self.timeout_s = float(timeout_s)
        self.info: CameraInfoFields | None = None
        self.fit: CameraFit | None = None      # of the newest image
        self._fits: dict = {}
        self._said: set = set()
        self._first_image: float | None = None
        self.undistorter = Undistorter()

    def update(self, info: CameraInfoFields) -> None:
        """A new camera_info. Raises InputError ("intrinsics") when its K is unusable; the
        previous one is kept then."""
        intrinsics_from_camera_info(list(info.k), 1, 1)
        if info != self.info:
            self.info, self._fits = info, {}

    def for_image(self, width: int, height: int, frame_id: str, now: float) -> tuple[Intrinsics, list]:
        """(intrinsics of a ``width x height`` image, [(kind, message), ...] not said before).

        ``self.fit`` is then the :class:`CameraFit` used (None: no camera_info yet).
        """
        if self._first_image is None:
            self._first_image = now
        new: list = []
        if self.info is None:
            self.fit = None
            if now - self._first_image >= self.timeout_s:
                new.append(("no_camera_info", f"no valid camera_info on {self.topic} after {self.timeout_s:g} s: assuming a "
                                              f"{self.assumed_hfov_deg:g} deg horizontal field of view and the "
                                              "principal point at the image centre; hand depth and position are "
                                              "approximate until camera_info arrives"))
            return assumed_intrinsics(width, height, self.assumed_hfov_deg), self._unsaid(new)
        key = (width, height, frame_id)
        fit = self._fits.get(key)
        if fit is None:
            fit = fit_camera_info(self.info, width, height, frame_id, self.distortion_mode)
            self._fits[key] = fit
        self.fit = fit
        intr = fit.intrinsics if fit.intrinsics is not None else assumed_intrinsics(width, height, self.assumed_hfov_deg)
        return intr, self._unsaid(list(fit.notes))

    def _unsaid(self, notes: list) -> list:
        out = [n for n in notes if n not in self._said]
        self._said.update(out)
        return out

    def summary(self) -> tuple[str, int, list[str]]:
        """(intrinsics line, level, problems) for /diagnostics."""
        if self.info is None:
            return f"assumed ({self.assumed_hfov_deg:g} deg hfov)", 1, ["no camera_info: assumed intrinsics"]
        if self.fit is None:
            return "camera_info", 0, []
        problems = [msg for kind, msg in self.fit.notes if kind != "camera_info_scaled"]
        return self.fit.summary, self.fit.level, problems

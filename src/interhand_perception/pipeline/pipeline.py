"""The one per-frame chain: an RGB frame (+ its intrinsics, + an aligned depth image) -> both
hands in metres in the camera frame (ROS-free).

``hands_node``, ``interhand infer`` and ``interhand bench --node`` all run a :class:`Pipeline`
(``interhand demo`` runs the node), so each step exists once:

1. **unmirror** (``mirrored``): a selfie image, its principal point and the depth image are
   flipped back, so outputs are in the camera's true optical frame and sides are the person's;
2. **method** (:mod:`.methods`): ``dir`` (crop -> network -> placement, :mod:`.frame`) or
   ``keypoint_fit`` (detector -> hand-model fit); a non-finite network output is an
   ``InputError``;
3. **confidence**: a hand below ``min_confidence`` is not valid;
4. **post-processing** (:mod:`.postprocess`): depth image, smoothing and hand timeout,
   interpenetration.

Decoding a message and fitting camera_info to the image come before (:mod:`.decode`,
:mod:`.camera_info`); building messages after (``ros.conversions``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .frame import FrameResult
from .methods import build_method, unmirror
from .placement import Intrinsics
from .postprocess import PostConfig, PostProcessor


@dataclass
class PipelineOutput:
    """What one frame gave.

    Attributes:
        frame: the hands (``frame.placed``: camera frame, metres), confidence, pose, betas.
        valid: (2,) bool, left and right.
        intrinsics: those the hands were placed with (un-mirrored when ``mirrored``).
        rgb: (H, W, 3) the image the method saw (un-mirrored when ``mirrored``).
        method: the method's report (crop box, hands found, side decisions, timings).
        post: the post-processing report (``depth``, ``penetration``, ``ms``; ``PostProcessor``).
        timings: seconds per step: ``method``, ``post`` and the method's own (``crop``,
            ``network``, ``placement``, ``detect``, ``fit``).
    """

    frame: FrameResult
    valid: np.ndarray
    intrinsics: Intrinsics
    rgb: np.ndarray
    method: dict = field(default_factory=dict)
    post: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


def post_config(p) -> PostConfig:
    """The post-processing settings of validated parameters (``pipeline.config.NodeParams``)."""
    return PostConfig(smoothing=p.smoothing, min_cutoff=p.smoothing_min_cutoff, beta=p.smoothing_beta,
                      d_cutoff=p.smoothing_d_cutoff, timeout_s=p.hand_timeout_s,
                      resolve_penetration=p.resolve_penetration)


class Pipeline:
    """One stream's per-frame chain (module docstring); keeps the smoothing state.

    Args:
        method: ``method(rgb, intrinsics, t) -> (FrameResult, report)`` (:mod:`.methods`).
        hand_models: {side: HandModel} of the method (their faces are used for interpenetration).
        mirrored: the images are mirrored (selfie cameras).
        min_confidence: hands below it are not valid.
        post: :class:`PostConfig`.
        model_id, device: what runs, for logs and diagnostics.
    """

    def __init__(self, method, hand_models: dict, mirrored: bool = False, min_confidence: float = 0.3,
                 post: PostConfig = PostConfig(), model_id: str = "", device: str = "cpu"):
        self.method = method
        self.hand_models = hand_models
        self.faces = {s: np.asarray(m.faces, dtype=np.int64) for s, m in hand_models.items()}
        self.mirrored = bool(mirrored)
        self.min_confidence = float(min_confidence)
        self.post = PostProcessor(post, self.faces)
        self.model_id = model_id
        self.device = device

    @classmethod
    def from_params(cls, p, **overrides) -> "Pipeline":
        """Build the method and the chain from validated parameters (``pipeline.config.validate``);
        ``overrides``: constructor arguments that replace the parameters' (e.g. ``post``).

        Raises:
            MethodUnavailable: weights, hand-model files or the detector are missing (says why).
        """
        method, hand_models, model_id, device = build_method(p)
        kwargs = dict(mirrored=p.mirrored, min_confidence=p.min_confidence, post=post_config(p),
                      model_id=model_id, device=device)
        kwargs.update(overrides)
        return cls(method, hand_models, **kwargs)

    def reset(self, post: PostConfig | None = None) -> None:
        """Forget the stream (smoothing state, hand tracks, a method's carried crop); ``post``:
        new post-processing settings."""
        self.post = PostProcessor(post or self.post.config, self.faces)
        if hasattr(self.method, "reset"):
            self.method.reset()

    def __call__(self, rgb: np.ndarray, intrinsics: Intrinsics, t: float,
                 depth: np.ndarray | None = None) -> PipelineOutput:
        """Both hands of one frame.

        Args:
            rgb: (H, W, 3) uint8.
            intrinsics: of this image (camera_info fitted to it, or assumed).
            t: the frame's time (s): the image stamp, or the time of receipt for frames whose
                stamp is zero or goes backwards (smoothing and hand timeouts use it).
            depth: (H, W) metres aligned with ``rgb`` (NaN = no reading), or None.
        Raises:
            InputError: kind "non_finite" when the network's output is not finite.
        """
        t0 = time.perf_counter()
        if self.mirrored:
            rgb, intrinsics = unmirror(rgb, intrinsics)
            if depth is not None:
                depth = np.ascontiguousarray(depth[:, ::-1])
        frame, report = self.method(rgb, intrinsics, t)
        t1 = time.perf_counter()
        valid = frame.confidence >= self.min_confidence
        frame, valid, post = self.post(frame, valid, t, intrinsics, depth)
        t2 = time.perf_counter()
        timings = {**frame.timings, "method": t1 - t0, "post": t2 - t1}
        return PipelineOutput(frame=frame, valid=valid, intrinsics=intrinsics, rgb=rgb, method=report, post=post,
                              timings=timings)

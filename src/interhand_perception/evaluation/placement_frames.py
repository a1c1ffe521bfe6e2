"""Full camera frames with known 3D hands, for evaluating metric placement (ROS-free).

The synthetic generator (:mod:`data.synthetic`, version 2) renders DIR's square crop; the
placement evaluation needs what a camera gives instead: a whole ``W x H`` frame of a
realistic pinhole camera (640 x 480, fx = fy = 600 by default) with the hands at a chosen,
known distance, and the aligned depth image an RGB-D camera would add. A frame here:

1. samples a person's two-hand scene exactly as the generator does
   (:func:`data.scene.sample_body_scene`: forearms from the shoulders, pose-prior fingers,
   betas ~ N(0, 0.8^2), egocentric or third-person view);
2. moves it rigidly (translation only, so the hands keep their orientation to the camera)
   so that the mean of the present wrists lies at depth ``distance`` on a random ray of the
   central image region, pulled towards the optical axis until every present joint projects
   inside the frame with a margin;
3. one-hand frames put the other hand (and its forearm) behind the camera, where nothing is
   rasterised;
4. renders it with the generator's appearance (:func:`data.appearance.render_hands`: skin
   details, forearms and sleeves, lights, background, camera effects) into an ``S x S``
   square (``S = max(W, H)``) whose principal point is shifted, then cuts the frame out.
   Blur is in camera pixels (optics 0.4-0.9 px, motion blur 3-10 px on 15% of the frames),
   not scaled with the image as for the generator's crops, where the hands fill the image
   (at 640 px that would blur 1-2.3 px, and up to 25 px of motion);
5. rasterises the hands alone into a metric depth image (a wall ``wall_m`` behind the hands
   elsewhere).

A frame is a pure function of ``(seed, index, distance, num_hands)``, so "before" and "after"
evaluations see identical pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..data.render import concat_meshes, project, rasterize
from ..hand_model.joints import SIDES

#: Where the absent hand of a one-hand frame goes: behind the camera (never rasterised).
_BEHIND = np.array([0.0, 0.0, -10.0])


@dataclass(frozen=True, eq=False)
class CameraSpec:
    """The evaluation camera: image size (px) and focal length (px); principal point at the
    image centre (``W / 2, H / 2``, pixel i covering [i, i + 1))."""

    width: int = 640
    height: int = 480
    focal: float = 600.0

    def matrix(self) -> np.ndarray:
        """(3, 3) float64 K."""
        return np.array([[self.focal, 0.0, self.width / 2.0], [0.0, self.focal, self.height / 2.0],
                         [0.0, 0.0, 1.0]])


@dataclass(frozen=True, eq=False)
class EvalFrame:
    """One rendered frame with its truth.

    Attributes:
        rgb: (H, W, 3) uint8.
        depth: (H, W) float32 metres, aligned with ``rgb`` (hands over a wall).
        K: (3, 3) the true intrinsics.
        joints: (2, 21, 3) true joints (index 0 left), camera frame, metres; an absent hand's
            are NaN.
        vertices: (2, V, 3) true vertices (NaN for an absent hand).
        present: (2,) bool, which hands are in the frame.
        betas: (2, 10) true shape parameters.
        distance: the nominal depth (m) of the present wrists' mean.
        index: frame index; view: "egocentric" or "third_person".
    """

    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    joints: np.ndarray
    vertices: np.ndarray
    present: np.ndarray
    betas: np.ndarray
    distance: float
    index: int
    view: str


def frame_rng(seed: int, index: int, distance: float, num_hands: int) -> np.random.Generator:
    """The generator of one frame (distance in whole millimetres)."""
    entropy = [0x91ACE, int(seed), int(index), int(round(distance * 1000)), int(num_hands)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def inside(points2d: np.ndarray, width: int, height: int, margin: float) -> bool:
    """Whether every (N, 2) pixel lies at least ``margin`` x the image size inside it."""
    mx, my = margin * width, margin * height
    p = np.asarray(points2d)
    return bool(((p[:, 0] >= mx) & (p[:, 0] <= width - mx) & (p[:, 1] >= my) & (p[:, 1] <= height - my)).all())


def placement_shift(joints: np.ndarray, present: np.ndarray, distance: float, K: np.ndarray,
                    width: int, height: int, rng: np.random.Generator, margin: float = 0.03) -> np.ndarray:
    """(3,) translation putting the present wrists' mean at depth ``distance`` on a random ray.

    The ray goes through a pixel drawn uniformly from the central half of the image (each
    axis); it is pulled towards the principal point (3/4, 1/2, 1/4 of the way, then onto it)
    until all present joints (2, 21, 3) project inside the frame with ``margin``.
    """
    anchor = joints[present, 0].mean(axis=0)
    centre = K[:2, 2]
    pick = centre + rng.uniform(-0.25, 0.25, 2) * np.array([width, height])
    shift = None
    for frac in (1.0, 0.75, 0.5, 0.25, 0.0):
        pix = centre + frac * (pick - centre)
        target = distance * np.linalg.solve(K, np.array([pix[0], pix[1], 1.0]))
        shift = target - anchor
        if inside(project(joints[present].reshape(-1, 3) + shift, K), width, height, margin):
            break
    return shift


def hand_depth_image(verts: Sequence[np.ndarray], faces: Sequence[np.ndarray], K: np.ndarray,
                     width: int, height: int, wall_m: float) -> np.ndarray:
    """(H, W) float32 depth (m) of the hand meshes ((V, 3) each, camera frame) over a wall at
    ``wall_m``."""
    v, f, _ = concat_meshes(list(zip(verts, faces)))
    r = rasterize(v, f, K, (height, width))
    return np.where(r.mask, r.depth, wall_m).astype(np.float32)


def render_frame(index: int, distance: float, num_hands: int = 2, seed: int = 0,
                 camera: CameraSpec = CameraSpec(), models: Sequence | None = None,
                 wall_behind_m: float = 0.6, blur_scale: float = 1.0) -> EvalFrame:
    """Render one evaluation frame (module docstring).

    Args:
        index: frame index (any int >= 0).
        distance: metres, depth of the present wrists' mean.
        num_hands: 2, or 1 (the hand kept is drawn at random).
        seed: evaluation seed.
        camera: image size and focal length.
        models: (left, right) hand models with ``flat_hand_mean=True``
            (``data.synthetic.load_models``); loaded when None.
        wall_behind_m: the depth image's background lies this far behind ``distance``.
        blur_scale: multiplies the camera blur (``textures.camera_effects``); 1 = camera pixels.
    """
    from ..data.appearance import render_hands
    from ..data.scene import sample_body_scene
    from ..data.synthetic import SyntheticConfig, load_models

    if num_hands not in (1, 2):
        raise ValueError(f"num_hands must be 1 or 2, got {num_hands}")
    if not distance > 0:
        raise ValueError(f"distance must be > 0, got {distance}")
    models = models if models is not None else load_models()
    w, h = int(camera.width), int(camera.height)
    size = max(w, h)
    cfg = SyntheticConfig(img_size=size, version=2)
    rng = frame_rng(seed, index, distance, num_hands)
    scene = sample_body_scene(rng, cfg, models)
    present = np.ones(2, bool)
    if num_hands == 1:
        present[int(rng.integers(2))] = False
    K = camera.matrix()
    shift = placement_shift(scene.joints, present, distance, K, w, h, rng)
    per_hand = np.where(present[:, None], shift, _BEHIND)           # (2, 3)
    joints = scene.joints + per_hand[:, None]
    verts = scene.verts + per_hand[:, None]
    k_square = K.copy()
    k_square[0, 2] += (size - w) / 2.0
    k_square[1, 2] += (size - h) / 2.0
    image, _, _ = render_hands(rng, cfg, models, scene._replace(verts=verts, joints=joints, K=K), k_square,
                               blur_scale=blur_scale)
    y0, x0 = (size - h) // 2, (size - w) // 2
    rgb = np.ascontiguousarray(image[y0:y0 + h, x0:x0 + w])
    faces = [np.asarray(m.faces) for m in models]
    depth = hand_depth_image([verts[k] for k in range(2) if present[k]],
                             [faces[k] for k in range(2) if present[k]], K, w, h, distance + wall_behind_m)
    nan = np.where(present[:, None, None], 1.0, np.nan)
    return EvalFrame(rgb=rgb, depth=depth, K=K, joints=joints * nan, vertices=verts * nan, present=present,
                     betas=np.asarray(scene.betas), distance=float(distance), index=int(index),
                     view=str(scene.view))


def frame_plan(edges: Sequence[float], frames_per_bin: int, single_per_bin: int = 0) -> list[tuple[int, float, int]]:
    """Frames ``(index, distance, num_hands)`` spread evenly over each distance bin.

    Bin ``[lo, hi)`` gets ``frames_per_bin`` two-hand frames at ``lo + (k + 0.5) (hi - lo) / n``
    and ``single_per_bin`` one-hand frames likewise; indices run over the whole plan.
    """
    e = [float(x) for x in edges]
    if len(e) < 2 or any(b <= a for a, b in zip(e, e[1:])) or e[0] <= 0:
        raise ValueError(f"distance bin edges must be positive and increasing, got {edges}")
    plan = []
    for lo, hi in zip(e, e[1:]):
        for hands, n in ((2, frames_per_bin), (1, single_per_bin)):
            for k in range(int(n)):
                plan.append((len(plan), round(lo + (k + 0.5) * (hi - lo) / n, 4), hands))
    return plan


def sides_present(frame: EvalFrame) -> list[str]:
    """The sides of the hands in the frame."""
    return [s for s, p in zip(SIDES, frame.present) if p]

"""Rendering the synthetic two-hand scene: skin albedo, forearms, lights, labels.

Used by :mod:`interhand_perception.data.synthetic`. Shading is done in linear RGB (Lambert +
ambient + a little Blinn-Phong specular), the result is encoded to sRGB, composited over a
procedural background and degraded by :func:`textures.camera_effects`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import textures as tx
from .render import concat_meshes, interpolate_visible, rasterize, shade, vertex_normals
from .scene import axis_angle_to_matrix
from .skin_details import DetailGeometry, detail_geometry, detailed_albedo

_RING = 14  # vertices around the forearm tube


@dataclass(frozen=True)
class ModelInfo:
    """Per-model constants derived from the rest mesh (cached by fingerprint).

    Attributes:
        faces: (F, 3) int64.
        rest: (V, 3) rest vertices.
        dense: (V, 3) dense colours in [0, 1] (:func:`dense_vertex_colours`).
        palm: (V,) in [0, 1], how much a vertex belongs to the palm side.
        nail: (V,) in [0, 1], fingernail weight.
        wrist_ids: (W,) vertices of the open wrist end.
        arm_axis: (3,) canonical direction from the wrist towards the elbow.
        wrist_end: distance (m) of the wrist end from the wrist joint along ``arm_axis``.
        mirror: (3,) factors taking this model's rest frame to the right hand's (x negated
            for the left hand).
        rest_normals: (V, 3) rest vertex normals.
        details: crease/nail geometry (:func:`skin_details.detail_geometry`, right frame).
    """

    faces: np.ndarray
    rest: np.ndarray
    dense: np.ndarray
    palm: np.ndarray
    nail: np.ndarray
    wrist_ids: np.ndarray
    arm_axis: np.ndarray
    wrist_end: float
    mirror: np.ndarray
    rest_normals: np.ndarray
    details: DetailGeometry


def rest_joints(model) -> np.ndarray:
    """(21, 3) rest joints of a ``HandModel`` in output order (its own frame)."""
    import torch

    from ..hand_model.lbs import joints21_from

    v = model.v_template.detach().double()[None]
    j16 = torch.einsum("jv,bvc->bjc", model.J_regressor.detach().double(), v)
    return joints21_from(j16, v, model.tip_vertex_ids.cpu())[0].numpy()


_INFO: dict[str, ModelInfo] = {}


def model_info(model) -> ModelInfo:
    """:class:`ModelInfo` of a ``HandModel`` (computed once per model fingerprint)."""
    key = f"{model.fingerprint}-{model.side}"
    if key not in _INFO:
        rest = model.v_template.detach().double().cpu().numpy()
        faces = np.asarray(model.faces, dtype=np.int64)
        j0 = model.J_regressor[0].detach().double().cpu().numpy() @ rest
        normals = vertex_normals(rest, faces)
        palm = np.clip((-normals[:, 1] - 0.1) / 0.5, 0.0, 1.0)
        tips = rest[model.tip_vertex_ids.cpu().numpy()]
        near_tip = np.linalg.norm(rest[:, None] - tips[None], axis=2).min(1)
        dorsal = np.clip((normals[:, 1] - 0.3) / 0.3, 0, 1)
        nail = np.clip((0.012 - near_tip) / 0.004, 0, 1) * dorsal
        axis = np.array([1.0, 0.0, 0.0]) if model.side == "right" else np.array([-1.0, 0.0, 0.0])
        along = (rest - j0) @ axis
        end = float(along.max())
        mirror = np.array([-1.0, 1.0, 1.0]) if model.side == "left" else np.ones(3)
        _INFO[key] = ModelInfo(faces=faces, rest=rest, dense=dense_vertex_colours(rest, model.side),
                               palm=palm, nail=nail,
                               wrist_ids=np.flatnonzero(along > end - 0.012),
                               arm_axis=axis, wrist_end=end, mirror=mirror, rest_normals=normals,
                               details=detail_geometry(rest_joints(model) * mirror))
    return _INFO[key]


def dense_vertex_colours(rest: np.ndarray, side: str) -> np.ndarray:
    """Dense-correspondence colours: rest position normalised to [0, 1] per axis.

    The left template (mirror image in x) is mirrored back first, so a vertex has the same
    colour on both hands (as in :func:`interhand26m.dense_vertex_colours`).

    Args:
        rest: (V, 3) rest vertices; side: "left" or "right".
    Returns:
        (V, 3) float64 in [0, 1].
    """
    v = np.asarray(rest, dtype=np.float64) * ([-1.0, 1.0, 1.0] if side == "left" else 1.0)
    lo, hi = v.min(axis=0), v.max(axis=0)
    return (v - lo) / np.maximum(hi - lo, 1e-12)


def _rot(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def skin_variation(rng: np.random.Generator, info: ModelInfo) -> np.ndarray:
    """Smooth blotchy variation of the skin: (V,) multipliers around 1 (+- 8%)."""
    k = rng.normal(0.0, 70.0, size=(3, 3))
    return 1.0 + 0.08 * np.sin(info.rest @ k.T + rng.uniform(0, 2 * np.pi, size=3)).mean(1)


def hand_albedo(rng: np.random.Generator, info: ModelInfo, skin: np.ndarray) -> np.ndarray:
    """Per-vertex linear-RGB reflectance: skin tone, blotchiness, lighter palm, nails.

    Args:
        skin: (3,) sRGB skin colour.
    Returns:
        (V, 3) linear RGB.
    """
    base = tx.srgb_to_linear(skin)
    k = rng.normal(0.0, 70.0, size=(3, 3))
    noise = np.sin(info.rest @ k.T + rng.uniform(0, 2 * np.pi, size=3)).mean(1)
    alb = base[None] * (1.0 + 0.08 * noise[:, None])
    dark = 1.0 - float(skin.mean())
    pale = np.array([0.95, 0.78, 0.7])  # palms are paler, the more so on darker skin
    palm_col = tx.srgb_to_linear(np.clip(skin + (pale - skin) * (0.1 + 0.45 * dark), 0, 1))
    alb += info.palm[:, None] * (palm_col - alb)
    nail_col = tx.srgb_to_linear(np.clip(0.5 * skin + 0.5 * np.array([0.93, 0.78, 0.75]), 0, 1))
    alb += 0.7 * info.nail[:, None] * (nail_col - alb)
    return alb


def _arm_direction(rng: np.random.Generator, start: np.ndarray, axis: np.ndarray, radius: float,
                   length: float, obstacle: np.ndarray | None, tries: int = 5) -> np.ndarray:
    """Bend of the forearm at the wrist that keeps the arm clear of ``obstacle`` if possible.

    Args:
        start: (3,) arm start; axis: (3,) unbent direction; radius: largest arm radius (all
        hand-local); obstacle: (M, 3) points of the other hand in the same frame, or None.
    Returns:
        (3, 3) bend rotation (wrist flexion about z, deviation about y).
    """
    best, best_clear = np.eye(3), -np.inf
    along = np.linspace(0.03, length, 8)
    for _ in range(tries):
        bend = _rot(2, rng.normal(0, 0.35)) @ _rot(1, rng.normal(0, 0.2))
        if obstacle is None:
            return bend
        centres = start + along[:, None] * (bend @ axis)
        dist = np.sqrt(((centres[:, None] - obstacle[None]) ** 2).sum(-1)).min(1)
        clear = float((dist - radius * (1.0 + 0.5 * along / 0.3)).min())
        if clear > best_clear:
            best, best_clear = bend, clear
        if clear > 0.005:
            break
    return best


def _turn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation (3, 3) taking unit vector ``a`` to unit vector ``b``."""
    v, c = np.cross(a, b), float(np.dot(a, b))
    if c < -1.0 + 1e-9:  # opposite: half a turn about any perpendicular axis
        p = np.eye(3)[int(np.argmin(np.abs(a)))]
        p = np.cross(a, p) / np.linalg.norm(np.cross(a, p))
        return 2.0 * np.outer(p, p) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def arm_mesh(rng: np.random.Generator, info: ModelInfo, verts: np.ndarray, rot: np.ndarray,
             wrist: np.ndarray, obstacle: np.ndarray | None = None, sleeve_at: float = np.inf,
             direction: np.ndarray | None = None, length: float | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A forearm tube fitted to the wrist end of a posed hand.

    Args:
        verts: (V, 3) posed hand vertices (camera frame); rot: (3, 3) global rotation;
        wrist: (3,) wrist joint (camera frame); obstacle: (M, 3) other hand's vertices that
        the arm should avoid (camera frame); sleeve_at: where a sleeve starts (metres along
        the arm; adds rings there for a sharp colour edge); direction: (3,) unit wrist ->
        elbow direction (camera frame) of a forearm that belongs to a body (then the arm
        follows it and ``obstacle`` is not used); length: forearm length (random if None).
    Returns:
        verts (N, 3), faces (F, 3), ring distance along the arm (N,) in metres.
    """
    local = (verts[info.wrist_ids] - wrist) @ rot  # rows: rot.T @ (v - wrist)
    centre = 0.5 * (local.min(0) + local.max(0))
    radius = 0.5 * (local.max(0) - local.min(0)) * 0.85
    ax = info.arm_axis
    start = (info.wrist_end - 0.006) * ax + centre * (1 - np.abs(ax))
    length = rng.uniform(0.15, 0.3) if length is None else float(length)
    if direction is not None:
        bend = _turn(ax, rot.T @ (np.asarray(direction, float) / np.linalg.norm(direction)))
    else:
        obstacle_local = None if obstacle is None else (obstacle[::3] - wrist) @ rot
        bend = _arm_direction(rng, start, ax, float(radius.max()), length, obstacle_local)
    s = np.array([0.0, 0.02, 0.04, 0.07, 0.12, 0.2, 0.3]) * (length / 0.3)
    if 0.0 < sleeve_at < length:
        s = np.unique(np.concatenate([s, [sleeve_at - 0.002, sleeve_at + 0.002]]))
    phi = np.linspace(0, 2 * np.pi, _RING, endpoint=False)
    grow = 1.0 + 0.5 * s / 0.3
    ring = (radius[1] * np.cos(phi)[None, :, None] * (bend @ [0, 1.0, 0])
            + radius[2] * np.sin(phi)[None, :, None] * (bend @ [0, 0, 1.0])) * grow[:, None, None]
    pts = start + s[:, None, None] * (bend @ ax) + ring
    pts = np.concatenate([pts.reshape(-1, 3), (start + s[-1] * (bend @ ax))[None]])
    n_r = len(s)
    k, j = np.meshgrid(np.arange(n_r - 1), np.arange(_RING), indexing="ij")
    a, b = k * _RING + j, k * _RING + (j + 1) % _RING
    quads = np.stack([a, b, b + _RING, a + _RING], -1).reshape(-1, 4)
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    last = (n_r - 1) * _RING + np.arange(_RING)
    cap = np.stack([last, np.roll(last, -1), np.full(_RING, n_r * _RING)], 1)
    dist = np.concatenate([np.repeat(s, _RING), [s[-1]]])
    return pts @ rot.T + wrist, np.concatenate([faces, cap]), dist


def sample_lights(rng: np.random.Generator, second_p: float) -> dict:
    """Random directional lights (towards-light directions, camera frame) and ambient."""
    tint = lambda sd: 1.0 + rng.normal(0.0, sd, size=3)  # noqa: E731
    dirs = [[rng.normal(0, 0.7), rng.normal(-0.5, 0.6), -1.0 + rng.normal(0, 0.3)]]
    cols = [rng.uniform(0.6, 1.3) * tint(0.06)]
    if rng.uniform() < second_p:
        dirs.append(rng.normal(size=3))
        cols.append(rng.uniform(0.15, 0.5) * tint(0.1))
    return dict(light_dirs=np.array(dirs), light_colours=np.clip(np.array(cols), 0, None),
                ambient=np.clip(rng.uniform(0.12, 0.45) * tint(0.08), 0, None),
                specular=rng.uniform(0.02, 0.15), shininess=rng.uniform(5, 30))


def render_hands(rng: np.random.Generator, cfg, models, scene, K_crop: np.ndarray,
                 blur_scale: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the scene into the ``cfg.img_size`` crop.

    Version 1 shades per-vertex colours (skin, a slightly paler palm, nails). Version 2
    (``cfg.version >= 2``) evaluates the skin per pixel (:mod:`data.skin_details`: palm
    colour on every tone, creases, nails, knuckles) and, when the scene has a body, lays each
    forearm along its own arm towards the elbow.

    Args:
        cfg: SyntheticConfig; models: (left, right); scene: synthetic.Scene; K_crop: (3, 3).
        blur_scale: ``textures.camera_effects``'s (None: blur in proportion to the crop).
    Returns:
        image (S, S, 3) uint8, seg (S, S) uint8 (0 bg, 1 left, 2 right), dense (S, S, 3) uint8.
    """
    size = cfg.img_size
    detailed = getattr(cfg, "version", 1) >= 2
    background = tx.random_background(rng, size, cfg.distractor_p)
    skins = tx.sample_skin_pair(rng)
    meshes, albedo, dense, rest_p, rest_n = [], [], [], [], []
    infos = [model_info(m) for m in models]
    for k, info in enumerate(infos):
        meshes.append((scene.verts[k], info.faces))
        if detailed:  # the vertex colour only carries the blotchy variation; detail per pixel
            albedo.append(np.repeat(skin_variation(rng, info)[:, None], 3, axis=1))
        else:
            albedo.append(hand_albedo(rng, info, skins[k]))
        dense.append(info.dense)
        rest_p.append(info.rest * info.mirror)
        rest_n.append(info.rest_normals * info.mirror)
    rots = axis_angle_to_matrix(scene.pose[:, :3])
    sleeve = tx.srgb_to_linear(tx.random_colour(rng, 1, saturation=0.8)[0])
    sleeve_at = rng.uniform(0.01, 0.12) if rng.uniform() < cfg.sleeve_p else np.inf
    for k, info in enumerate(infos):
        if rng.uniform() < cfg.arm_p:
            body = scene.arm_dirs is not None
            v, f, dist = arm_mesh(rng, info, scene.verts[k], rots[k], scene.joints[k, 0],
                                  obstacle=scene.verts[1 - k], sleeve_at=sleeve_at,
                                  direction=scene.arm_dirs[k] if body else None,
                                  length=rng.uniform(0.22, 0.3) if body else None)
            meshes.append((v, f))
            skin = tx.srgb_to_linear(skins[k]) * 0.95
            albedo.append(np.where((dist > sleeve_at)[:, None], sleeve, skin))
            dense.append(np.zeros((len(v), 3)))
            rest_p.append(np.zeros((len(v), 3)))
            rest_n.append(np.zeros((len(v), 3)))
    verts, faces, label = concat_meshes(meshes)
    raster = rasterize(verts, faces, K_crop, (size, size))
    mask = raster.mask
    attrs = [vertex_normals(verts, faces), verts, np.concatenate(albedo), np.concatenate(dense)]
    if detailed:
        attrs += [np.concatenate(rest_p), np.concatenate(rest_n)]
    px = interpolate_visible(np.concatenate(attrs, axis=1), faces, raster)  # (M, 12 or 18)
    vis = label[raster.face_id[mask]]
    alb = px[:, 6:9]
    if detailed:
        alb = alb.copy()
        for k in range(2):
            on = vis == k
            if on.any():
                alb[on] = alb[on] * detailed_albedo(px[on, 12:15], px[on, 15:18], skins[k],
                                                    infos[k].details, rng)
    colour = shade(px[:, 0:3], px[:, 3:6], alb, **sample_lights(rng, cfg.second_light_p))
    image = background.copy()
    image[mask] = tx.linear_to_srgb(colour * rng.uniform(0.85, 1.2))
    image = tx.camera_effects(rng, image, cfg.motion_blur_p, cfg.noise_max, cfg.jpeg_p, blur_scale)
    seg = np.zeros((size, size), dtype=np.uint8)
    seg[mask] = np.where(vis < 2, vis + 1, 0)
    dense_img = np.zeros((size, size, 3), dtype=np.uint8)
    dense_img[mask] = np.clip(px[:, 9:12] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, seg, dense_img

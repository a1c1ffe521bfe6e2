"""Per-pixel skin details that tell a palm from a back: palm colour, creases, nails, knuckles.

Used by :func:`interhand_perception.data.appearance.render_hands` (generator version 2). A
left palm and a right back have the same silhouette; what tells them apart in a photograph is
the surface: palms are pinker or paler than backs on every skin tone and carry flexion
creases (the three palm lines and a crease across each finger joint), backs carry nails and
knuckle wrinkles. These are evaluated per pixel from the rest-pose position and normal of the
surface point (interpolated by the rasteriser), so they are sharp at any crop size, and are
defined once on the right hand's rest frame: the left hand is its mirror image (x negated).

Rest frame of the right hand (docs/architecture.md): fingers along -x, palm normal -y, thumb
side +z, metres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import textures as tx

#: (joint, child) pairs across which a palm-side flexion crease runs (21-joint output order):
#: thumb MCP and IP, and the PIP and DIP of each finger.
FLEXION_JOINTS: tuple[tuple[int, int], ...] = (
    (2, 3), (3, 4), (6, 7), (7, 8), (10, 11), (11, 12), (14, 15), (15, 16), (18, 19), (19, 20))
#: (MCP, PIP) of the four fingers: the palmar digital crease lies a third of the way along.
FINGER_BASES: tuple[tuple[int, int], ...] = ((5, 6), (9, 10), (13, 14), (17, 18))
#: (DIP, tip) of each digit (thumb: IP, tip): the nail lies over the distal part.
DISTAL: tuple[tuple[int, int], ...] = ((3, 4), (7, 8), (11, 12), (15, 16), (19, 20))


@dataclass(frozen=True)
class DetailGeometry:
    """Crease and nail geometry of one rest hand (right-hand frame).

    Attributes:
        creases: (C, 2, 3) straight crease segments' end points across the finger joints.
        crease_half_width: (C,) half width of each finger crease's band (m), about the finger
            radius.
        palm_lines: (L, P, 2) palm lines as polylines in the palm plane (x, z).
        distal: (5, 2, 3) (joint, tip) of each digit's distal bone.
        pips: (4, 2, 3) (PIP, DIP) of each finger, for knuckle wrinkles.
    """

    creases: np.ndarray
    crease_half_width: np.ndarray
    palm_lines: np.ndarray
    distal: np.ndarray
    pips: np.ndarray


def _curve(points: np.ndarray, n: int = 24) -> np.ndarray:
    """Quadratic Bezier through 3 control points (3, 2) sampled at ``n`` points -> (n, 2)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * points[0] + 2 * t * (1 - t) * points[1] + t ** 2 * points[2]


def detail_geometry(joints: np.ndarray) -> DetailGeometry:
    """Where the details go on a hand, from its 21 rest joints (right-hand frame).

    Args:
        joints: (21, 3) rest joints in output order, right-hand frame (mirror a left hand's x).
    Returns:
        :class:`DetailGeometry`.
    """
    j = np.asarray(joints, dtype=np.float64)
    segs, widths = [], []
    for a, b in FLEXION_JOINTS + tuple((m, p) for m, p in FINGER_BASES):
        bone = j[b] - j[a]
        centre = j[a] + (0.33 * bone if (a, b) in FINGER_BASES else 0.0)
        segs.append(np.stack([centre, centre + bone]))
        widths.append(0.011 if a in (2, 3) else 0.009)
    xz = j[:, [0, 2]]
    w, idx, mid, little = xz[0], xz[5], xz[9], xz[17]
    heart = _curve(np.stack([0.7 * little + 0.3 * w + [0.0, -0.006],
                             0.72 * 0.5 * (xz[13] + xz[17]) + 0.28 * w + [0.004, 0.0],
                             0.8 * 0.5 * (idx + mid) + 0.2 * w]))
    head = _curve(np.stack([0.55 * idx + 0.45 * xz[2],
                            0.55 * mid + 0.45 * w,
                            0.45 * little + 0.55 * w + [0.0, -0.004]]))
    life = _curve(np.stack([0.55 * idx + 0.45 * xz[2],
                            0.5 * xz[2] + 0.5 * w + [0.0, -0.012],
                            0.85 * w + 0.15 * mid]))
    return DetailGeometry(
        creases=np.stack(segs), crease_half_width=np.array(widths),
        palm_lines=np.stack([heart, head, life]),
        distal=np.stack([np.stack([j[a], j[b]]) for a, b in DISTAL]),
        pips=np.stack([np.stack([j[a + 1], j[a + 2]]) for a, _ in FINGER_BASES]))


def _segment_coords(p: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along-bone fraction t (M,) and distance from the bone's line (M,) of points p (M, 3)."""
    d = seg[1] - seg[0]
    length2 = float(d @ d)
    t = (p - seg[0]) @ d / length2
    radial = np.linalg.norm(p - seg[0] - t[:, None] * d, axis=1)
    return t, radial


def _polyline_distance(q: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance of 2D points q (M, 2) to a polyline (P, 2) -> (M,)."""
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(((q[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(q[:, None] - closest, axis=2).min(1)


def crease_map(p: np.ndarray, geo: DetailGeometry, width: float = 0.0007) -> np.ndarray:
    """Palm-side crease darkness in [0, 1] of rest points p (M, 3) (right-hand frame).

    Finger creases: a band across the finger at each flexion joint; palm lines: within
    ``width`` of the polylines in the palm plane. The caller restricts it to the palm side.
    """
    out = np.zeros(len(p))
    for seg, half in zip(geo.creases, geo.crease_half_width):
        t, radial = _segment_coords(p, seg)
        along = np.abs(t) * np.linalg.norm(seg[1] - seg[0])
        out = np.maximum(out, np.clip(1.0 - along / width, 0, 1) * (radial < half))
    q = p[:, [0, 2]]
    for line in geo.palm_lines:
        out = np.maximum(out, 0.8 * np.clip(1.0 - _polyline_distance(q, line) / width, 0, 1))
    return out


def nail_map(p: np.ndarray, dorsal: np.ndarray, geo: DetailGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Nail plate and free edge weights in [0, 1] of rest points p (M, 3).

    Args:
        p: (M, 3) rest positions; dorsal: (M,) in [0, 1], how much the surface faces +y (the
            back of the hand).
    Returns:
        plate (M,), free edge (M,).
    """
    plate, edge = np.zeros(len(p)), np.zeros(len(p))
    for k, seg in enumerate(geo.distal):
        t, radial = _segment_coords(p, seg)
        half = 0.0075 if k == 0 else 0.0062
        inside = (t > 0.42) & (t < 1.08) & (radial < half)
        plate = np.maximum(plate, inside * dorsal)
        edge = np.maximum(edge, (inside & (t > 0.93)) * dorsal)
    return plate, edge


def knuckle_map(p: np.ndarray, geo: DetailGeometry, spacing: float = 0.0016) -> np.ndarray:
    """Dorsal knuckle wrinkles in [0, 1]: three thin lines across each PIP (points (M, 3))."""
    out = np.zeros(len(p))
    for seg in geo.pips:
        t, radial = _segment_coords(p, seg)
        along = t * np.linalg.norm(seg[1] - seg[0])
        for k in (-1, 0, 1):
            out = np.maximum(out, np.clip(1.0 - np.abs(along - k * spacing) / 0.0005, 0, 1)
                             * (radial < 0.008) * (0.6 if k else 1.0))
    return out


def palm_colour(skin: np.ndarray) -> np.ndarray:
    """Palm colour (sRGB (3,)) of a skin colour (sRGB (3,)).

    Darker skin: much paler palms (less melanin there). Light skin: pinker palms (redder
    against green: the dermis shows through), so the palm stays distinct on every tone (tested).
    """
    dark = 1.0 - float(np.mean(skin))
    target = np.array([0.95, 0.64, 0.62])
    return np.clip(skin + (target - skin) * (0.38 + 0.4 * dark), 0.0, 1.0)


def back_colour(skin: np.ndarray) -> np.ndarray:
    """Back-of-hand colour (sRGB (3,)): the skin tone a little more tanned and yellow."""
    return np.clip(skin * np.array([0.98, 0.97, 0.90]), 0.0, 1.0)


def detailed_albedo(rest_p: np.ndarray, rest_n: np.ndarray, skin: np.ndarray,
                    geo: DetailGeometry, rng: np.random.Generator) -> np.ndarray:
    """Linear-RGB albedo of hand surface points with palm, crease, nail and knuckle detail.

    Args:
        rest_p: (M, 3) rest positions; rest_n: (M, 3) rest normals (right-hand frame);
        skin: (3,) sRGB skin tone; geo: :func:`detail_geometry` of the hand.
    Returns:
        (M, 3) linear RGB.
    """
    n = rest_n / np.maximum(np.linalg.norm(rest_n, axis=1, keepdims=True), 1e-12)
    palm_w = np.clip((-n[:, 1] - 0.05) / 0.45, 0.0, 1.0)[:, None]
    dorsal = np.clip((n[:, 1] - 0.25) / 0.35, 0.0, 1.0)
    back, palm = tx.srgb_to_linear(back_colour(skin)), tx.srgb_to_linear(palm_colour(skin))
    alb = back + palm_w * (palm - back)
    depth = rng.uniform(0.35, 0.55)  # how dark creases are
    alb *= 1.0 - depth * (palm_w[:, 0] * crease_map(rest_p, geo))[:, None]
    alb *= 1.0 - 0.25 * knuckle_map(rest_p, geo)[:, None] * dorsal[:, None]
    plate, edge = nail_map(rest_p, dorsal, geo)
    nail = tx.srgb_to_linear(np.clip(0.35 * skin + 0.65 * np.array([0.95, 0.78, 0.76]), 0, 1))
    alb += 0.85 * plate[:, None] * (nail - alb)
    alb += 0.8 * edge[:, None] * (tx.srgb_to_linear(np.array([0.97, 0.95, 0.9])) - alb)
    return alb

"""Procedural appearance for the synthetic generator: skin tones, backgrounds, camera effects.

Everything is drawn from a ``numpy.random.Generator`` so that a sample is reproducible from its
seed. Images are float32 sRGB in [0, 1] with shape (S, S, 3) unless stated otherwise; nothing
is downloaded or read from disk.
"""
from __future__ import annotations

import cv2
import numpy as np

#: Anchor skin colours (sRGB, 0-255) from very light to very dark; a tone is sampled along
#: this curve, so the range covers the Fitzpatrick scale without favouring one end.
SKIN_ANCHORS = np.array([
    (255, 227, 205), (240, 200, 170), (228, 180, 145), (208, 150, 112), (186, 128, 90),
    (160, 106, 72), (126, 82, 56), (96, 62, 44), (68, 46, 36),
], dtype=np.float64) / 255.0


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """Approximate sRGB decoding (gamma 2.2), any shape."""
    return np.power(np.clip(c, 0.0, 1.0), 2.2)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Approximate sRGB encoding (gamma 1/2.2), any shape; clips to [0, 1]."""
    return np.power(np.clip(c, 0.0, 1.0), 1.0 / 2.2)


def skin_tone(t: float) -> np.ndarray:
    """Skin colour at position ``t`` in [0, 1] along :data:`SKIN_ANCHORS` (0 = lightest).

    Returns:
        (3,) sRGB in [0, 1].
    """
    x = np.clip(t, 0.0, 1.0) * (len(SKIN_ANCHORS) - 1)
    k = min(int(x), len(SKIN_ANCHORS) - 2)
    return SKIN_ANCHORS[k] + (x - k) * (SKIN_ANCHORS[k + 1] - SKIN_ANCHORS[k])


def sample_skin_pair(rng: np.random.Generator, same_person_p: float = 0.85) -> np.ndarray:
    """Skin colours of the two hands: usually one person (slightly different), sometimes two.

    Returns:
        (2, 3) sRGB in [0, 1].
    """
    t = rng.uniform()
    t2 = t + rng.normal(0.0, 0.03) if rng.uniform() < same_person_p else rng.uniform()
    out = np.stack([skin_tone(t), skin_tone(t2)])
    hue = rng.normal(0.0, 0.025, size=(1, 3))  # shared redness/yellowness shift
    out = out * (1.0 + hue + rng.normal(0.0, 0.015, size=(2, 3)))
    return np.clip(out, 0.0, 1.0)


def random_colour(rng: np.random.Generator, n: int = 1, saturation: float = 1.0) -> np.ndarray:
    """Random sRGB colours with a random saturation and value.

    Returns:
        (n, 3) float in [0, 1].
    """
    hsv = np.stack([rng.uniform(0, 180, n), rng.uniform(0, 255 * saturation, n),
                    rng.uniform(20, 255, n)], axis=1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.float32) / 255.0


def smooth_noise(rng: np.random.Generator, size: int, channels: int = 1,
                 octaves: int = 4, base: int = 2, persistence: float = 0.55) -> np.ndarray:
    """Multi-octave value noise made by upsampling random grids (bicubic).

    Returns:
        (size, size, channels) float32 roughly in [-1, 1].
    """
    out = np.zeros((size, size, channels), dtype=np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        g = base * 2 ** o + 1
        grid = rng.uniform(-1.0, 1.0, size=(g, g, channels)).astype(np.float32)
        up = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        out += amp * up.reshape(size, size, channels)
        total += amp
        amp *= persistence
    return out / total


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """Linear colour gradient in a random direction."""
    c = random_colour(rng, 2)
    ang = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    t = np.clip(x * np.cos(ang) + y * np.sin(ang) + 0.5, 0, 1)[..., None]
    return (1 - t) * c[0] + t * c[1]


def _noise_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth coloured noise around a random colour."""
    c = random_colour(rng, 1)[0]
    n = smooth_noise(rng, size, 3, octaves=int(rng.integers(2, 6)))
    return c + n * rng.uniform(0.1, 0.4)


def _shapes(rng: np.random.Generator, size: int, base: np.ndarray | None = None) -> np.ndarray:
    """Random filled rectangles, circles, polygons and thick lines."""
    img = np.ascontiguousarray(base if base is not None else
                               np.broadcast_to(random_colour(rng, 1)[0], (size, size, 3))).copy()
    for _ in range(int(rng.integers(4, 30))):
        col = tuple(float(v) for v in random_colour(rng, 1)[0])
        kind = rng.integers(4)
        p = rng.uniform(-0.2, 1.2, size=(4, 2)) * size
        if kind == 0:
            cv2.rectangle(img, tuple(p[0].astype(int)), tuple(p[1].astype(int)), col, -1)
        elif kind == 1:
            cv2.circle(img, tuple(p[0].astype(int)), int(rng.uniform(0.02, 0.3) * size), col, -1)
        elif kind == 2:
            cv2.fillPoly(img, [p.astype(np.int32)], col)
        else:
            cv2.line(img, tuple(p[0].astype(int)), tuple(p[1].astype(int)), col,
                     int(rng.integers(1, max(2, size // 16))))
    return img


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Sine stripes or a checkerboard between two colours."""
    c = random_colour(rng, 2)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    ang = rng.uniform(0, np.pi)
    freq = rng.uniform(2, 20)
    u = x * np.cos(ang) + y * np.sin(ang)
    if rng.uniform() < 0.3:
        v = -x * np.sin(ang) + y * np.cos(ang)
        t = ((np.floor(u * freq) + np.floor(v * freq)) % 2).astype(np.float32)
    else:
        t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * u)
        if rng.uniform() < 0.5:
            t = (t > 0.5).astype(np.float32)
    return (1 - t[..., None]) * c[0] + t[..., None] * c[1]


def skin_distractors(rng: np.random.Generator, img: np.ndarray, count: int) -> np.ndarray:
    """Paint shaded skin-coloured ellipses (faces, arms, other people) onto ``img`` in place."""
    size = img.shape[0]
    for _ in range(count):
        col = skin_tone(rng.uniform()).astype(np.float32)
        cx, cy = rng.uniform(-0.1, 1.1, 2) * size
        a, b = rng.uniform(0.05, 0.45, 2) * size
        ang = rng.uniform(0, np.pi)
        r = max(a, b)  # only the ellipse's bounding square is touched
        x0, x1 = int(max(cx - r, 0)), int(min(cx + r + 1, size))
        y0, y1 = int(max(cy - r, 0)), int(min(cy + r + 1, size))
        if x0 >= x1 or y0 >= y1:
            continue
        dy, dx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = dx + 0.5 - cx, dy + 0.5 - cy
        u = (dx * np.cos(ang) + dy * np.sin(ang)) / a
        v = (-dx * np.sin(ang) + dy * np.cos(ang)) / b
        r2 = u * u + v * v
        inside = r2 < 1.0
        shade = (0.55 + 0.45 * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)))[..., None]
        patch = img[y0:y1, x0:x1]
        patch[inside] = (col * shade)[inside]
    return img


def random_background(rng: np.random.Generator, size: int, distractor_p: float = 0.3) -> np.ndarray:
    """A random procedural background.

    Args:
        size: S.
        distractor_p: probability of adding skin-coloured blobs.
    Returns:
        (S, S, 3) float32 sRGB in [0, 1].
    """
    kind = rng.choice(6, p=[0.2, 0.15, 0.25, 0.1, 0.15, 0.15])
    if kind == 5:  # dark capture studio (InterHand2.6M-like)
        img = rng.uniform(0.0, 0.12) * (1.0 + 0.6 * smooth_noise(rng, size, 3, octaves=3))
    elif kind == 0:
        img = _noise_field(rng, size)
    elif kind == 1:
        img = _gradient(rng, size) + 0.1 * smooth_noise(rng, size, 3, octaves=3)
    elif kind == 2:
        img = _shapes(rng, size, _noise_field(rng, size) if rng.uniform() < 0.5 else None)
    elif kind == 3:
        img = _stripes(rng, size)
    else:  # blurred clutter (out-of-focus room)
        img = _shapes(rng, size, _gradient(rng, size))
        sigma = rng.uniform(2, 8) * size / 256
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = np.ascontiguousarray(img, dtype=np.float32)
    if rng.uniform() < distractor_p:
        skin_distractors(rng, img, int(rng.integers(1, 4)))
        if rng.uniform() < 0.5:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1, 4) * size / 256)
    if rng.uniform() < 0.5:  # mild defocus of the whole background
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0) * size / 256)
    return np.clip(img, 0.0, 1.0)


def gaussian_noise(rng: np.random.Generator, shape: tuple, sigma: float) -> np.ndarray:
    """Fast float32 Gaussian noise (OpenCV's generator, seeded from ``rng``: reproducible).

    Returns:
        float32 array of ``shape`` with standard deviation ``sigma``.
    """
    out = np.empty((int(np.prod(shape[:-1])), int(shape[-1])), dtype=np.float32)
    cv2.setRNGSeed(int(rng.integers(1 << 31)))
    cv2.randn(out, 0.0, float(sigma))
    return out.reshape(shape)


def motion_blur(img: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Linear motion blur.

    Args:
        img: (H, W, C) float or uint8 image.
        length: kernel length in pixels (>= 1).
        angle: direction in radians.
    Returns:
        Image of the same shape and dtype.
    """
    length = max(int(length), 1)
    k = np.zeros((length, length), dtype=np.float32)
    c = (length - 1) / 2.0
    d = np.array([np.cos(angle), np.sin(angle)]) * c
    cv2.line(k, (int(round(c - d[0])), int(round(c - d[1]))),
             (int(round(c + d[0])), int(round(c + d[1]))), 1.0, 1)
    k /= max(k.sum(), 1e-6)
    return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)


def jpeg(img_u8: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of an RGB uint8 image (real compression artefacts)."""
    ok, buf = cv2.imencode(".jpg", img_u8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1] if ok else img_u8


def camera_effects(rng: np.random.Generator, img: np.ndarray, motion_blur_p: float = 0.15,
                   noise_max: float = 0.03, jpeg_p: float = 0.3, blur_scale: float | None = None) -> np.ndarray:
    """Optics blur, white balance, motion blur, sensor noise, JPEG; float in, uint8 out.

    Args:
        img: (S, S, 3) float32 sRGB in [0, 1].
        blur_scale: blur sizes (optics 0.4-0.9 px, motion 3-10 px) are multiplied by this;
            None: ``max(S / 256, 0.5)`` (a crop in which the hands fill the image: blur in
            proportion to the hands). A full camera frame passes 1 (blur in camera pixels).
    Returns:
        (S, S, 3) uint8.
    """
    size = img.shape[0]
    scale = max(size / 256, 0.5) if blur_scale is None else float(blur_scale)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 0.9) * scale)
    img = img * rng.normal(1.0, 0.04, size=3).astype(np.float32)  # white balance
    gamma = rng.uniform(0.85, 1.15)
    img = np.power(np.clip(img, 0, 1), gamma)
    if rng.uniform() < motion_blur_p:
        img = motion_blur(img, int(rng.integers(3, 10) * (size / 256 if blur_scale is None else scale)) + 1,
                          rng.uniform(0, np.pi))
    sigma = rng.uniform(0.0, noise_max)
    if sigma > 0.002:
        img = img + gaussian_noise(rng, img.shape, sigma)
    out = (np.clip(img, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    if rng.uniform() < jpeg_p:
        out = jpeg(out, int(rng.integers(35, 95)))
    return out

"""Camera message fields -> RGB uint8 arrays, with validation (ROS-free).

The ROS 2 node hands the raw fields of ``sensor_msgs/Image`` (data, width, height, encoding,
step, is_bigendian) or ``sensor_msgs/CompressedImage`` (data, format) to these functions; the
tests call them directly. Every problem with a message raises :class:`InputError`, whose
``kind`` names the problem class (for diagnostics counters) and whose message says what was
wrong and what is expected.

Size limits are checked before anything proportional to the claimed image size is allocated:
for raw images from width/height, for compressed images from the PNG/JPEG header, read by a
small parser before ``cv2.imdecode`` runs. The returned arrays never alias the message buffer
(the node keeps them after the subscription callback has returned).
"""
from __future__ import annotations

import struct
from typing import Any

import cv2
import numpy as np

#: ``InputError.kind`` values.
ERROR_KINDS: tuple[str, ...] = ("encoding", "size_mismatch", "empty", "too_small", "too_large", "decode",
                                "intrinsics", "non_finite")

#: The smallest image side that can hold a hand the detector and the network can use, pixels.
MIN_IMAGE_SIDE = 32

# encoding (lower case) -> (bytes per pixel, conversion name used by _convert)
_ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "rgb"),
    "bgr8": (3, "bgr"),
    "rgba8": (4, "rgba"),
    "bgra8": (4, "bgra"),
    "mono8": (1, "mono8"),
    "mono16": (2, "mono16"),
    "8uc3": (3, "bgr"),           # OpenCV's convention: 3-channel 8-bit is BGR
    "8uc1": (1, "mono8"),
    "yuv422_yuy2": (2, "yuyv"),   # Y0 U Y1 V
    "yuyv": (2, "yuyv"),
    "uyvy": (2, "uyvy"),          # U Y0 V Y1
    "yuv422": (2, "uyvy"),        # sensor_msgs/image_encodings: "yuv422" is UYVY
}

#: Encodings accepted by :func:`image_to_rgb` (as spelled in sensor_msgs/image_encodings).
SUPPORTED_ENCODINGS: tuple[str, ...] = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC3",
                                        "8UC1", "yuv422_yuy2", "yuyv", "uyvy", "yuv422")

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carrying the image size (C4 DHT, C8 JPG and CC DAC are not SOFs)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset([0x01, 0xD8]) | frozenset(range(0xD0, 0xD8))


class InputError(ValueError):
    """A camera message that cannot be turned into an image (or placed in 3D).

    Attributes:
        kind: one of :data:`ERROR_KINDS`.
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# ----------------------------------------------------------------------------- raw images

def _as_bytes_array(data: Any) -> np.ndarray:
    """View message data as a flat uint8 array, without copying where the buffer allows it.

    Args:
        data: bytes, bytearray, memoryview, array.array('B'), numpy array or a list of ints.
    Returns:
        (N,) uint8, possibly aliasing ``data``.
    """
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):  # a list, or a non-contiguous memoryview
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _check_size(width: int, height: int, max_width: int, max_height: int) -> None:
    """Raise "empty" / "too_large" from the claimed size alone (no allocation)."""
    if width <= 0 or height <= 0:
        raise InputError("empty", f"image is empty: width={width}, height={height}; "
                                  "expected both > 0")
    if width > max_width or height > max_height:
        raise InputError("too_large", f"image of {width}x{height} exceeds the limit of "
                                      f"{max_width}x{max_height} pixels")


def require_usable_size(rgb: np.ndarray, min_side: int = MIN_IMAGE_SIDE) -> np.ndarray:
    """``rgb`` itself when both sides are at least ``min_side`` pixels.

    Raises:
        InputError: kind "too_small" (a 1x1 test pattern, a thumbnail stream).
    """
    h, w = rgb.shape[:2]
    if h < min_side or w < min_side:
        raise InputError("too_small", f"image of {w}x{h} is too small to find hands in; expected at least "
                                      f"{min_side}x{min_side} pixels")
    return rgb


def _lookup_encoding(encoding: str) -> tuple[int, str]:
    """(bytes per pixel, conversion) of an encoding, or InputError("encoding")."""
    found = _ENCODINGS.get(str(encoding).strip().lower())
    if found is None:
        raise InputError("encoding", f"unsupported image encoding {encoding!r}; expected one of "
                                     f"{', '.join(SUPPORTED_ENCODINGS)}")
    return found


def _convert(pixels: np.ndarray, conversion: str, is_bigendian: bool) -> np.ndarray:
    """Convert unpadded pixel rows to a new RGB array.

    Args:
        pixels: (H, W * bpp) uint8 rows (may alias the message, may be non-contiguous).
        conversion: a conversion name of ``_ENCODINGS``.
        is_bigendian: byte order of mono16.
    Returns:
        (H, W, 3) uint8, C-contiguous, never aliasing ``pixels``.
    """
    h = pixels.shape[0]
    if conversion == "rgb":
        return np.array(pixels.reshape(h, -1, 3), order="C", copy=True)
    if conversion == "bgr":
        return np.array(pixels.reshape(h, -1, 3)[..., ::-1], order="C", copy=True)
    if conversion == "rgba":
        return np.array(pixels.reshape(h, -1, 4)[..., :3], order="C", copy=True)
    if conversion == "bgra":
        return np.array(pixels.reshape(h, -1, 4)[..., 2::-1], order="C", copy=True)
    if conversion == "mono8":
        return np.array(np.broadcast_to(pixels[..., None], pixels.shape + (3,)), order="C", copy=True)
    if conversion == "mono16":
        grey = (pixels.view(">u2" if is_bigendian else "<u2") >> 8).astype(np.uint8)
        return np.array(np.broadcast_to(grey[..., None], grey.shape + (3,)), order="C", copy=True)
    code = cv2.COLOR_YUV2RGB_YUYV if conversion == "yuyv" else cv2.COLOR_YUV2RGB_UYVY
    return np.ascontiguousarray(cv2.cvtColor(np.ascontiguousarray(pixels.reshape(h, -1, 2)), code))


def image_to_rgb(data: Any, width: int, height: int, encoding: str, step: int,
                 is_bigendian: bool = False, max_width: int = 8192, max_height: int = 8192) -> np.ndarray:
    """Raw ``sensor_msgs/Image`` fields -> RGB image.

    Checks, in order: empty size, size limits (before any allocation), encoding, ``step``
    against the width, then ``len(data) == step * height`` exactly (drivers send exactly that).
    Row padding (``step > width * bytes_per_pixel``) is skipped. mono16 honours
    ``is_bigendian`` and keeps the high byte (``>> 8``).

    Args:
        data: the pixel buffer, (step * height,) bytes in any buffer form.
        width, height: image size in pixels.
        encoding: one of :data:`SUPPORTED_ENCODINGS` (case-insensitive).
        step: bytes per row.
        is_bigendian: byte order of 16-bit encodings.
        max_width, max_height: size limits.
    Returns:
        (H, W, 3) uint8, C-contiguous, not aliasing ``data``.
    Raises:
        InputError: kinds "empty", "too_large", "encoding", "size_mismatch".
    """
    width, height, step = int(width), int(height), int(step)
    _check_size(width, height, max_width, max_height)
    bpp, conversion = _lookup_encoding(encoding)
    if conversion in ("yuyv", "uyvy") and width % 2:
        raise InputError("size_mismatch", f"encoding {encoding!r} packs pixel pairs; width must be "
                                          f"even, got {width}")
    pixels = checked_rows(data, width, height, step, bpp, encoding)
    return _convert(pixels, conversion, bool(is_bigendian))


def checked_rows(data: Any, width: int, height: int, step: int, bpp: int, encoding: str) -> np.ndarray:
    """The (H, width * bpp) uint8 pixel rows of an image buffer, row padding dropped (a view).

    Raises:
        InputError: "size_mismatch" when ``step < width * bpp`` or ``len(data) != step * height``
            (exactly: drivers send exactly that).
    """
    row_bytes = width * bpp
    if step < row_bytes:
        raise InputError("size_mismatch", f"step {step} is smaller than width * bytes per pixel = "
                                          f"{width} * {bpp} = {row_bytes} for encoding {encoding!r}")
    buf = _as_bytes_array(data)
    if buf.size != step * height:
        raise InputError("size_mismatch", f"data has {buf.size} bytes but step * height = {step} * "
                                          f"{height} = {step * height} bytes are expected (exactly)")
    return buf.reshape(height, step)[:, :row_bytes]


def rgb_to_image_data(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[bytes, int]:
    """RGB image -> ``(data, step)`` of a ``sensor_msgs/Image`` (unpadded rows).

    Args:
        rgb: (H, W, 3) uint8.
        encoding: "rgb8", "bgr8" or "mono8" (mono8 uses ITU-R BT.601 luma, as OpenCV).
    Returns:
        (bytes of length step * H, step).
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {arr.shape} {arr.dtype}")
    w = arr.shape[1]
    if encoding == "rgb8":
        return np.ascontiguousarray(arr).tobytes(), 3 * w
    if encoding == "bgr8":
        return np.ascontiguousarray(arr[..., ::-1]).tobytes(), 3 * w
    if encoding == "mono8":
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2GRAY).tobytes(), w
    raise ValueError(f"rgb_to_image_data supports rgb8, bgr8 and mono8, got {encoding!r}")


# ----------------------------------------------------------------------------- compressed

def _png_size(buf: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk (signature, length, "IHDR", width, height)."""
    if len(buf) < 24 or buf[12:16] != b"IHDR":
        raise InputError("decode", "PNG data is too short or lacks the IHDR chunk")
    width, height = struct.unpack(">II", buf[16:24])
    return width, height


def _jpeg_size(buf: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's first start-of-frame marker (marker scan up to SOS).

    Also requires an end-of-image marker after the start of scan, so that a truncated
    stream is refused rather than decoded into a partly grey image.
    """
    i, n = 2, len(buf)
    while i + 1 < n:
        if buf[i] != 0xFF:
            raise InputError("decode", f"corrupt JPEG: expected a marker at byte {i}")
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        if i + 4 > n:
            break
        length = struct.unpack(">H", buf[i + 2:i + 4])[0]
        if marker in _JPEG_SOF:
            if i + 9 > n:
                break
            height, width = struct.unpack(">HH", buf[i + 5:i + 9])
            if buf.find(b"\xff\xd9", i + 2 + length) < 0:
                raise InputError("decode", "truncated JPEG: no end-of-image marker")
            return width, height
        i += 2 + length
    raise InputError("decode", "corrupt or truncated JPEG: no frame header (SOF marker) found")


def compressed_image_size(data: Any) -> tuple[int, int]:
    """(width, height) read from a PNG or JPEG header without decoding.

    Raises:
        InputError: "empty" for no data, "decode" for other formats or broken headers.
    """
    buf = _as_bytes_array(data).tobytes()
    if len(buf) == 0:
        raise InputError("empty", "compressed image has no data; expected PNG or JPEG bytes")
    if buf.startswith(_PNG_MAGIC):
        return _png_size(buf)
    if buf.startswith(b"\xff\xd8"):
        return _jpeg_size(buf)
    raise InputError("decode", f"compressed data starts with {buf[:8]!r}: not PNG or JPEG "
                               "(the only supported formats)")


def compressed_to_rgb(data: Any, format: str = "", max_width: int = 8192,
                      max_height: int = 8192) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` fields -> RGB image.

    The size is read from the header first and checked against the limits before
    ``cv2.imdecode`` allocates anything. ``format`` is informational only (publishers fill it
    inconsistently); the magic bytes decide. EXIF orientation is ignored: camera intrinsics
    refer to the sensor's pixel grid.

    Args:
        data: the compressed bytes in any buffer form.
        format: the message's format string (used in error messages only).
        max_width, max_height: size limits.
    Returns:
        (H, W, 3) uint8, C-contiguous.
    Raises:
        InputError: kinds "empty", "too_large", "decode".
    """
    buf = _as_bytes_array(data)
    if buf.size == 0:
        raise InputError("empty", f"compressed image (format {format!r}) has no data")
    width, height = compressed_image_size(buf)
    if width == 0 or height == 0:
        raise InputError("decode", f"compressed image header gives size {width}x{height}")
    _check_size(width, height, max_width, max_height)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape[:2] != (height, width):
        raise InputError("decode", f"could not decode the {width}x{height} compressed image "
                                   f"(format {format!r}); the data is corrupt or truncated")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

"""Camera message fields -> RGB: every encoding, padding, limits and compressed headers."""
from __future__ import annotations

import array
import struct
import time

import cv2
import numpy as np
import pytest

from interhand_perception.pipeline.decode import (
    SUPPORTED_ENCODINGS, InputError, compressed_image_size, compressed_to_rgb, image_to_rgb,
    rgb_to_image_data)

H, W = 5, 7
RGB = np.random.default_rng(3).integers(0, 256, size=(H, W, 3), dtype=np.uint8)
GREY = RGB[..., 1].copy()


def padded(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """(H, row_bytes) uint8 rows + ``pad`` junk bytes each -> (data, step)."""
    rows = rows.reshape(rows.shape[0], -1)
    junk = np.full((rows.shape[0], pad), 0xAB, np.uint8)
    return np.concatenate([rows, junk], axis=1).tobytes(), rows.shape[1] + pad


# (encoding, pixel rows, expected RGB)
CASES = [
    ("rgb8", RGB, RGB),
    ("bgr8", RGB[..., ::-1], RGB),
    ("8UC3", RGB[..., ::-1], RGB),
    ("rgba8", np.concatenate([RGB, np.full((H, W, 1), 9, np.uint8)], axis=2), RGB),
    ("bgra8", np.concatenate([RGB[..., ::-1], np.full((H, W, 1), 9, np.uint8)], axis=2), RGB),
    ("mono8", GREY, np.repeat(GREY[..., None], 3, axis=2)),
    ("8UC1", GREY, np.repeat(GREY[..., None], 3, axis=2)),
]


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding,rows,expected", CASES, ids=[c[0] for c in CASES])
def test_encodings_round_trip(encoding, rows, expected, pad):
    data, step = padded(np.ascontiguousarray(rows), pad)
    out = image_to_rgb(data, W, H, encoding, step)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 4])
def test_mono16_keeps_high_byte_in_either_byte_order(bigendian, pad):
    values = GREY.astype(np.uint16) * 256 + 200  # low byte 200 must vanish
    raw = values.astype(">u2" if bigendian else "<u2").view(np.uint8)
    data, step = padded(raw, pad)
    out = image_to_rgb(data, W, H, "mono16", step, is_bigendian=bigendian)
    np.testing.assert_array_equal(out, np.repeat(GREY[..., None], 3, axis=2))


def test_yuyv_and_uyvy_decode_black_white_pairs():
    # BT.601 limited range: Y=16 black, Y=235 white, U=V=128 no colour; Y=128 grey -> 1.164 * 112 = 130
    yuyv = np.array([[16, 128, 235, 128, 128, 128, 128, 128]] * 2, np.uint8)
    uyvy = yuyv.reshape(2, 4, 2)[..., ::-1].reshape(2, 8)  # swap each (Y, C) byte pair
    expected = np.array([[[0] * 3, [255] * 3, [130] * 3, [130] * 3]] * 2, np.uint8)
    for enc in ("yuyv", "yuv422_yuy2"):
        np.testing.assert_array_equal(image_to_rgb(yuyv.tobytes(), 4, 2, enc, 8), expected)
    for enc in ("uyvy", "yuv422"):
        np.testing.assert_array_equal(image_to_rgb(uyvy.tobytes(), 4, 2, enc, 8), expected)


def test_every_supported_encoding_is_accepted():
    for enc in SUPPORTED_ENCODINGS:  # step 8 covers the widest pixel (4 bytes) of a 2-pixel row
        out = image_to_rgb(bytes(8 * 2), 2, 2, enc, 8)
        assert out.shape == (2, 2, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda b: array.array("B", b),
                                  lambda b: np.frombuffer(b, np.uint8), list])
def test_buffer_types(wrap):
    data = RGB.tobytes()
    np.testing.assert_array_equal(image_to_rgb(wrap(data), W, H, "rgb8", 3 * W), RGB)


def test_result_does_not_alias_the_message():
    buf = bytearray(RGB.tobytes())
    out = image_to_rgb(buf, W, H, "rgb8", 3 * W)
    buf[:] = bytes(len(buf))
    np.testing.assert_array_equal(out, RGB)
    src = np.frombuffer(RGB.tobytes(), np.uint8).copy()
    assert not np.shares_memory(image_to_rgb(src, W, H, "rgb8", 3 * W), src)


def test_bad_messages_raise_the_right_kind():
    good = RGB.tobytes()
    cases = [
        (dict(data=good, width=0, height=H, encoding="rgb8", step=0), "empty"),
        (dict(data=good, width=W, height=0, encoding="rgb8", step=3 * W), "empty"),
        (dict(data=good, width=W, height=H, encoding="bayer_rggb8", step=3 * W), "encoding"),
        (dict(data=good, width=W, height=H, encoding="rgb8", step=3 * W - 1), "size_mismatch"),
        (dict(data=good[:-1], width=W, height=H, encoding="rgb8", step=3 * W), "size_mismatch"),
        (dict(data=good + b"x", width=W, height=H, encoding="rgb8", step=3 * W), "size_mismatch"),
        (dict(data=bytes(6 * 2), width=3, height=2, encoding="yuyv", step=6), "size_mismatch"),
        (dict(data=good, width=W, height=H, encoding="rgb8", step=3 * W, max_width=6), "too_large"),
    ]
    for kwargs, kind in cases:
        with pytest.raises(InputError) as info:
            image_to_rgb(**kwargs)
        assert info.value.kind == kind, (kwargs, info.value)


def test_error_messages_say_what_is_expected():
    with pytest.raises(InputError, match="rgb8.*mono16.*yuyv"):
        image_to_rgb(b"", 1, 1, "bayer_rggb8", 1)
    with pytest.raises(InputError, match=r"104 bytes.*105 bytes"):
        image_to_rgb(RGB.tobytes()[:-1], W, H, "rgb8", 3 * W)


def test_too_large_is_refused_before_any_allocation():
    t0 = time.perf_counter()
    with pytest.raises(InputError) as info:
        image_to_rgb(b"\x00" * 4, 100_000, 100_000, "rgb8", 300_000)
    assert info.value.kind == "too_large" and "100000x100000" in str(info.value)
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_rgb_to_image_data_round_trips(encoding):
    image = RGB if encoding != "mono8" else np.repeat(GREY[..., None], 3, axis=2)
    data, step = rgb_to_image_data(image, encoding)
    assert len(data) == step * H and step == W * (1 if encoding == "mono8" else 3)
    np.testing.assert_array_equal(image_to_rgb(data, W, H, encoding, step), image)


# ----------------------------------------------------------------------------- compressed

_XS, _YS = np.meshgrid(np.arange(37) * 6, np.arange(23) * 10, indexing="xy")
SMOOTH = np.stack([_XS, _YS, np.full((23, 37), 90)], axis=2).astype(np.uint8)  # (23, 37, 3) ramps


def encoded(ext: str, image: np.ndarray = SMOOTH, params: tuple = ()) -> bytes:
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(image[..., ::-1]), list(params))
    assert ok
    return buf.tobytes()


def test_header_sizes_of_png_and_jpeg_variants():
    assert compressed_image_size(encoded(".png")) == (37, 23)
    assert compressed_image_size(encoded(".jpg")) == (37, 23)
    assert compressed_image_size(encoded(".jpg", params=(cv2.IMWRITE_JPEG_PROGRESSIVE, 1))) == (37, 23)


def test_png_decodes_exactly_and_jpeg_closely():
    np.testing.assert_array_equal(compressed_to_rgb(encoded(".png"), "png"), SMOOTH)
    jpg = compressed_to_rgb(array.array("B", encoded(".jpg", params=(cv2.IMWRITE_JPEG_QUALITY, 95))), "jpeg")
    assert jpg.shape == (23, 37, 3) and jpg.flags.c_contiguous
    assert np.abs(jpg.astype(int) - SMOOTH).mean() < 3.0


def test_compressed_too_large_from_header_only():
    with pytest.raises(InputError) as info:
        compressed_to_rgb(encoded(".png"), "png", max_width=32)
    assert info.value.kind == "too_large"
    # forged headers claiming 100000 x 90000 with no pixel data behind them
    ihdr = b"IHDR" + struct.pack(">II", 100_000, 90_000) + b"\x08\x02\0\0\0"
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 60_000, 60_000, 1) + b"\x01\x11\x00"
    jpg = b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 4) + b"\0\0" + sof0 + b"\xff\xd9"
    assert compressed_image_size(jpg) == (60_000, 60_000)
    for data in (png, jpg):
        t0 = time.perf_counter()
        with pytest.raises(InputError) as info:
            compressed_to_rgb(data, "")
        assert info.value.kind == "too_large" and time.perf_counter() - t0 < 0.5


def test_compressed_bad_data_kinds():
    jpg, png = encoded(".jpg"), encoded(".png")
    for data, kind in [(b"", "empty"), (bytearray(), "empty"), (jpg[: len(jpg) // 2], "decode"),
                       (jpg[:-2], "decode"), (png[: len(png) // 2], "decode"), (b"GIF89a" + bytes(30), "decode"),
                       (b"\xff\xd8\xff", "decode"), (b"\x89PNG\r\n\x1a\n", "decode")]:
        with pytest.raises(InputError) as info:
            compressed_to_rgb(data, "jpeg")
        assert info.value.kind == kind, (data[:10], info.value)

"""The default method's sides and depths do not change when the same photo is shifted or grey.

Issue 10: on the real photos of ../shared/real_hands (not in the repository; the tests skip
without it or MediaPipe), shifting a photo by 80 px or converting it to grey flipped the side
of a hand and changed its depth. Each photo runs through ``KeypointFitMethod`` four times: as
it is, grey, and shifted 80 px right or left (black padding added on the left or on the right;
the principal point moves with the content, the focal length stays). Hands are matched across
the versions by their fitted skeletons in the original's pixels (one to one, mean joint
distance below 0.3 hand sizes). A matched hand must keep its side; if MediaPipe's 2D skeleton
is the same (the fitted skeletons within 0.1 hand sizes, sizes within 10%), its wrist depth must
agree within 15%. MediaPipe itself sometimes finds other hands or other skeletons in a version
(another pass, a mix of two clasped hands): those are not the fit's to keep (reported in
docs/keypoint_fit.md). ``python tests/test_side_stability.py`` prints the table.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from interhand_perception.evaluation.placement_eval import match_outputs
from interhand_perception.paths import REPO_ROOT
from interhand_perception.pipeline.placement import assumed_intrinsics

PHOTOS = REPO_ROOT.parent / "shared" / "real_hands"
ANNOTATIONS = json.loads((Path(__file__).parent / "data" / "real_hands_boxes.json").read_text())["photos"]
SHIFT = 80
VARIANTS = ("grey", f"+{SHIFT}", f"-{SHIFT}")
#: Photos on which MediaPipe flips both its label and its 3D landmarks' chirality between
#: versions, so no decision from its output can hold (measured; docs/keypoint_fit.md).
KNOWN_FLIPS = {"intaghand_demo2_clasped_hands.jpg": "the one hand found mixes the two clasped hands; "
               "MediaPipe's label and 3D landmarks both turn from right to left with the shift"}


def variant(rgb: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """(image, dx): the photo as it is, grey, or shifted by ``dx`` px (padding on the left for
    "+", on the right for "-"; dx is where the original's pixel 0 lands)."""
    if name == "orig":
        return rgb, 0
    if name == "grey":
        return cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB), 0
    left = SHIFT if name.startswith("+") else 0
    return cv2.copyMakeBorder(rgb, 0, 0, left, SHIFT - left, cv2.BORDER_CONSTANT, value=0), left


def run_hands(method, rgb: np.ndarray, name: str) -> list[dict]:
    """The method's hands on one version: side, wrist depth (m), fitted skeleton (21, 2) in the
    original photo's pixels, its size (px)."""
    img, dx = variant(rgb, name)
    base = assumed_intrinsics(rgb.shape[1], rgb.shape[0])
    intr = replace(base, cx=base.cx + dx, width=img.shape[1])
    frame, report = method(img, intr, 0.0)
    out = []
    for side, fit in (frame.result or {}).items():
        uv = fit.joints2d - np.array([dx, 0.0])
        out.append({"side": side, "z": float(fit.wrist[2]), "uv": uv, "size": float(np.ptp(uv, axis=0).max()),
                    "confidence": fit.confidence, "why": report.get("sides")})
    return out


def compare(orig: list[dict], other: list[dict]) -> list[dict]:
    """Matched hands of two versions: sides, depth ratio, whether the 2D skeletons agree."""
    rows = []
    for j, i in match_outputs([h["uv"] for h in other], [h["uv"] for h in orig], max_cost=0.3).items():
        a, b = orig[i], other[j]
        dist = float(np.linalg.norm(a["uv"] - b["uv"], axis=1).mean()) / a["size"]
        same_2d = dist < 0.1 and abs(b["size"] / a["size"] - 1.0) < 0.1
        rows.append({"side": a["side"], "other_side": b["side"], "depth_ratio": b["z"] / a["z"], "same_2d": same_2d,
                     "dist": dist})
    return rows


def photo_report(method, name: str) -> dict:
    """{version: compare rows} for one photo, and the original's hands."""
    rgb = cv2.cvtColor(cv2.imread(str(PHOTOS / name)), cv2.COLOR_BGR2RGB)
    orig = run_hands(method, rgb, "orig")
    return {"orig": orig, **{v: compare(orig, run_hands(method, rgb, v)) for v in VARIANTS}}


@pytest.fixture(scope="module")
def method():
    if not PHOTOS.is_dir():
        pytest.skip(f"{PHOTOS} not present (real photos are never copied into the repository)")
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (scripts/setup.sh installs it)")
    from interhand_perception.detection import MediaPipeHands
    from interhand_perception.hand_model import load_hand_model
    from interhand_perception.pipeline.methods import KeypointFitMethod

    det = MediaPipeHands()
    yield KeypointFitMethod({s: load_hand_model(s) for s in ("left", "right")}, det)
    det.close()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_FLIPS[n], strict=False))
                                  if n in KNOWN_FLIPS else n for n in sorted(ANNOTATIONS)])
def test_sides_and_depth_survive_shift_and_grey(method, name):
    rep = photo_report(method, name)
    assert rep["orig"], f"{name}: no hand found"
    for version in VARIANTS:
        for row in rep[version]:
            assert row["other_side"] == row["side"], f"{name} {version}: {row['side']} -> {row['other_side']}"
            if row["same_2d"]:
                assert abs(row["depth_ratio"] - 1.0) < 0.15, f"{name} {version}: depth x{row['depth_ratio']:.2f}"


def stability_table(method, names=None) -> str:
    """Markdown table of every photo and version (for docs/keypoint_fit.md)."""
    lines = ["| photo | hands (orig) | version | matched | sides kept | depth ratio (same 2D) | depth ratio (other 2D) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in names or sorted(ANNOTATIONS):
        rep = photo_report(method, name)
        sides = ", ".join(f"{h['side']} {h['z']:.2f} m" for h in rep["orig"])
        for v in VARIANTS:
            rows = rep[v]
            kept = sum(r["side"] == r["other_side"] for r in rows)
            same = " ".join(f"{r['depth_ratio']:.2f}" for r in rows if r["same_2d"]) or "-"
            other = " ".join(f"{r['depth_ratio']:.2f}" for r in rows if not r["same_2d"]) or "-"
            lines.append(f"| {name} | {sides} | {v} | {len(rows)} | {kept}/{len(rows)} | {same} | {other} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import torch

    from interhand_perception.detection import MediaPipeHands
    from interhand_perception.fitting import FitConfig
    from interhand_perception.hand_model import load_hand_model
    from interhand_perception.pipeline.methods import KeypointFitMethod

    torch.set_num_threads(1)
    legacy = "legacy" in sys.argv[1:]
    cfg = FitConfig(fit_world_scale=False, sigma_size=0.0) if legacy else FitConfig()
    m = KeypointFitMethod({s: load_hand_model(s) for s in ("left", "right")}, MediaPipeHands(), config=cfg,
                          sides="label" if legacy else "geometry")
    print(stability_table(m))

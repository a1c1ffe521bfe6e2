"""``interhand infer PATH``: the node's processing on an image, a folder of images or a video.

Each frame goes through exactly what ``hands_node`` runs (``pipeline.Pipeline``: a
reconstruction method, then smoothing for videos and the interpenetration measure), with intrinsics from
``--fx/--fy/--cx/--cy`` or an assumed field of view. Outputs, in ``--out``:

* images: ``<name>_hands.png`` per image ([input with meshes and skeletons | side view]);
  video: ``<name>_hands.mp4``;
* ``hands.json`` (or ``.npz``): per frame the source, time, hands found by the detector, crop
  box, and per hand valid, confidence, joints (21 x 3, metres, camera frame), wrist position
  and quaternion (x, y, z, w), pose (48), betas (10); vertices in the ``.npz`` only.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..pipeline.placement import Intrinsics, assumed_intrinsics

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def list_inputs(path: Path) -> tuple[str, list[Path]]:
    """("images", files) for an image or a folder of images, ("video", [file]) for a video."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXT)
        if not files:
            raise FileNotFoundError(f"{path} holds no images ({', '.join(sorted(IMAGE_EXT))})")
        return "images", files
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix.lower() in VIDEO_EXT:
        return "video", [path]
    if path.suffix.lower() in IMAGE_EXT:
        return "images", [path]
    raise ValueError(f"{path}: not an image ({', '.join(sorted(IMAGE_EXT))}) or video ({', '.join(sorted(VIDEO_EXT))})")


def intrinsics_for(width: int, height: int, fx=None, fy=None, cx=None, cy=None, hfov_deg: float = 60.0) -> Intrinsics:
    """Given focal lengths/principal point (pixels), else an assumed field of view."""
    base = assumed_intrinsics(width, height, hfov_deg)
    if fx is None:
        return base
    return replace(base, fx=float(fx), fy=float(fy if fy is not None else fx),
                   cx=float(cx if cx is not None else base.cx), cy=float(cy if cy is not None else base.cy),
                   assumed=False)


def frame_record(source: str, t: float, frame, valid: np.ndarray, report: dict) -> dict:
    """JSON-friendly outputs of one frame (no vertices)."""
    p = frame.placed
    hands = {}
    for i, side in enumerate(("left", "right")):
        hands[side] = {"valid": bool(valid[i]), "confidence": round(float(frame.confidence[i]), 4)}
        if valid[i]:
            hands[side].update(joints=np.round(p.joints[i], 5).tolist(), wrist=np.round(p.wrist[i], 5).tolist(),
                               wrist_quaternion_xyzw=np.round(p.wrist_quaternion[i], 6).tolist(),
                               pose=np.round(frame.pose[i], 5).tolist(), betas=np.round(frame.betas[i], 4).tolist())
    box = report.get("box")
    return {"source": source, "time_s": round(t, 4), "hands_detected": report.get("found"),
            "crop_box": None if box is None else np.round(np.asarray(box, float), 2).tolist(), **hands,
            "right_minus_left": np.round(p.right_minus_left, 5).tolist() if valid.all() else None,
            "penetration_cm3": report.get("penetration_cm3")}


def run_infer(path: str, make_pipeline, out_dir: str, intr_args: dict, fmt: str = "json",
              max_frames: int | None = None, height: int = 360, show_image: bool = True) -> dict:
    """Run a :class:`~interhand_perception.pipeline.pipeline.Pipeline` over PATH and write
    overlays + outputs; returns a summary dict.

    Args:
        make_pipeline: ``make_pipeline(video: bool) -> Pipeline`` (smoothing is for videos:
            the images of a folder are not a stream).
    """
    from ..visualization.camera_overlay import panel

    kind, files = list_inputs(Path(path))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipeline = make_pipeline(kind == "video")
    faces = pipeline.faces
    records, verts, writer, written = [], [], None, []

    def frames():
        if kind == "images":
            for i, f in enumerate(files):
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if img is None:
                    raise ValueError(f"{f}: cannot be decoded as an image")
                yield f.name, float(i), cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        else:
            cap = cv2.VideoCapture(str(files[0]))
            if not cap.isOpened():
                raise ValueError(f"{files[0]}: cannot be opened as a video")
            fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
            i = 0
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                yield f"{files[0].name}#{i}", i / fps, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
                i += 1
            cap.release()

    total = len(files) if kind == "images" else int(cv2.VideoCapture(str(files[0])).get(cv2.CAP_PROP_FRAME_COUNT))
    if max_frames:
        total = min(total, max_frames)
    fps_out = 30.0
    if kind == "video":
        fps_out = cv2.VideoCapture(str(files[0])).get(cv2.CAP_PROP_FPS) or 30.0
    for n, (name, t, rgb) in enumerate(tqdm(frames(), total=total, desc="infer", unit="frame")):
        if max_frames and n >= max_frames:
            break
        h, w = rgb.shape[:2]
        res = pipeline(rgb, intrinsics_for(w, h, **intr_args), t)
        frame, valid, report, rgb, intr = res.frame, res.valid, res.method, res.rgb, res.intrinsics
        report.update({k: v for k, v in res.post.items() if k.startswith("penetration")})
        records.append(frame_record(name, t, frame, valid, report))
        verts.append(frame.placed.vertices.astype(np.float32))
        found = report.get("found")
        caption = f"{name}: {int(valid.sum())} hand(s)" + (f", detector {found}" if found is not None else "")
        img = panel(rgb, frame.placed.vertices, frame.placed.joints, valid, faces, intr.matrix(), report.get("box"),
                    height=height, caption=caption, show_image=show_image)
        if kind == "images":
            target = out / f"{Path(name).stem}_hands.png"
            cv2.imwrite(str(target), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            written.append(str(target))
        else:
            if writer is None:
                target = out / f"{files[0].stem}_hands.mp4"
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps_out,
                                         (img.shape[1], img.shape[0]))
                written.append(str(target))
            writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if writer is not None:
        writer.release()
    if fmt == "npz":
        target = out / "hands.npz"
        np.savez_compressed(target, records=json.dumps(records), vertices=np.stack(verts),
                            faces_left=faces["left"], faces_right=faces["right"])
    else:
        target = out / "hands.json"
        target.write_text(json.dumps({"frames": records}, indent=1))
    written.append(str(target))
    return {"frames": len(records), "hands": int(sum(r["left"]["valid"] + r["right"]["valid"] for r in records)),
            "outputs": written}

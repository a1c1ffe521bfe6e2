"""``interhand infer PATH``: the node's processing on an image, a folder of images or a video.

Each frame goes through exactly what ``hands_node`` runs (``pipeline.Pipeline``: a
reconstruction method, then smoothing for videos and the interpenetration measure), with
intrinsics from ``--fx/--fy/--cx/--cy`` or an assumed field of view. Outputs, in ``--out``:

* per image ``<stem>_hands.png`` ([input with meshes, skeletons and boxes | side view] over a
  legend) and next to it ``<stem>_hands.json`` (or ``<stem>_hands.npz`` with the vertices):
  one :func:`frame_record`;
* per video ``<stem>_hands.mp4`` and ``<stem>_hands.json`` (or ``.npz``): the run's fields and
  ``frames``, one record per frame;
* ``summary.json``: the run (command, method, model, what the weights were trained on) and one
  line per input (hands valid, hands the detector found, its output files).

A folder that already holds these outputs is not written into without ``--force``
(:func:`check_out_dir`; with it, they are deleted first). MediaPipe's, TFLite's and absl's messages on the process's
standard error are kept out of the progress bar (:func:`native_stderr_to`).
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..hand_model.joints import SIDES
from ..pipeline.placement import Intrinsics, assumed_intrinsics, project_points

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
#: Files a run writes; a folder holding any of them holds a previous run's outputs.
OUTPUT_PATTERNS = ("*_hands.png", "*_hands.json", "*_hands.npz", "*_hands.mp4", "summary.json")
#: What the 3D and 2D numbers of a record are, written into every output.
UNITS = {"joints_3d": "metres, camera optical frame (x right, y down, z forward)",
         "joints_2d": "pixels of the image the method saw (the input; flipped back with --mirrored), "
                      "the 3D joints projected with `camera`",
         "boxes": "pixels; crop_box (cx, cy, side); detector boxes (x0, y0, x1, y1)",
         "pose": "48 axis-angle values: global orientation (3) + 15 finger joints x 3, mean pose included",
         "wrist_quaternion_xyzw": "rotation of the wrist frame in the camera frame"}


class OutputExists(FileExistsError):
    """The output folder holds a previous run's outputs (and ``force`` was not given)."""


@dataclass(frozen=True)
class RunInfo:
    """What ran, stamped into every output.

    Attributes:
        method: "dir" or "keypoint_fit".
        model: the model's id (checkpoint stem + hash, or the detector's version + fit).
        device: what it ran on.
        trained_on: the DIR weights' ``data.kind`` ("synthetic", "interhand26m", "unknown"), or
            None for a method without weights.
        mirrored: the inputs were mirrored and flipped back.
        command: the command line, for the summary.
    """

    method: str
    model: str
    device: str
    trained_on: str | None = None
    mirrored: bool = False
    command: str = ""


# ----------------------------------------------------------------------------- inputs
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


# ----------------------------------------------------------------------------- output folder
def previous_outputs(out: Path) -> list[Path]:
    """The files of :data:`OUTPUT_PATTERNS` in ``out`` (sorted; [] when it does not exist)."""
    if not out.is_dir():
        return []
    return sorted({p for pattern in OUTPUT_PATTERNS for p in out.glob(pattern) if p.is_file()})


def check_out_dir(out: Path, force: bool) -> list[Path]:
    """A previous run's outputs in ``out`` (:func:`previous_outputs`), which ``force`` allows
    replacing.

    Raises:
        OutputExists: there are some and ``force`` is False (the message names them).
    """
    old = previous_outputs(out)
    if old and not force:
        names = ", ".join(p.name for p in old[:3]) + (f" and {len(old) - 3} more" if len(old) > 3 else "")
        raise OutputExists(f"{out} already holds the outputs of a previous run ({names}); "
                           "choose another --out, or add --force to replace them")
    return old


def prepare_out_dir(out: Path) -> list[Path]:
    """Create ``out`` and delete a previous run's outputs there (only those: no run's files
    mix with another's); returns what was deleted. Call :func:`check_out_dir` first."""
    old = previous_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    for p in old:
        p.unlink()
    return old


# ----------------------------------------------------------------------------- records
def camera_record(intr: Intrinsics, hfov_deg: float | None = None) -> dict:
    """The camera the hands were placed and projected with; ``assumed`` and the assumed
    horizontal field of view (degrees) when it is not a calibration."""
    rec = {"fx": round(intr.fx, 3), "fy": round(intr.fy, 3), "cx": round(intr.cx, 3), "cy": round(intr.cy, 3),
           "width": int(intr.width), "height": int(intr.height), "assumed": bool(intr.assumed)}
    if intr.assumed and hfov_deg is not None:
        rec["assumed_hfov_deg"] = float(hfov_deg)
    return rec


def joints_2d(joints: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """(2, 21, 3) camera-frame joints (metres) -> (2, 21, 2) pixels (NaN behind the camera)."""
    return np.stack([project_points(j, intr) for j in joints])


def _r(a, digits: int) -> list:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


def hand_record(out, i: int) -> dict:
    """Hand ``i`` (0 left, 1 right) of a ``PipelineOutput``: valid, confidence, side, and for a
    valid hand joints_3d (21 x 3), joints_2d (21 x 2), wrist (3), wrist_quaternion_xyzw (4),
    pose (48), betas (10)."""
    frame, valid = out.frame, out.valid
    rec = {"side": SIDES[i], "valid": bool(valid[i]), "confidence": round(float(frame.confidence[i]), 4)}
    if valid[i]:
        p = frame.placed
        rec.update(joints_3d=_r(p.joints[i], 5), joints_2d=_r(joints_2d(p.joints[i:i + 1], out.intrinsics)[0], 2),
                   wrist=_r(p.wrist[i], 5), wrist_quaternion_xyzw=_r(p.wrist_quaternion[i], 6),
                   pose=_r(frame.pose[i], 5), betas=_r(frame.betas[i], 4))
    return rec


def frame_record(source: str, t: float, out, info: RunInfo, hfov_deg: float | None = None) -> dict:
    """JSON-friendly outputs of one frame (no vertices) of a ``PipelineOutput``.

    Keys: source, time_s, method, model, trained_on, camera (:func:`camera_record`),
    image_flipped (--mirrored), crop_box, hands_detected (None: no detector ran),
    detector_hands ([{side, score, box}]), hands ([left, right] :func:`hand_record`),
    right_minus_left (3,) metres when both are valid, penetration_cm3, stacking (DIR: the joint
    boxes' IoU and the confidence factor, ``pipeline.stacking``), units.
    """
    report, valid = out.method, out.valid
    box = report.get("box")
    rec = {"source": source, "time_s": round(t, 4), "method": info.method, "model": info.model,
           "trained_on": info.trained_on, "camera": camera_record(out.intrinsics, hfov_deg),
           "image_flipped": info.mirrored,
           "crop_box": None if box is None else _r(box, 2), "hands_detected": report.get("found"),
           "detector_hands": report.get("detections", []),
           "hands": [hand_record(out, i) for i in range(2)],
           "right_minus_left": _r(out.frame.placed.right_minus_left, 5) if valid.all() else None,
           "penetration_cm3": out.post["penetration"].values()["penetration_cm3"] if "penetration" in out.post else None}
    if "stacking" in report:
        rec["stacking"] = report["stacking"]
    rec["units"] = UNITS
    return rec


def missed_line(source: str, found: int | None, detections: list) -> str | None:
    """One line when the detector found fewer than two hands, None otherwise (or when no
    detector ran): which side it saw and which is missing, as far as known."""
    if found is None or found >= 2:
        return None
    if found == 0:
        return f"{source}: detector found no hand (nothing reconstructed)"
    seen = [d["side"] for d in detections]
    missing = [s for s in SIDES if s not in seen]
    return f"{source}: detector found 1 of 2 hands ({seen[0]} seen, {missing[0] if missing else '?'} missing)"


def legend_rows(info: RunInfo, found: int | None, camera_assumed: bool) -> list:
    """Legend of an overlay (``visualization.camera_overlay.legend_strip`` rows)."""
    from ..visualization.camera_overlay import CROP_BOX_COLOUR
    from ..visualization.overlay import SIDE_COLOURS

    rows = [[(SIDE_COLOURS["left"], "left hand"), (SIDE_COLOURS["right"], "right hand"),
             (None, "(mesh colour = side; dashed = detector box)"), (CROP_BOX_COLOUR, "crop box")]]
    det = "detector N = hands MediaPipe found (of 2);" if found is not None else "no detector ran;"
    trained = f" (weights trained on {info.trained_on})" if info.trained_on else ""
    cam = "camera assumed (--hfov)" if camera_assumed else "camera from --fx/--fy"
    rows.append([(None, det), (None, f"method {info.method}{trained};"), (None, cam)])
    return rows


def caption_for(source: str, valid: np.ndarray, found: int | None) -> str:
    """``photo.jpg: 2 hand(s), detector 1`` (the detector part only when one ran)."""
    return f"{source}: {int(valid.sum())} hand(s)" + (f", detector {found}" if found is not None else "")


# ----------------------------------------------------------------------------- writing
def write_record(target: Path, record: dict, arrays: dict | None = None) -> Path:
    """``target`` (.json: the record; .npz: ``record`` as a JSON string plus ``arrays``)."""
    if target.suffix == ".npz":
        np.savez_compressed(target, record=json.dumps(record), **(arrays or {}))
    else:
        target.write_text(json.dumps(record, indent=1))
    return target


def hand_arrays(out, faces: dict) -> dict:
    """The arrays of a frame for ``.npz``: vertices (2, V, 3) float32, joints_3d (2, 21, 3),
    joints_2d (2, 21, 2), valid (2,), confidence (2,), faces_left/right (F, 3)."""
    p = out.frame.placed
    return {"vertices": p.vertices.astype(np.float32), "joints_3d": p.joints.astype(np.float32),
            "joints_2d": joints_2d(p.joints, out.intrinsics).astype(np.float32), "valid": out.valid,
            "confidence": out.frame.confidence.astype(np.float32),
            "faces_left": faces["left"], "faces_right": faces["right"]}


@contextlib.contextmanager
def native_stderr_to(log, enabled: bool = True):
    """Send the process's standard error (file descriptor 2: what MediaPipe's C++ code, TFLite
    and absl print, and Python's warnings) to the open file ``log`` inside the block."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _frames(kind: str, files: list[Path]):
    """Yield (name, t (s), rgb (H, W, 3) uint8 or None when it cannot be decoded)."""
    if kind == "images":
        for i, f in enumerate(files):
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            yield f.name, float(i), None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return
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


def _video_props(path: Path) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(path))
    n, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS) or 30.0
    cap.release()
    return n, fps


def run_infer(path: str, make_pipeline, out_dir: str, intr_args: dict, info: RunInfo, fmt: str = "json",
              max_frames: int | None = None, height: int = 400, show_image: bool = True, quiet: bool = True,
              log=None, echo=None) -> dict:
    """Run a :class:`~interhand_perception.pipeline.pipeline.Pipeline` over PATH and write the
    overlays and the records (module docstring) into ``out_dir`` (prepared by
    :func:`prepare_out_dir` here; check it first with :func:`check_out_dir`).

    Args:
        make_pipeline: ``make_pipeline(video: bool) -> Pipeline`` (smoothing is for videos:
            the images of a folder are not a stream, and each image starts afresh).
        intr_args: ``intrinsics_for`` keyword arguments (fx, fy, cx, cy, hfov_deg).
        info: what runs (stamped into the outputs).
        height: the overlay's height in pixels (legend included).
        quiet: keep native messages (MediaPipe, TFLite, absl) off the terminal, into ``log``.
        log: an open file for them (default: a temporary file, dropped).
        echo: ``echo(line)`` for the per-image lines (default: ``tqdm.write``, above the bar).
    Returns:
        {"frames", "hands", "outputs": [paths], "missed": [lines], "skipped": [lines], "out": folder}.
    """
    from ..visualization.camera_overlay import panel

    echo = echo or tqdm.write
    kind, files = list_inputs(Path(path))
    out = Path(out_dir)
    prepare_out_dir(out)
    log = log or tempfile.TemporaryFile(mode="w+")
    with native_stderr_to(log, quiet):
        pipeline = make_pipeline(kind == "video")
    faces = pipeline.faces
    hfov = intr_args.get("hfov_deg") if intr_args.get("fx") is None else None
    records, arrays, written, missed, skipped, lines = [], [], [], [], [], []
    total, fps_out = (len(files), 30.0) if kind == "images" else _video_props(files[0])
    if max_frames:
        total = min(total, max_frames)
    writer, ext = None, ".npz" if fmt == "npz" else ".json"
    bar = tqdm(_frames(kind, files), total=total, desc="infer", unit="frame", file=sys.stderr, dynamic_ncols=True)
    for n, (name, t, rgb) in enumerate(bar):
        if max_frames and n >= max_frames:
            break
        if rgb is None:
            skipped.append(f"{name}: cannot be decoded as an image; skipped")
            echo(skipped[-1])
            continue
        h, w = rgb.shape[:2]
        with native_stderr_to(log, quiet):
            if kind == "images":
                pipeline.reset()
            res = pipeline(rgb, intrinsics_for(w, h, **intr_args), t)
        rec = frame_record(name, t, res, info, hfov)
        found = rec["hands_detected"]
        line = missed_line(name, found, rec["detector_hands"])
        if line:
            missed.append(line)
            if kind == "images":
                echo(line)
        dets = [(d["side"], d["box"]) for d in rec["detector_hands"]]
        img = panel(res.rgb, res.frame.placed.vertices, res.frame.placed.joints, res.valid, faces,
                    res.intrinsics.matrix(), res.method.get("box"), height=height,
                    caption=caption_for(name, res.valid, found), show_image=show_image, detections=dets,
                    legend=legend_rows(info, found, res.intrinsics.assumed))
        stem = Path(name).stem if kind == "images" else files[0].stem
        if kind == "images":
            target = out / f"{stem}_hands.png"
            cv2.imwrite(str(target), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            data = write_record(out / f"{stem}_hands{ext}", rec, hand_arrays(res, faces))
            written += [str(target), str(data)]
            lines.append({"source": name, "valid": [h["valid"] for h in rec["hands"]], "hands_detected": found,
                          "overlay": target.name, "record": data.name})
        else:
            if writer is None:
                target = out / f"{stem}_hands.mp4"
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps_out,
                                         (img.shape[1], img.shape[0]))
                written.append(str(target))
            writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            arrays.append(hand_arrays(res, faces))
        records.append(rec)
    bar.close()
    if writer is not None:
        writer.release()
    if kind == "video" and records:
        written.append(str(write_video_record(out / f"{files[0].stem}_hands{ext}", files[0].name, records, arrays,
                                              info, missed)))
        lines.append({"source": files[0].name, "frames": len(records), "overlay": Path(written[0]).name,
                      "record": Path(written[-1]).name, "frames_missing_hands": len(missed)})
    summary = {**asdict(info), "inputs": lines, "skipped": skipped}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    written.append(str(out / "summary.json"))
    return {"frames": len(records), "hands": int(sum(h["valid"] for r in records for h in r["hands"])),
            "outputs": written, "missed": missed, "skipped": skipped, "out": str(out.resolve())}


def write_video_record(target: Path, source: str, records: list, arrays: list, info: RunInfo, missed: list) -> Path:
    """A video's one output: the run's fields and ``frames`` (one :func:`frame_record` each);
    in ``.npz`` also the per-frame arrays stacked, (T, ...) (:func:`hand_arrays`)."""
    record = {"source": source, **asdict(info), "frames_missing_hands": missed, "frames": records}
    if target.suffix != ".npz":
        return write_record(target, record)
    stacked = {k: np.stack([a[k] for a in arrays]) for k in ("vertices", "joints_3d", "joints_2d", "valid", "confidence")}
    stacked.update(faces_left=arrays[0]["faces_left"], faces_right=arrays[0]["faces_right"])
    return write_record(target, record, stacked)

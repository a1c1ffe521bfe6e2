"""InterHand2.6M v1.0 annotation files and the compact index of the interacting frames.

Reads ``root/annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d,MANO_NeuralAnnot}.json``
once (see :mod:`interhand_perception.data.interhand26m` for the layout and the file contents),
keeps the frames the loader uses and caches the result as ``.npz``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import cv2
import numpy as np

from ..hand_model.joints import SIDES
from .interhand26m_geometry import IH_ROOT, NUM_IH_JOINTS, camera_extrinsics

SPLITS = ("train", "val", "test")
ANNOT_KINDS = ("data", "camera", "joint_3d", "MANO_NeuralAnnot")

_INDEX_VERSION = 1
_INDEX_MEMO: dict[str, "_FrameIndex"] = {}


class InterHandFilesMissing(FileNotFoundError):
    """The InterHand2.6M root, an annotation file or an image is not where it should be."""


def annotation_paths(root: str | os.PathLike, split: str) -> dict[str, Path]:
    """Paths of the four annotation files of ``split`` (whether or not they exist)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    d = Path(root) / "annotations" / split
    return {k: d / f"InterHand2.6M_{split}_{k}.json" for k in ANNOT_KINDS}


def check_layout(root: str | os.PathLike, split: str) -> dict[str, Path]:
    """Raise :class:`InterHandFilesMissing` naming everything that is missing; return the paths."""
    root = Path(root)
    paths = annotation_paths(root, split)
    layout = (
        "expected the official InterHand2.6M v1.0 layout:\n"
        f"  {root}/annotations/{split}/InterHand2.6M_{split}_data.json\n"
        f"  {root}/annotations/{split}/InterHand2.6M_{split}_camera.json\n"
        f"  {root}/annotations/{split}/InterHand2.6M_{split}_joint_3d.json\n"
        f"  {root}/annotations/{split}/InterHand2.6M_{split}_MANO_NeuralAnnot.json\n"
        f"  {root}/images/{split}/Capture*/<sequence>/cam*/image*.jpg\n"
        "(annotations from the 'InterHand2.6M.annotations.5.fps' archive, images from the 5 fps "
        "image archive; the dataset is licence-gated and is never downloaded by this package)"
    )
    if not root.is_dir():
        raise InterHandFilesMissing(f"InterHand2.6M root {root} does not exist or is not a directory; {layout}")
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if not (root / "images" / split).is_dir():
        missing.append(str(root / "images" / split) + "/")
    if missing:
        raise InterHandFilesMissing("InterHand2.6M files missing:\n  " + "\n  ".join(missing) + f"\n{layout}")
    return paths


def _load_json(path: Path) -> Any:
    with open(path, "r") as f:
        return json.load(f)


def _flat(v: Any, n: int, what: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.size != n:
        raise ValueError(f"{what}: expected {n} values, got {a.size}")
    return a


@dataclass
class _FrameIndex:
    """Compact, picklable index of the frames kept (numpy arrays only: cheap in workers)."""

    file_name: np.ndarray      # (N,) bytes (utf-8), relative to images/{split}
    image_id: np.ndarray       # (N,) int64
    capture: np.ndarray        # (N,) int64
    camera: np.ndarray         # (N,) bytes
    frame_idx: np.ndarray      # (N,) int64
    seq_name: np.ndarray       # (N,) bytes
    hand_type_valid: np.ndarray  # (N,) int64
    joint_valid: np.ndarray    # (N, 42) uint8 (per-image flag from data.json)
    frame_row: np.ndarray      # (N,) int64 -> joints_world / mano rows
    cam_row: np.ndarray        # (N,) int64 -> K / R / t rows
    joints_world: np.ndarray   # (F, 42, 3) float32, mm
    mano: np.ndarray           # (F, 2, 61) float32: pose 48, shape 10, trans 3 (left, right)
    K: np.ndarray              # (C, 3, 3) float64
    R: np.ndarray              # (C, 3, 3) float64
    t: np.ndarray              # (C, 3) float64, metres
    n_all: int
    n_interacting: int

    def __len__(self) -> int:
        return int(len(self.file_name))

    def subset(self, keep: np.ndarray) -> "_FrameIndex":
        keep = np.asarray(keep)
        per_image = ("file_name", "image_id", "capture", "camera", "frame_idx", "seq_name",
                     "hand_type_valid", "joint_valid", "frame_row", "cam_row")
        kw = {k: getattr(self, k)[keep] for k in per_image}
        return _FrameIndex(**kw, joints_world=self.joints_world, mano=self.mano, K=self.K, R=self.R,
                           t=self.t, n_all=self.n_all, n_interacting=self.n_interacting)

    def record(self, i: int) -> dict:
        """Plain-python description of image ``i`` (what ``frame_filter`` receives)."""
        return {
            "file_name": _text(self.file_name[i]), "image_id": int(self.image_id[i]),
            "capture": int(self.capture[i]), "camera": _text(self.camera[i]),
            "frame_idx": int(self.frame_idx[i]), "seq_name": _text(self.seq_name[i]),
            "hand_type": "interacting", "hand_type_valid": int(self.hand_type_valid[i]),
            "joint_valid": self.joint_valid[i].astype(bool),
        }

    def to_npz(self, path: Path) -> None:
        arrays = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("n_all", "n_interacting")}
        arrays["counts"] = np.array([self.n_all, self.n_interacting], dtype=np.int64)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def from_npz(cls, path: Path) -> "_FrameIndex":
        with np.load(path, allow_pickle=False) as z:
            kw = {k: z[k] for k in cls.__dataclass_fields__ if k not in ("n_all", "n_interacting")}
            counts = z["counts"]
        return cls(**kw, n_all=int(counts[0]), n_interacting=int(counts[1]))


def _bytes_array(items: list) -> np.ndarray:
    """Strings as a compact fixed-width bytes array (1 byte per character, not 4)."""
    return np.array([str(x).encode("utf-8") for x in items], dtype=bytes) if items else np.zeros(0, dtype="S1")


def _text(b: Any) -> str:
    return b.decode("utf-8") if isinstance(b, (bytes, np.bytes_)) else str(b)


def both_roots_valid(record: Mapping) -> bool:
    """A ``frame_filter``: both wrists annotated and inside the image (the official MRRPE rule)."""
    jv = np.asarray(record["joint_valid"], dtype=bool)
    return bool(jv[IH_ROOT["left"]] and jv[IH_ROOT["right"]])


def _is_interacting(ann: Mapping) -> bool:
    return ann.get("hand_type") == "interacting" and bool(ann.get("hand_type_valid", 0))


def _build_index(root: Path, split: str, min_image_mean: float | None) -> _FrameIndex:
    """Read the four JSON files once and keep the interacting frames with both MANO fits.

    A frame (one camera view) is kept when its annotation has ``hand_type == 'interacting'``,
    ``hand_type_valid`` is set and NeuralAnnot fits exist for both hands (the selection used by
    the IntagHand/DIR preprocessing). With ``min_image_mean`` images darker than that mean
    intensity are dropped as well (IntagHand/DIR drop means below 10); this reads every image.
    """
    paths = check_layout(root, split)
    data = _load_json(paths["data"])
    cams = _load_json(paths["camera"])
    joints = _load_json(paths["joint_3d"])
    manos = _load_json(paths["MANO_NeuralAnnot"])
    images = {img["id"]: img for img in data["images"]}

    rows: dict[str, list] = {k: [] for k in ("file_name", "image_id", "capture", "camera", "frame_idx",
                                            "seq_name", "hand_type_valid", "joint_valid", "frame_row", "cam_row")}
    frame_rows: dict[tuple[str, str], int] = {}
    cam_rows: dict[tuple[str, str], int] = {}
    jw_list, mano_list, K_list, R_list, t_list = [], [], [], [], []
    n_all = n_inter = 0
    for ann in data["annotations"]:
        n_all += 1
        if ann.get("hand_type") != "interacting":
            continue
        n_inter += 1
        if not _is_interacting(ann):
            continue
        img = images.get(ann["image_id"])
        if img is None:
            continue
        cap, frame, cam = str(img["capture"]), str(img["frame_idx"]), str(img["camera"])
        fits = manos.get(cap, {}).get(frame)
        if not fits or fits.get("left") is None or fits.get("right") is None:
            continue
        jent = joints.get(cap, {}).get(frame)
        if jent is None:
            continue
        if min_image_mean is not None:
            im = cv2.imread(str(root / "images" / split / img["file_name"]), cv2.IMREAD_GRAYSCALE)
            if im is None or float(im.mean()) < min_image_mean:
                continue
        key = (cap, frame)
        if key not in frame_rows:
            world = jent["world_coord"] if isinstance(jent, Mapping) else jent
            jw_list.append(_flat(world, NUM_IH_JOINTS * 3, f"joint_3d[{cap}][{frame}]").reshape(NUM_IH_JOINTS, 3))
            m = np.zeros((2, 61))
            for k, s in enumerate(SIDES):
                f = fits[s]
                m[k, :48] = _flat(f["pose"], 48, f"MANO[{cap}][{frame}][{s}].pose")
                m[k, 48:58] = _flat(f["shape"], 10, f"MANO[{cap}][{frame}][{s}].shape")
                m[k, 58:] = _flat(f["trans"], 3, f"MANO[{cap}][{frame}][{s}].trans")
            mano_list.append(m)
            frame_rows[key] = len(jw_list) - 1
        ckey = (cap, cam)
        if ckey not in cam_rows:
            cp = cams[cap]
            R, t = camera_extrinsics(cp["campos"][cam], cp["camrot"][cam])
            f = _flat(cp["focal"][cam], 2, "focal")
            c = _flat(cp["princpt"][cam], 2, "princpt")
            K_list.append(np.array([[f[0], 0.0, c[0]], [0.0, f[1], c[1]], [0.0, 0.0, 1.0]]))
            R_list.append(R)
            t_list.append(t)
            cam_rows[ckey] = len(K_list) - 1
        if "joint_valid" in ann:
            jv = _flat(ann["joint_valid"], NUM_IH_JOINTS, "joint_valid")
        elif isinstance(jent, Mapping) and "joint_valid" in jent:
            jv = _flat(jent["joint_valid"], NUM_IH_JOINTS, "joint_valid")
        else:
            jv = np.ones(NUM_IH_JOINTS)
        rows["file_name"].append(img["file_name"])
        rows["image_id"].append(int(img["id"]))
        rows["capture"].append(int(img["capture"]))
        rows["camera"].append(cam)
        rows["frame_idx"].append(int(img["frame_idx"]))
        rows["seq_name"].append(str(img.get("seq_name", "")))
        rows["hand_type_valid"].append(int(ann.get("hand_type_valid", 0)))
        rows["joint_valid"].append(jv > 0.5)
        rows["frame_row"].append(frame_rows[key])
        rows["cam_row"].append(cam_rows[ckey])

    def arr(v, dtype, shape_tail=()):
        return np.asarray(v, dtype=dtype) if len(v) else np.zeros((0,) + shape_tail, dtype=dtype)

    return _FrameIndex(
        file_name=_bytes_array(rows["file_name"]),
        image_id=arr(rows["image_id"], np.int64),
        capture=arr(rows["capture"], np.int64),
        camera=_bytes_array(rows["camera"]),
        frame_idx=arr(rows["frame_idx"], np.int64),
        seq_name=_bytes_array(rows["seq_name"]),
        hand_type_valid=arr(rows["hand_type_valid"], np.int64),
        joint_valid=arr(rows["joint_valid"], np.uint8, (NUM_IH_JOINTS,)),
        frame_row=arr(rows["frame_row"], np.int64),
        cam_row=arr(rows["cam_row"], np.int64),
        joints_world=arr(jw_list, np.float32, (NUM_IH_JOINTS, 3)),
        mano=arr(mano_list, np.float32, (2, 61)),
        K=arr(K_list, np.float64, (3, 3)),
        R=arr(R_list, np.float64, (3, 3)),
        t=arr(t_list, np.float64, (3,)),
        n_all=n_all,
        n_interacting=n_inter,
    )


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "interhand_perception" / "ih26m_index"


def _index_key(root: Path, split: str, min_image_mean: float | None) -> str:
    h = hashlib.sha1()
    h.update(f"v{_INDEX_VERSION}|{root.resolve()}|{split}|{min_image_mean}".encode())
    for p in annotation_paths(root, split).values():
        st = p.stat()
        h.update(f"|{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def load_frame_index(root: str | os.PathLike, split: str, *, min_image_mean: float | None = None,
                     cache_dir: str | os.PathLike | None = None, use_cache: bool = True) -> _FrameIndex:
    """The index of interacting frames of a split, built once.

    The index is memoised in the process and, with ``use_cache``, stored as ``.npz`` under
    ``cache_dir`` (default ``$XDG_CACHE_HOME/interhand_perception/ih26m_index``) keyed by the
    root, split, option and the annotation files' sizes and modification times.
    """
    root = Path(root)
    check_layout(root, split)
    key = _index_key(root, split, min_image_mean)
    if key in _INDEX_MEMO:
        return _INDEX_MEMO[key]
    cache_file = None
    if use_cache:
        cache_file = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        cache_file = cache_file / f"{split}_{key}.npz"
        if cache_file.is_file():
            try:
                idx = _FrameIndex.from_npz(cache_file)
                _INDEX_MEMO[key] = idx
                return idx
            except (OSError, KeyError, ValueError):
                pass  # unreadable cache: rebuild it
    idx = _build_index(root, split, min_image_mean)
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            idx.to_npz(cache_file)
        except OSError:
            pass  # a read-only cache location only costs a rebuild next time
    _INDEX_MEMO[key] = idx
    return idx


def interhand_frames_summary(root: str | os.PathLike, split: str, *,
                             frame_filter: Callable[[dict], bool] | None = None,
                             min_image_mean: float | None = None,
                             cache_dir: str | os.PathLike | None = None, use_cache: bool = True) -> dict:
    """Count the frames (camera views, one annotation each) of a split.

    Returns:
        ``{"split", "all", "interacting", "used"}``: all annotations; those with
        ``hand_type == 'interacting'``; those the loader uses (interacting, ``hand_type_valid``,
        NeuralAnnot fits for both hands, then ``frame_filter``).
    """
    idx = load_frame_index(root, split, min_image_mean=min_image_mean, cache_dir=cache_dir, use_cache=use_cache)
    used = len(idx)
    if frame_filter is not None:
        used = int(sum(bool(frame_filter(idx.record(i))) for i in range(len(idx))))
    return {"split": split, "all": idx.n_all, "interacting": idx.n_interacting, "used": used}

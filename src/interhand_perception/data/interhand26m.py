"""InterHand2.6M v1.0 loader (5 fps release, interacting-hand frames) producing the project's sample dict.

Layout expected under ``root`` (the official v1.0 layout, identical for the 5 fps and 30 fps
releases)::

    root/annotations/{split}/InterHand2.6M_{split}_data.json          COCO-style images + annotations
    root/annotations/{split}/InterHand2.6M_{split}_camera.json        per capture: campos/camrot/focal/princpt
    root/annotations/{split}/InterHand2.6M_{split}_joint_3d.json      per capture, per frame: world_coord (mm)
    root/annotations/{split}/InterHand2.6M_{split}_MANO_NeuralAnnot.json  per capture, per frame, per hand
    root/images/{split}/<image file_name>   e.g. Capture0/ROM01_No_Interaction_2_Hand/cam400262/image4010.jpg

Facts used (public sources):

* ``data.json``: ``images`` entries have ``id, file_name, width, height, capture, subject,
  seq_name, camera, frame_idx``; ``annotations`` entries have ``id, image_id, bbox, joint_valid``
  (42 values), ``hand_type`` (``right``/``left``/``interacting``), ``hand_type_valid``.
* ``camera.json``: ``cams[capture]['campos'|'camrot'|'focal'|'princpt'][camera]``; ``campos`` is
  the camera centre in world millimetres, ``camrot`` the world->camera rotation, so
  ``X_cam = camrot @ (X_world - campos)``.
* ``joint_3d.json``: ``joints[capture][frame_idx]['world_coord']`` (42 x 3, mm) and
  ``['joint_valid']``. The 42 joints are the right hand (0..20) then the left (21..41); per hand
  ``thumb4 (tip), thumb3, thumb2, thumb1, index4..1, middle4..1, ring4..1, pinky4..1, wrist``.
* ``MANO_NeuralAnnot.json``: ``mano[capture][frame_idx]['right'|'left']`` is ``None`` or
  ``{'pose': 48, 'shape': 10, 'trans': 3}`` in the WORLD frame, ``trans`` in metres, and ``pose``
  is "axis-angle minus the mean pose": the official tools feed it to ``smplx`` MANO layers created
  with ``use_pca=False`` and the default ``flat_hand_mean=False`` (the mean hand pose is added).

How a sample is built (see :meth:`InterHand26M.__getitem__`): the NeuralAnnot fits are moved into
the camera frame (:func:`mano_world_to_camera`), skinned by the hand model (vertices, and the 21
output joints taken from the model: 16 skinning joints + 5 tip vertices, the same definition the
network is trained and evaluated on), projected with the camera intrinsics, cropped with the DIR
rule (square around both hands' projected vertices, side = extent / 0.8) and resized to
``img_size``. The dataset's own 3D joint annotation is kept as ``joints3d_annot`` with its
validity ``joints_valid``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
import torch

from ..hand_model.joints import SIDES
from .crop import CROP_FILL, crop_image, crop_intrinsics, square_box, transform_points

SPLITS = ("train", "val", "test")
ANNOT_KINDS = ("data", "camera", "joint_3d", "MANO_NeuralAnnot")
NUM_IH_JOINTS = 42  # InterHand2.6M: 21 right + 21 left

#: For each of our 21 output joints, its index inside one InterHand2.6M hand block of 21
#: (``thumb4, thumb3, thumb2, thumb1, index4..1, middle4..1, ring4..1, pinky4..1, wrist``; "4" is
#: the tip, "1" the joint nearest the wrist).
IH_TO_OURS = np.array(
    [20,              # wrist
     3, 2, 1, 0,      # thumb  cmc(thumb1), mcp(thumb2), ip(thumb3), tip(thumb4)
     7, 6, 5, 4,      # index  mcp, pip, dip, tip
     11, 10, 9, 8,    # middle
     15, 14, 13, 12,  # ring
     19, 18, 17, 16], # little (pinky)
    dtype=np.int64,
)
#: Offset of each hand's block in the 42 InterHand2.6M joints.
IH_HAND_OFFSET = {"right": 0, "left": 21}
#: Wrist (root) index of each hand in the 42 InterHand2.6M joints.
IH_ROOT = {"right": 20, "left": 41}

_INDEX_VERSION = 1
_INDEX_MEMO: dict[str, "_FrameIndex"] = {}


class InterHandFilesMissing(FileNotFoundError):
    """The InterHand2.6M root, an annotation file or an image is not where it should be."""


# --------------------------------------------------------------------------------------------
# joint orders and coordinate frames
# --------------------------------------------------------------------------------------------

def ih42_to_ours(joints42: np.ndarray) -> np.ndarray:
    """Reorder InterHand2.6M's 42 joints (right block, left block) into ``(2, 21, ...)``.

    Args:
        joints42: (42, ...) array in the dataset's order.
    Returns:
        (2, 21, ...) array; index 0 = left, 1 = right; joints in ``JOINT_NAMES`` order.
    """
    j = np.asarray(joints42)
    if j.shape[0] != NUM_IH_JOINTS:
        raise ValueError(f"expected {NUM_IH_JOINTS} InterHand2.6M joints, got shape {j.shape}")
    return np.stack([j[IH_HAND_OFFSET[s] + IH_TO_OURS] for s in SIDES])


def ours_to_ih42(joints: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ih42_to_ours`: ``(2, 21, ...)`` (left, right) -> ``(42, ...)``."""
    j = np.asarray(joints)
    out = np.zeros((NUM_IH_JOINTS,) + j.shape[2:], dtype=j.dtype)
    for k, s in enumerate(SIDES):
        out[IH_HAND_OFFSET[s] + IH_TO_OURS] = j[k]
    return out


def camera_extrinsics(campos_mm: Sequence[float], camrot: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """World->camera ``(R, t)`` in metres from the dataset's ``campos`` (mm) and ``camrot``.

    ``X_cam = R @ X_world + t`` with ``X`` in metres and ``t = -R @ campos / 1000``.
    """
    R = np.asarray(camrot, dtype=np.float64).reshape(3, 3)
    c = np.asarray(campos_mm, dtype=np.float64).reshape(3) / 1000.0
    return R, -R @ c


def world_mm_to_camera_m(points_mm: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(N, 3) world millimetres -> (N, 3) camera metres."""
    return (np.asarray(points_mm, dtype=np.float64) / 1000.0) @ np.asarray(R).T + np.asarray(t)


def _rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    m, _ = cv2.Rodrigues(np.asarray(v, dtype=np.float64).reshape(3, 1))
    return m


def _matrix_to_rotvec(m: np.ndarray) -> np.ndarray:
    v, _ = cv2.Rodrigues(np.asarray(m, dtype=np.float64))
    return v.reshape(3)


def _hand_pose_for_model(model: Any, neural_pose45: np.ndarray) -> np.ndarray:
    """The 45 values to pass as ``hand_pose`` so that the model sees NeuralAnnot's full pose.

    NeuralAnnot stores "pose minus the mean pose" (``flat_hand_mean=False`` convention): the full
    finger rotations are ``hands_mean + pose``. A layer built with ``flat_hand_mean=False`` adds
    its mean itself; one built with ``flat_hand_mean=True`` needs it added here.
    """
    pose = np.asarray(neural_pose45, dtype=np.float64).reshape(45)
    if bool(getattr(model, "flat_hand_mean", False)):
        mean = _model_hands_mean(model)
        pose = pose + mean
    return pose


def _model_hands_mean(model: Any) -> np.ndarray:
    for name in ("hands_mean", "hand_mean"):
        v = getattr(model, name, None)
        if v is not None:
            return np.asarray(v.detach().cpu() if torch.is_tensor(v) else v, dtype=np.float64).reshape(45)
    data = getattr(model, "data", None)
    if data is not None and getattr(data, "hands_mean", None) is not None:
        return np.asarray(data.hands_mean, dtype=np.float64).reshape(45)
    raise AttributeError("hand model has flat_hand_mean=True but exposes no hands_mean")


def _model_device_dtype(model: Any) -> tuple[torch.device, torch.dtype]:
    for t in list(model.buffers()) + list(model.parameters()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


@torch.no_grad()
def rest_root_joint(model: Any, betas: np.ndarray) -> np.ndarray:
    """The rest-pose root (wrist) joint ``J0(betas)`` of a hand model, metres, model frame.

    The global rotation of MANO-style models turns the hand about this point. It depends on the
    shape only (``J0 = J_regressor[0] @ (v_template + shapedirs @ betas)``); it is read from the
    model's ``J_regressor`` / ``v_template`` / ``shapedirs`` buffers, or else from its output with
    zero global rotation and zero translation (the root joint is not moved by the finger pose).
    """
    beta = np.asarray(betas, dtype=np.float64).reshape(-1)
    bufs = [getattr(model, n, None) for n in ("J_regressor", "v_template", "shapedirs")]
    if all(torch.is_tensor(b) for b in bufs):
        jr, vt, sd = (b.detach().cpu().double().numpy() for b in bufs)
        n = min(len(beta), sd.shape[2])
        return jr[0] @ (vt + sd[:, :, :n] @ beta[:n])
    device, dtype = _model_device_dtype(model)
    b = torch.as_tensor(beta.reshape(1, -1), dtype=dtype, device=device)
    z3 = torch.zeros(1, 3, dtype=dtype, device=device)
    out = model(global_orient=z3, hand_pose=torch.zeros(1, 45, dtype=dtype, device=device),
                betas=b, transl=z3, pose_type="axis_angle")
    return out.joints[0, 0].detach().cpu().double().numpy()


def mano_world_to_camera(global_orient: np.ndarray, transl: np.ndarray, root_joint: np.ndarray,
                         R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Express a MANO fit given in the world frame in a camera frame.

    A MANO-style layer produces ``V = Rg (X - J0) + J0 + T``: ``X`` the shaped and posed hand
    before the global rotation, ``J0`` the rest root joint (a function of the shape), ``Rg`` the
    global orientation and ``T`` the translation. Applying the camera ``X_c = R X_w + t`` gives
    ``R Rg (X - J0) + R J0 + R T + t``; writing it again in the layer's form
    ``Rg' (X - J0) + J0 + T'`` yields::

        Rg' = R Rg
        T'  = R (T + J0) + t - J0

    (the rotation is about the root joint, not about the origin, hence the ``J0`` terms).

    Args:
        global_orient: (3,) world axis-angle.
        transl: (3,) world translation, metres.
        root_joint: (3,) ``J0`` of this hand's shape (:func:`rest_root_joint`), metres.
        R, t: world->camera rotation (3, 3) and translation (3,), metres.
    Returns:
        ``(global_orient_cam (3,), transl_cam (3,))`` float64.
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(3)
    j0 = np.asarray(root_joint, dtype=np.float64).reshape(3)
    rg = R @ _rotvec_to_matrix(global_orient)
    trans = R @ (np.asarray(transl, dtype=np.float64).reshape(3) + j0) + t - j0
    return _matrix_to_rotvec(rg), trans


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(..., 3) camera points -> (..., 2) pixels with intrinsics ``K``."""
    p = np.asarray(points, dtype=np.float64) @ np.asarray(K, dtype=np.float64).T
    return p[..., :2] / p[..., 2:3]


# --------------------------------------------------------------------------------------------
# files and the frame index
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# rendering of seg / dense (optional dependency on data.render)
# --------------------------------------------------------------------------------------------

def _render_module():
    try:
        from . import render  # noqa: WPS433 (optional sibling module, written separately)
    except ImportError:
        return None
    return render


# --------------------------------------------------------------------------------------------
# the dataset
# --------------------------------------------------------------------------------------------

def _resolve_models(hand_models: Any, mano_dir: str | os.PathLike | None) -> dict:
    if hand_models is not None:
        if isinstance(hand_models, Mapping):
            models = {s: hand_models[s] for s in SIDES}
        else:
            seq = list(hand_models)
            if len(seq) != 2:
                raise ValueError("hand_models must be {'left': m, 'right': m} or (left, right)")
            models = dict(zip(SIDES, seq))
        return models
    if mano_dir is None:
        raise ValueError(
            "InterHand26M needs the real MANO model: the NeuralAnnot fits in "
            "InterHand2.6M_<split>_MANO_NeuralAnnot.json are MANO pose/shape/translation parameters and "
            "only reproduce the hands when skinned with the official MANO_LEFT.pkl / MANO_RIGHT.pkl. "
            "Pass mano_dir=<folder holding them> (MANO is licence-gated: register at "
            "https://mano.is.tue.mpg.de), or pass hand_models={'left': ..., 'right': ...} explicitly "
            "(e.g. the built-in model in tests, whose meshes then do NOT match the images)."
        )
    from ..hand_model import load_hand_model  # noqa: WPS433 (late: the layer is heavy)
    return {s: load_hand_model(s, mano_dir=mano_dir) for s in SIDES}


class InterHand26M(torch.utils.data.Dataset):
    """InterHand2.6M v1.0 interacting-hand frames as the project's sample dicts.

    Args:
        root: dataset root holding ``annotations/`` and ``images/`` (official v1.0 layout).
        split: ``train``, ``val`` or ``test``.
        img_size: side S of the square crop.
        mano_dir: folder of the official MANO pickles; required unless ``hand_models`` is given.
        hand_models: ``{'left': HandModel, 'right': HandModel}`` (or a (left, right) pair) used
            instead of loading MANO from ``mano_dir``.
        max_samples: keep only the first N frames of the (sorted, filtered) index.
        frame_filter: extra predicate on :meth:`frame_info` records (dicts with ``file_name,
            image_id, capture, camera, frame_idx, seq_name, hand_type, hand_type_valid,
            joint_valid`` (42 bools, dataset order)), applied after the interacting-frame
            selection; e.g. :func:`both_roots_valid`.
        min_image_mean: drop images darker than this mean grey level (IntagHand/DIR used 10).
        render: render ``seg`` / ``dense`` with :mod:`interhand_perception.data.render` when it
            is available (otherwise they are zeros and ``seg_valid`` is False).
        cache_dir, use_cache: where the frame index is cached (see :func:`load_frame_index`).

    Each item is the dict of ``docs/architecture.md`` (sample format) plus:

    * ``joints3d_annot`` (2, 21, 3) float32: the dataset's own 3D joints (world mm -> camera m),
      in our joint order;
    * ``joints_valid`` (2, 21) bool: their validity (``joint_valid`` of ``data.json``, and a hand's
      joints all invalid when its wrist is, as in the official loader);
    * ``seg_valid`` bool: whether ``seg`` / ``dense`` were rendered.

    ``pose[:, 3:]`` holds the 45 values to pass as ``hand_pose`` to the hand models used here
    (for a ``flat_hand_mean=False`` layer that is NeuralAnnot's "pose minus the mean pose").
    """

    def __init__(self, root: str | os.PathLike, split: str = "test", img_size: int = 256,
                 mano_dir: str | os.PathLike | None = None, *, hand_models: Any = None,
                 max_samples: int | None = None, frame_filter: Callable[[dict], bool] | None = None,
                 min_image_mean: float | None = None, render: bool = True,
                 cache_dir: str | os.PathLike | None = None, use_cache: bool = True):
        super().__init__()
        self.root = Path(root)
        self.split = split
        self.img_size = int(img_size)
        self.image_dir = self.root / "images" / split
        check_layout(self.root, split)
        self.models = _resolve_models(hand_models, mano_dir)
        idx = load_frame_index(self.root, split, min_image_mean=min_image_mean, cache_dir=cache_dir,
                               use_cache=use_cache)
        if frame_filter is not None:
            keep = np.array([bool(frame_filter(idx.record(i))) for i in range(len(idx))], dtype=bool)
            idx = idx.subset(np.nonzero(keep)[0])
        if max_samples is not None:
            idx = idx.subset(np.arange(min(int(max_samples), len(idx))))
        self.index = idx
        self._render = bool(render) and _render_module() is not None
        self._root_cache: dict[tuple[str, bytes], np.ndarray] = {}
        self._dense_colours: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.index)

    def frame_info(self, i: int) -> dict:
        """Identification of sample ``i`` (capture, camera, frame index, file name, ...)."""
        return self.index.record(i)

    # -- geometry --------------------------------------------------------------------------

    def _root_joint(self, side: str, betas: np.ndarray) -> np.ndarray:
        key = (side, np.asarray(betas, dtype=np.float32).tobytes())
        j0 = self._root_cache.get(key)
        if j0 is None:
            if len(self._root_cache) > 4096:
                self._root_cache.clear()
            j0 = rest_root_joint(self.models[side], betas)
            self._root_cache[key] = j0
        return j0

    def camera_params(self, i: int) -> dict:
        """``K`` (3, 3), ``R`` (3, 3), ``t`` (3,) (metres) of sample ``i``'s full image."""
        c = int(self.index.cam_row[i])
        return {"K": self.index.K[c].copy(), "R": self.index.R[c].copy(), "t": self.index.t[c].copy()}

    def hands_in_camera(self, i: int) -> dict:
        """Both hands of sample ``i`` skinned in its camera frame (full image, no crop).

        Returns:
            dict with ``verts3d`` (2, V, 3), ``joints3d`` (2, 21, 3), ``pose`` (2, 48),
            ``betas`` (2, 10) as float64 arrays, plus ``K``, ``R``, ``t``.
        """
        cam = self.camera_params(i)
        fit = self.index.mano[int(self.index.frame_row[i])].astype(np.float64)
        verts, joints, poses, betas = [], [], [], []
        for k, side in enumerate(SIDES):
            model = self.models[side]
            pose48, shape, trans = fit[k, :48], fit[k, 48:58], fit[k, 58:]
            j0 = self._root_joint(side, shape)
            go_c, tr_c = mano_world_to_camera(pose48[:3], trans, j0, cam["R"], cam["t"])
            hp = _hand_pose_for_model(model, pose48[3:])
            device, dtype = _model_device_dtype(model)

            def as_t(a):
                return torch.as_tensor(np.asarray(a).reshape(1, -1), dtype=dtype, device=device)

            with torch.no_grad():
                out = model(global_orient=as_t(go_c), hand_pose=as_t(hp), betas=as_t(shape),
                            transl=as_t(tr_c), pose_type="axis_angle")
            verts.append(out.vertices[0].detach().cpu().double().numpy())
            joints.append(out.joints[0].detach().cpu().double().numpy())
            poses.append(np.concatenate([go_c, hp]))
            betas.append(shape)
        nv = {v.shape[0] for v in verts}
        if len(nv) != 1:
            raise ValueError(f"left and right hand models have different vertex counts: {sorted(nv)}")
        return {"verts3d": np.stack(verts), "joints3d": np.stack(joints), "pose": np.stack(poses),
                "betas": np.stack(betas), **cam}

    def annotated_joints(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The dataset's 3D joints of sample ``i`` in camera metres, ``(2, 21, 3)``, and validity ``(2, 21)``."""
        cam = self.camera_params(i)
        world = self.index.joints_world[int(self.index.frame_row[i])].astype(np.float64)
        cam_m = world_mm_to_camera_m(world, cam["R"], cam["t"])
        valid = self.index.joint_valid[i].astype(bool).copy()
        for s in SIDES:  # a hand's joints are unusable (root-relative) when its wrist is not valid
            o = IH_HAND_OFFSET[s]
            valid[o:o + 21] &= valid[IH_ROOT[s]]
        return ih42_to_ours(cam_m), ih42_to_ours(valid)

    # -- item ------------------------------------------------------------------------------

    def load_image(self, i: int) -> np.ndarray:
        name = _text(self.index.file_name[i])
        path = self.image_dir / name
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise InterHandFilesMissing(
                f"InterHand2.6M image {path} is missing or unreadable (listed in "
                f"annotations/{self.split}/InterHand2.6M_{self.split}_data.json as "
                f"{name!r}; images belong under {self.image_dir})")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def __getitem__(self, i: int) -> dict:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        S = self.img_size
        image = self.load_image(i)
        hands = self.hands_in_camera(i)
        K = hands["K"]
        v2d_full = project(hands["verts3d"], K)
        j2d_full = project(hands["joints3d"], K)
        box = square_box(v2d_full.reshape(-1, 2), fill=CROP_FILL)
        K_crop = crop_intrinsics(K, box, S)
        crop = crop_image(image, box, S)
        joints_annot, joints_valid = self.annotated_joints(i)

        seg = np.zeros((S, S), dtype=np.uint8)
        dense = np.zeros((S, S, 3), dtype=np.uint8)
        seg_valid = False
        if self._render:
            rendered = self._render_seg_dense(hands["verts3d"], K_crop, S)
            if rendered is not None:
                seg, dense = rendered
                seg_valid = True

        return {
            "image": np.ascontiguousarray(crop, dtype=np.uint8),
            "joints3d": hands["joints3d"].astype(np.float32),
            "verts3d": hands["verts3d"].astype(np.float32),
            "joints2d": transform_points(j2d_full, box, S).astype(np.float32),
            "verts2d": transform_points(v2d_full, box, S).astype(np.float32),
            "pose": hands["pose"].astype(np.float32),
            "betas": hands["betas"].astype(np.float32),
            "seg": seg,
            "dense": dense,
            "K": K_crop.astype(np.float32),
            "hand_valid": np.ones(2, dtype=bool),
            "joints3d_annot": joints_annot.astype(np.float32),
            "joints_valid": joints_valid.astype(bool),
            "seg_valid": np.bool_(seg_valid),
        }

    def _render_seg_dense(self, verts3d: np.ndarray, K_crop: np.ndarray, S: int):
        """Render ``seg`` (0 background, 1 left, 2 right) and ``dense`` with one z-buffer."""
        r = _render_module()
        if not all(hasattr(r, n) for n in ("concat_meshes", "rasterize", "interpolate")):
            return None
        models = [self.models[s] for s in SIDES]
        verts, faces, label = r.concat_meshes([(verts3d[k], np.asarray(m.faces)) for k, m in enumerate(models)])
        raster = r.rasterize(verts, faces, K_crop, (S, S))
        seg = np.where(raster.face_id >= 0, label[np.maximum(raster.face_id, 0)] + 1, 0).astype(np.uint8)
        if self._dense_colours is None:
            self._dense_colours = np.concatenate([dense_vertex_colours(m) for m in models])
        dense = r.interpolate(self._dense_colours, faces, raster)
        return seg, np.clip(np.rint(dense * 255.0), 0, 255).astype(np.uint8)


def dense_vertex_colours(model: Any) -> np.ndarray:
    """Dense-correspondence colour of each vertex: its rest-pose position normalised to [0, 1].

    The rest template of the right hand is scaled per axis to its bounding box; the left hand
    (the mirror image in x) is mirrored back first, so a vertex has the same colour on both hands.

    Returns:
        (V, 3) float32 in [0, 1].
    """
    v = getattr(model, "v_template")
    v = np.asarray(v.detach().cpu() if torch.is_tensor(v) else v, dtype=np.float64).copy()
    if getattr(model, "side", "right") == "left":
        v[:, 0] = -v[:, 0]
    lo, hi = v.min(axis=0), v.max(axis=0)
    return ((v - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)

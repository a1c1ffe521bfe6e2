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

Pose convention: the sample's ``pose`` (2, 48) is the camera-frame global orientation followed
by the FULL 45 axis-angle finger pose, the hand model's ``hands_mean`` INCLUDED, i.e. what a
``flat_hand_mean=True`` layer takes (the synthetic generator stores it the same way). NeuralAnnot
stores the pose minus the mean, so the loader adds the mean of the model that skins the fits.

Modules: :mod:`.interhand26m_geometry` (joint orders, camera frames, MANO world->camera),
:mod:`.interhand26m_index` (annotation files, frame selection, cached index) and this one (the
Dataset); every public name is importable from here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

import cv2
import numpy as np
import torch

from ..hand_model.joints import SIDES
from ..dir_net.crop import CROP_FILL, crop_image, crop_intrinsics, square_box, transform_points
# Re-exported: the public (and test-facing) names of the loader live on this module.
from .interhand26m_geometry import (  # noqa: F401
    IH_HAND_OFFSET, IH_ROOT, IH_TO_OURS, NUM_IH_JOINTS, _hand_pose_for_model,
    _model_device_dtype, _model_hands_mean, camera_extrinsics, ih42_to_ours,
    mano_world_to_camera, ours_to_ih42, rest_root_joint, world_mm_to_camera_m,
)
from .render import project  # noqa: F401  (the one pinhole projection of the project)
from .interhand26m_index import (  # noqa: F401
    _INDEX_MEMO, _INDEX_VERSION, ANNOT_KINDS, SPLITS, InterHandFilesMissing, _build_index, _FrameIndex,
    _text, annotation_paths, both_roots_valid, check_layout, default_cache_dir, interhand_frames_summary,
    load_frame_index,
)

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
            "(e.g. the built-in model in tests, whose meshes then do NOT match the images; in a run "
            "config that is data.fits_model: builtin, meant only for data made with it)."
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

    ``pose`` (2, 48) is the camera-frame global orientation + the FULL 45 axis-angle finger pose,
    the hand model's mean INCLUDED (NeuralAnnot's "pose minus the mean" + ``hands_mean``): it
    re-skins the sample's hands with a ``flat_hand_mean=True`` layer (``pose_type="axis_angle"``),
    the convention of the synthetic data. The hand models given here may be either kind; the
    NeuralAnnot pose is adapted to each when skinning.
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
            ``betas`` (2, 10) as float64 arrays, plus ``K``, ``R``, ``t``. ``pose`` is the
            full pose (hands mean included, see the class docstring).
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
            poses.append(np.concatenate([go_c, pose48[3:] + _model_hands_mean(model)]))
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

"""``HandReconstructor``: the inference API used by the CLI, the demo and the ROS 2 node.

It takes RGB uint8 crops in which both hands fill most of the image (the DIR crop, see
``dir_net.crop``), runs the network and returns, per hand, wrist-relative vertices and joints in
metres, hand-model parameters and the weak-perspective camera, plus the right-minus-left root
offset and a confidence. Placing the hands in the camera frame (metric, from intrinsics) is the
caller's job (the ROS node does it from camera_info and the crop geometry).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..devices import resolve_device
from ..dir_net.build import build_model
from ..dir_net.checkpoint import read_checkpoint
from ..dir_net.inputs import UNIT, ImageNormaliser
from ..dir_net.release_blocks import robust_rot6d_to_matrix
from ..hand_model.joints import JOINT_NAMES, SIDES
from ..hand_model.lbs import matrix_to_axis_angle, rot6d_to_matrix


@dataclass
class HandResult:
    """One hand of one image. Coordinates are wrist-relative, metres, in the camera's axes.

    Attributes:
        side: "left" or "right".
        vertices: (V, 3) mesh vertices.
        joints: (21, 3) joints in ``JOINT_NAMES`` order.
        joints2d: (21, 2) projected joints in crop pixels (weak perspective).
        global_orient: (3,) axis-angle of the wrist in the camera frame.
        hand_pose: (45,) axis-angle of the 15 finger joints (MANO order, mean pose included).
        pose_pca: (K,) the network's PCA coefficients.
        betas: (10,) shape.
        camera: (3,) weak-perspective ``(s, tx, ty)`` in normalised crop coordinates.
        confidence: in [0, 1], see :func:`hand_confidence`.
    """

    side: str
    vertices: np.ndarray
    joints: np.ndarray
    joints2d: np.ndarray
    global_orient: np.ndarray
    hand_pose: np.ndarray
    pose_pca: np.ndarray
    betas: np.ndarray
    camera: np.ndarray
    confidence: float


@dataclass
class TwoHandResult:
    """Both hands of one image, plus ``offset`` = right wrist minus left wrist (metres)."""

    left: HandResult
    right: HandResult
    offset: np.ndarray
    crop_size: int
    stage_joints: list = field(default_factory=list, repr=False)  # per stage {side: (21, 3)}

    def hand(self, side: str) -> HandResult:
        return self.left if side == "left" else self.right


def as_batch(images: np.ndarray, img_size: int) -> np.ndarray:
    """Validate RGB uint8 (H, W, 3) / (B, H, W, 3) crops and resize them to (B, S, S, 3)."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected RGB images (H, W, 3) or (B, H, W, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {arr.dtype}")
    if arr.shape[1:3] != (img_size, img_size):
        arr = np.stack([cv2.resize(a, (img_size, img_size), interpolation=cv2.INTER_AREA) for a in arr])
    return arr


def hand_confidence(seg_prob: torch.Tensor, verts2d: torch.Tensor, hand_index: int) -> torch.Tensor:
    """How well a predicted hand is supported by the network's own segmentation.

    The mean, over the hand's projected vertices, of the probability that the pixel belongs to
    *this* hand or is occluded by the *other* hand (any hand pixel), times the fraction of the
    hand's projected vertices that land inside the crop. A hand predicted over background scores
    near 0; a hand lying on hand pixels near 1.

    Args:
        seg_prob: (B, 3, h, w) softmax of the segmentation head (bg, left, right).
        verts2d: (B, V, 2) projected vertices in [-1, 1].
        hand_index: 1 for left, 2 for right (unused beyond documentation: both hand classes count).
    Returns:
        (B,) tensor in [0, 1].
    """
    hand_prob = seg_prob[:, 1:].sum(dim=1, keepdim=True)  # (B, 1, h, w)
    sampled = F.grid_sample(hand_prob, verts2d[:, :, None, :], mode="bilinear", align_corners=False)
    inside = (verts2d.abs() <= 1.0).all(dim=-1).to(seg_prob.dtype)  # (B, V)
    return (sampled[:, 0, :, 0] * inside).sum(dim=1) / inside.shape[1]


PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}  # name -> autocast dtype


class HandReconstructor:
    """DIR inference on RGB crops.

    Build it with :meth:`from_checkpoint`; call it on one crop (H, W, 3) or a batch (B, H, W, 3)
    of RGB uint8 images. Crops of another size are resized to the network's ``img_size``.

    The uint8 crops are copied to the device once, as they are; :meth:`network` normalises them
    there (``dir_net.inputs.ImageNormaliser``) and runs the forward, under autocast for fp16 /
    bf16 (the weights and the hand models stay fp32: ``DIRNet.decode`` runs the hand-model layer
    in fp32, since the mesh skinning loses millimetres in half precision).

    Attributes:
        autocast: None (fp32) or the autocast dtype (torch.float16 / torch.bfloat16).
        memory_format: of the network's input (``torch.channels_last`` when its weights are).
    """

    def __init__(self, model: torch.nn.Module, config: dict, hand_models: dict, device: torch.device,
                 autocast: torch.dtype | None = None):
        self.model = model.eval()
        self.config = config
        self.hand_models = hand_models
        self.device = device
        self.autocast = autocast
        self.dtype = torch.float32  # of the weights and of the network's input
        self.memory_format = torch.contiguous_format
        self.normaliser = ImageNormaliser().to(device)
        self.img_size = int(config["model"]["img_size"])
        self.joint_names = JOINT_NAMES
        self.faces = {s: np.asarray(hand_models[s].faces, dtype=np.int64) for s in SIDES}
        self.hand_model_ids = {s: getattr(hand_models[s], "fingerprint", "?") for s in SIDES}

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", mano_dir: str | None = None,
                        precision: str = "fp32") -> "HandReconstructor":
        """Load a checkpoint written by ``interhand train`` (config embedded).

        Args:
            path: ``.safetensors`` checkpoint.
            device: "auto", "cpu", "cuda" or "cuda:N".
            mano_dir: folder with MANO_{RIGHT,LEFT}.pkl; None uses the hand model the checkpoint
                was trained with when it is the built-in one, and errors clearly when it was MANO.
            precision: "fp32", "fp16" (CUDA only) or "bf16": the forward under autocast to that
                type (the CPU runs bf16 too, slowly unless it has bf16 units; the node allows
                it on CUDA only).
        """
        state, info = read_checkpoint(path)
        cfg = info["config"]
        trained_with = set(info.get("hand_models", {}).values())
        if mano_dir is None and any(str(t).startswith("mano") for t in trained_with):
            raise FileNotFoundError(
                f"{path} was trained with MANO ({sorted(trained_with)}) but no MANO directory was given: "
                "pass mano_dir (the folder holding MANO_RIGHT.pkl and MANO_LEFT.pkl).")
        cfg = {**cfg, "hand_model": {**cfg.get("hand_model", {}), "mano_dir": mano_dir}}
        dev = resolve_device(device) if device in ("auto", "cpu", "cuda") else torch.device(device)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "fp16" and dev.type != "cuda":
            raise ValueError("precision 'fp16' needs a CUDA device; use 'fp32' (or 'bf16') on the CPU")
        model, hand_models = build_model(cfg, dev)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        rec = cls(model, cfg, hand_models, dev, PRECISIONS[precision])
        rec.checkpoint_path = str(path)
        rec.checkpoint_info = info
        return rec

    def upload(self, images: np.ndarray) -> torch.Tensor:
        """RGB uint8 (B, H, W, 3) or (H, W, 3) -> (B, S, S, 3) uint8 tensor on the device (one copy;
        none on the CPU, where the tensor shares the array's memory)."""
        return torch.from_numpy(np.ascontiguousarray(as_batch(images, self.img_size))).to(self.device)

    def network(self, images: torch.Tensor) -> dict:
        """The network output dict (see ``DIRNet.forward``) for (B, S, S, 3) uint8 crops on the device:
        normalise, then the forward (under autocast when ``autocast`` is set). Pure tensor work, so a
        CUDA graph can capture it whole."""
        x = self.normaliser(images).contiguous(memory_format=self.memory_format)
        if self.autocast is None:
            return self.model(x)
        # no cast cache: a cached cast made outside a CUDA graph capture would be freed under the
        # graph (torch's CUDA-graph notes); each weight is cast once per forward anyway
        with torch.autocast(device_type=self.device.type, dtype=self.autocast, cache_enabled=False):
            return self.model(x)

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """RGB uint8 (B, H, W, 3) or (H, W, 3) -> normalised (B, 3, S, S) float32 tensor on the device."""
        return self.normaliser(self.upload(images))

    @torch.inference_mode()
    def forward_raw(self, images: np.ndarray) -> dict:
        """Network output dict (see ``DIRNet.forward``) for RGB uint8 crops."""
        return self.network(self.upload(images))

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> TwoHandResult | list[TwoHandResult]:
        """Reconstruct both hands in one crop (H, W, 3) or a batch (B, H, W, 3)."""
        single = np.asarray(images).ndim == 3
        pred = self.forward_raw(images)
        results = self.postprocess(pred)
        return results[0] if single else results

    def postprocess(self, pred: dict) -> list[TwoHandResult]:
        """Convert the final stage of a network output into :class:`TwoHandResult` objects.

        The tensor work runs where the network ran; everything the results hold then crosses to
        the host in one copy (:func:`to_host`), not one synchronising copy per array."""
        return self.results(to_host(self.result_tensors(pred)))

    def result_tensors(self, pred: dict) -> dict[str, torch.Tensor]:
        """What the results hold, as tensors where the network ran: {name: (B, ...) float32}.

        Names: ``offset`` (metres), ``<side>.<field>`` for :data:`HAND_ARRAYS` and
        ``confidence``, ``stage<t>.<side>`` (joints of stage t). Pure tensor work, no host
        round trip: a CUDA graph captures it with the network (``PyTorchBackend``)."""
        last = pred["stages"][-1]
        seg_prob = torch.softmax(pred["seg"].float(), dim=1)
        sl = self.model.config.param_slices  # layout depends on num_pca / num_betas
        release = getattr(self.model.config, "variant", "project") == "release"
        to_matrix = robust_rot6d_to_matrix if release else rot6d_to_matrix  # as the network decodes
        tensors = {"offset": last["offset"].float() * UNIT}
        for i, side in enumerate(SIDES):
            params = last["params"][side].float()
            tensors.update({
                f"{side}.vertices": last["verts"][side].float(),
                f"{side}.joints": last["joints"][side].float(),
                f"{side}.joints2d": (last["joints2d"][side].float() + 1.0) * (self.img_size / 2.0),
                f"{side}.global_orient": matrix_to_axis_angle(to_matrix(params[:, sl["rot6d"]])),
                f"{side}.hand_pose": self.hand_models[side].hand_pose_to_axis_angle(params[:, sl["pose"]], "pca"),
                f"{side}.pose_pca": params[:, sl["pose"]],
                f"{side}.betas": params[:, sl["betas"]],
                f"{side}.camera": last["camera"][side].float(),
                f"{side}.confidence": hand_confidence(seg_prob, last["verts2d"][side].float(), i + 1),
            })
            tensors.update({f"stage{t}.{side}": st["joints"][side].float() for t, st in enumerate(pred["stages"])})
        return tensors

    def results(self, host: dict[str, np.ndarray]) -> list[TwoHandResult]:
        """:meth:`result_tensors`' arrays on the host -> one :class:`TwoHandResult` per image."""
        num_stages = sum(1 for k in host if k.startswith("stage") and k.endswith(".left"))
        out = []
        for b in range(host["offset"].shape[0]):
            hands = {s: HandResult(side=s, confidence=float(host[f"{s}.confidence"][b]),
                                   **{k: host[f"{s}.{k}"][b] for k in HAND_ARRAYS}) for s in SIDES}
            out.append(TwoHandResult(left=hands["left"], right=hands["right"], offset=host["offset"][b],
                                     crop_size=self.img_size,
                                     stage_joints=[{s: host[f"stage{t}.{s}"][b] for s in SIDES}
                                                   for t in range(num_stages)]))
        return out


#: The array fields of :class:`HandResult`, as ``postprocess`` fills them.
HAND_ARRAYS = ("vertices", "joints", "joints2d", "global_orient", "hand_pose", "pose_pca", "betas", "camera")


def pack(tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, tuple]:
    """Tensors with one leading batch axis, on one device -> one (B, N) float32 tensor and its
    layout ((name, shape without the batch axis), ...) for :func:`unpack`."""
    names = list(tensors)
    batch = tensors[names[0]].shape[0]
    flat = torch.cat([tensors[n].float().reshape(batch, -1) for n in names], dim=1)
    return flat, tuple((n, tuple(tensors[n].shape[1:])) for n in names)


def unpack(flat: np.ndarray, layout: tuple) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack` on the host: (B, N) array -> {name: (B, ...) views into it}."""
    out, start = {}, 0
    for name, shape in layout:
        size = int(np.prod(shape, dtype=np.int64))
        out[name] = flat[:, start:start + size].reshape(flat.shape[0], *shape)
        start += size
    return out


def to_host(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Tensors with one leading batch axis, on one device -> float32 NumPy arrays, in one copy.

    Args:
        tensors: {name: (B, ...) tensor}.
    Returns:
        {name: (B, ...) float32 array}, views into one (B, N) array.
    """
    flat, layout = pack(tensors)
    return unpack(flat.cpu().numpy(), layout)

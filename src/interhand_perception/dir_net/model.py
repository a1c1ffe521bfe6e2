"""DIRNet: encoder, initial estimate and T decoupled refinement stages (paper section 3).

Data flow (S = img_size, T = num_stages):

* encoder -> c2 (S/4), c3 (S/8), c4 (S/16), c5 (S/32)
* initial estimate from c5 (attention split, regression, offset) -> stage 0
* decoder map x0 = reduce(c5) (width channels, S/32); stage t in 1..T:
  prev map = x_{t-1} upsampled to the stage resolution (S/16, S/8, S/8), skip = c4, c3,
  avgpool(c2); fused = Fuse(prev, skip); joint tokens sampled from fused at the previous 2D
  joints + coordinate embedding; GCN per hand; transformer over 42 tokens; residual
  parameter update; hand models; x_t = fused + MFP(new 2D joints, joint features).
* pixel heads on x_T resized to S/8.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..hand_model.joints import NUM_JOINTS, SIDES
from ..hand_model.layer import HandModel, HandPair, pairable
from ..hand_model.lbs import rot6d_to_matrix
from .config import DIRConfig
from .inputs import UNIT
from .gcn import IntraHandGCN
from .heads import (InitialRegressor, ParamUpdate, PixelHeads, decode_camera, project_weak_perspective,
                    upsample)
from .mfp import MultiPlaneProjection, splat_radius
from .resnet import ResNetEncoder
from .transformer import InterHandTransformer


class ResidualBlock(nn.Module):
    """``ReLU(x + BN(conv3x3(ReLU(BN(conv3x3(x))))))``. (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class FuseBlock(nn.Module):
    """Concatenate the previous map and the encoder skip, 1x1 conv to ``width``, residual block.

    Forward: prev (B, width, h, w), skip (B, C_skip, h, w) -> (B, width, h, w).
    """

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.res = ResidualBlock(width)

    def forward(self, prev: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.res(self.proj(torch.cat([prev, skip], dim=1)))


def sample_joint_features(fmap: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling at 2D joints. fmap (B, C, h, w), uv (B, J, 2) in [-1, 1] -> (B, J, C)."""
    out = F.grid_sample(fmap, uv[:, None], mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, :, 0].transpose(1, 2)


class RefinementStage(nn.Module):
    """One decoupled refinement stage (paper 3.2).

    Args:
        cfg: network configuration; skip_channels: channels of the encoder skip map;
        stride: stride of this stage's map (16 or 8), which sets the MFP footprint.
    Forward:
        prev_map (B, width, h, w) already at this stage's resolution; skip (B, C_skip, h, w);
        prev: the previous stage dict (see :meth:`DIRNet.forward`); decode: callable
        ``(params {side: (B, P)}, offset (B, 3)) -> stage dict``.
        returns (map (B, width, h, w), stage dict).
    """

    def __init__(self, cfg: DIRConfig, skip_channels: int, stride: int) -> None:
        super().__init__()
        d, width = cfg.joint_dim, cfg.width
        self.radius = splat_radius(stride)
        self.map_size = (cfg.img_size // stride, cfg.img_size // stride)
        self.fuse = FuseBlock(width + skip_channels, width)
        self.visual = nn.ModuleDict({
            s: nn.Sequential(nn.Linear(width, d), nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, d)) for s in SIDES
        })
        self.coord = nn.Sequential(nn.Linear(3, d), nn.ReLU(), nn.Linear(d, d))
        self.gcn = (
            nn.ModuleDict({s: IntraHandGCN(d, cfg.gcn_layers, node_weights=cfg.gcn_node_weights) for s in SIDES})
            if cfg.use_gcn else None
        )
        self.transformer = (
            InterHandTransformer(2 * NUM_JOINTS, d, cfg.tf_layers, cfg.tf_heads, cfg.tf_mlp_ratio)
            if cfg.use_transformer else None
        )
        self.to_mfp = nn.Linear(d, cfg.mfp_channels)
        self.update = ParamUpdate(cfg.mfp_channels, cfg.num_params, NUM_JOINTS)
        self.mfp = MultiPlaneProjection(cfg.mfp_mode, cfg.mfp_channels, width, cfg.mfp_kernel, self.map_size)

    def joint_tokens(self, fused: torch.Tensor, prev: dict) -> dict:
        """{side: (B, 21, joint_dim)} = J_visual + J_coord (both hands in one 3D space).

        What shares weights runs once on the 42 joints of both hands (the feature sampling, the
        coordinate embedding); the per-side visual MLPs run on their 21."""
        half = prev["offset"].detach()[:, None, :] / 2.0  # (B, 1, 3), units of 0.15 m
        uv = torch.cat([prev["joints2d"][s].detach() for s in SIDES], dim=1)  # (B, 42, 2)
        shift = {"left": -half, "right": half}
        xyz = torch.cat([prev["joints"][s].detach() / UNIT + shift[s] for s in SIDES], dim=1)  # (B, 42, 3)
        sampled = sample_joint_features(fused, uv).split(NUM_JOINTS, dim=1)  # 2 x (B, 21, width)
        coord = self.coord(xyz).split(NUM_JOINTS, dim=1)  # 2 x (B, 21, d)
        return {s: self.visual[s](sampled[i]) + coord[i] for i, s in enumerate(SIDES)}

    def forward(self, prev_map: torch.Tensor, skip: torch.Tensor, prev: dict,
                decode: Callable[[dict, torch.Tensor], dict]) -> tuple[torch.Tensor, dict]:
        fused = self.fuse(prev_map, skip)
        tokens = self.joint_tokens(fused, prev)
        if self.gcn is not None:
            tokens = {s: self.gcn[s](tokens[s]) for s in SIDES}
        both = torch.cat([tokens[s] for s in SIDES], dim=1)  # (B, 42, d)
        if self.transformer is not None:
            both = self.transformer(both)
        feats = dict(zip(SIDES, self.to_mfp(both).split(NUM_JOINTS, dim=1)))  # one shared projection
        params, offset = self.update(feats, prev["params"], prev["offset"])
        out = decode(params, offset)
        return self.mfp(fused, out["joints2d"], feats, self.radius, self.map_size), out


def check_images(images: torch.Tensor, size: int) -> None:
    """Refuse anything but (B, 3, size, size) (not while tracing for export)."""
    if not torch.jit.is_tracing() and (images.dim() != 4 or images.shape[1] != 3
                                       or tuple(images.shape[-2:]) != (size, size)):
        raise ValueError(f"expected images (B, 3, {size}, {size}), got {tuple(images.shape)}")


class DIRNet(nn.Module):
    """Decoupled Iterative Refinement network for two interacting hands.

    Args:
        config: :class:`DIRConfig`.
        hand_models: {"left": HandModel, "right": HandModel}; each called as
            ``m(global_orient, hand_pose, betas, pose_type="pca", rot_type="6d")`` and returning
            ``.joints`` (B, 21, 3) and ``.vertices`` (B, V, 3). Registered as submodules.
    Forward:
        images: (B, 3, S, S) ImageNet-normalised crop.
        returns dict:
            "stages": list of T + 1 dicts (0 = initial estimate), each with
                "params" {side: (B, P)} (layout: heads.py; camera stored raw),
                "offset" (B, 3) right root - left root in units of 0.15 m,
                "joints" {side: (B, 21, 3)} and "verts" {side: (B, V, 3)} wrist-relative metres,
                "joints2d" {side: (B, 21, 2)}, "verts2d" {side: (B, V, 2)} in [-1, 1],
                "camera" {side: (B, 3)} decoded ``(s, tx, ty)``, s > 0;
            "seg": (B, 3, S/8, S/8) logits (background, left, right);
            "dense": (B, 3, S/8, S/8) in (0, 1);
            "attention": {side: (B, 1, S/32, S/32)} in (0, 1);
            "attention_logits": {side: (B, 1, S/32, S/32)}, the attention before its sigmoid.

    Both hands are decoded in one call of ``hand_pair`` (a :class:`HandPair` of the two models,
    non-persistent buffers only) when the models can be paired, else one side at a time
    (:meth:`decode_each`). The forward builds no tensor from host data, reads no value back and
    rebuilds no constant (indices and grids are buffers), so it can be captured as one CUDA
    graph or one ``torch.compile(fullgraph=True)`` graph (tests/test_compile.py).

    Mixed precision: under autocast (bf16/fp16) the convolutions and linear layers run in the
    low precision, but :meth:`decode` (hand models, camera, projection) runs in float32 with
    autocast disabled and returns float32 tensors: skinning subtracts nearby vertex positions
    (edges, normals, wrist-relative coordinates), which bf16's 8-bit mantissa cannot resolve.
    """

    def __init__(self, config: DIRConfig, hand_models: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if set(hand_models) != set(SIDES):
            raise ValueError(f"hand_models needs exactly the keys {SIDES}, got {sorted(hand_models)}")
        self.config = config
        cfg = config
        c2, c3, c4, c5 = cfg.encoder_channels
        self.backbone = ResNetEncoder(cfg.backbone)
        self.initial = InitialRegressor(c5, cfg.attention_channels, cfg.num_pca, cfg.num_betas)
        self.reduce = nn.Sequential(nn.Conv2d(c5, cfg.width, 1, bias=False), nn.BatchNorm2d(cfg.width), nn.ReLU())
        skips = (c4, c3, c2)
        self.stages = nn.ModuleList(
            RefinementStage(cfg, skips[t], stride) for t, stride in enumerate(cfg.stage_strides())
        )
        self.heads = PixelHeads(cfg.width)
        self.hand_models = nn.ModuleDict({s: hand_models[s] for s in SIDES})
        self.hand_pair = self.build_hand_pair(hand_models)

    def build_hand_pair(self, hand_models: Mapping[str, nn.Module]) -> HandPair | None:
        """Both hand models as one batched :class:`HandPair` (non-persistent buffers only: the
        state dict is unchanged), or None when they cannot be paired (other modules than
        :class:`HandModel`, different topologies): :meth:`decode` then calls them one by one."""
        left, right = (hand_models[s] for s in SIDES)
        if not pairable(left, right, self.config.num_betas):
            return None
        return HandPair(left, right, self.config.num_betas, self.pair_tip_ids(hand_models))

    def pair_tip_ids(self, hand_models: Mapping[str, nn.Module]) -> dict | None:
        """{side: 5 fingertip vertex ids} for the :class:`HandPair`; None: the models' own."""
        return None

    def root_rotation(self, rot6d: torch.Tensor) -> torch.Tensor:
        """(..., 6) predicted root rotation -> (..., 3, 3) matrices (Gram-Schmidt, as the models' "6d")."""
        return rot6d_to_matrix(rot6d)

    def camera(self, raw: torch.Tensor) -> torch.Tensor:
        """(..., 3) raw camera numbers -> (..., 3) ``(s, tx, ty)`` (:func:`decode_camera`)."""
        return decode_camera(raw)

    def decode(self, params: dict, offset: torch.Tensor) -> dict:
        """Run the hand models and the camera on parameters -> one stage dict (see forward).

        Under autocast the parameters are cast to float32 and decoded with autocast disabled
        (the stage dict then holds float32 tensors); otherwise nothing is cast.
        """
        device_type = offset.device.type
        if torch.is_autocast_enabled(device_type):
            with torch.autocast(device_type=device_type, enabled=False):
                return self._decode({s: params[s].float() for s in SIDES}, offset.float())
        return self._decode(params, offset)

    def _decode(self, params: dict, offset: torch.Tensor) -> dict:
        """:meth:`decode` in the tensors' own precision: both hands in one batched hand-model
        call (:meth:`decode_pair`), or one after the other (:meth:`decode_each`) for models that
        cannot be paired."""
        if self.hand_pair is None:
            return self.decode_each(params, offset)
        return self.decode_pair(params, offset)

    def decode_pair(self, params: dict, offset: torch.Tensor) -> dict:
        """Stage dict from the :class:`HandPair`: the sides stacked on axis 1, split at the end.

        ``params`` {side: (B, P)}, ``offset`` (B, 3) -> stage dict (see :meth:`forward`).
        """
        sl = self.config.param_slices
        p = torch.stack([params[s] for s in SIDES], dim=1)  # (B, 2, P)
        verts, joints = self.hand_pair(self.root_rotation(p[..., sl["rot6d"]]), p[..., sl["pose"]],
                                       p[..., sl["betas"]])  # (B, 2, V, 3), (B, 2, 21, 3)
        root = joints[:, :, :1]
        joints, verts = joints - root, verts - root
        cam = self.camera(p[..., sl["camera"]])  # (B, 2, 3)
        joints2d, verts2d = project_weak_perspective(joints, cam), project_weak_perspective(verts, cam)
        out = {"params": params, "offset": offset}
        for key, value in (("joints", joints), ("verts", verts), ("joints2d", joints2d), ("verts2d", verts2d),
                           ("camera", cam)):
            out[key] = dict(zip(SIDES, value.unbind(1)))
        return out

    def side_joints(self, side: str, joints: torch.Tensor, verts: torch.Tensor) -> torch.Tensor:
        """The 21 output joints of one side's model output in :meth:`decode_each` (B, 21, 3); the
        models' own here (the release variant reads one tip elsewhere)."""
        return joints

    def decode_each(self, params: dict, offset: torch.Tensor) -> dict:
        """Stage dict from the hand models called one side at a time (any hand-model module),
        with the same hooks as :meth:`decode_pair` (:meth:`root_rotation`, :meth:`camera`)."""
        sl = self.config.param_slices
        out = {"params": params, "offset": offset, "joints": {}, "verts": {}, "joints2d": {},
               "verts2d": {}, "camera": {}}
        for s in SIDES:
            p = params[s]
            hand = self.hand_models[s]
            extra = {"compute_full_pose": False} if isinstance(hand, HandModel) else {}
            res = hand(self.root_rotation(p[:, sl["rot6d"]]), p[:, sl["pose"]], p[:, sl["betas"]], pose_type="pca",
                       rot_type="matrix", **extra)
            joints = self.side_joints(s, res.joints, res.vertices)
            root = joints[:, :1]
            joints, verts = joints - root, res.vertices - root
            cam = self.camera(p[:, sl["camera"]])
            out["joints"][s], out["verts"][s], out["camera"][s] = joints, verts, cam
            out["joints2d"][s] = project_weak_perspective(joints, cam)
            out["verts2d"][s] = project_weak_perspective(verts, cam)
        return out

    def forward(self, images: torch.Tensor) -> dict:
        check_images(images, self.config.img_size)
        c2, c3, c4, c5 = self.backbone(images)
        init = self.initial(c5)
        stages = [self.decode(init["params"], init["offset"])]
        x, stride = self.reduce(c5), 32
        skips = [c4, c3, F.avg_pool2d(c2, 2)]
        for t, (stage, target) in enumerate(zip(self.stages, self.config.stage_strides())):
            x, out = stage(upsample(x, stride // target), skips[t], stages[-1], self.decode)
            stages.append(out)
            stride = target
        seg, dense = self.heads(upsample(x, stride // 8))
        return {"stages": stages, "seg": seg, "dense": dense, "attention": init["attention"],
                "attention_logits": init["attention_logits"]}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters, excluding anything under ``hand_models`` (fixed hand models)."""
    return sum(
        p.numel() for name, p in model.named_parameters()
        if not name.startswith("hand_models.") and (p.requires_grad or not trainable_only)
    )

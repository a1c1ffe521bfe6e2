"""The release variant of DIR: the network of the authors' public release, for their weights.

``DIRConfig(variant="release")`` builds :class:`ReleaseDIRNet`. It shares the project's
backbone, attention split + initial regressor and pixel heads (same structure), and uses the
release's own versions of the rest (one small module each, see release_*.py):

* decoder trunk per stage: ``skip = PreActResidual(c_skip -> W)(encoder map)``,
  ``fused = PreActResidual(c_prev + W -> W)([up2(prev map), skip])`` (the first stage upsamples
  the raw stride-32 backbone map, 2048 channels), then the joint interaction, then
  ``map = PreActResidual(2W -> W)([fused, planes])``; two stages (stride 16, stride 8);
* joint interaction (:class:`ReleaseJointInteraction`), per hand: ``PointMLP`` on features
  sampled at the previous 2D joints + a per-hand local coordinate embedding of ``xyz / 0.15``,
  the semantic GCN, + a shared global coordinate embedding of ``xyz / 0.15 -+ offset / 2``;
  the block-skipping transformer over 42 tokens (128 -> 64); an *absolute* parameter update
  from ``[features, previous parameters]``; the projected-feature ``PointMLP``; bone planes
  blended by endpoint distance; ``Conv3x3 (2560 -> W), BN, ReLU, Conv1x1``;
* decoding: raw weak-perspective camera ``(s, tx, ty)``, robust 6D root rotation, the left
  hand's middle fingertip at MANO vertex 445 (the right's stays 444), wrist-relative outputs;
* dense map without a sigmoid (the release regresses it directly).

Every stage input (joints, 2D joints, parameters, offset) is detached, as in the release.
The output dict has the layout of :class:`~interhand_perception.dir_net.model.DIRNet`.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from ..hand_model.joints import NUM_JOINTS, NUM_SKIN_JOINTS, SIDES, SKIN_TO_OUTPUT
from .config import DIRConfig
from .heads import CAMERA_S0, InitialRegressor, ParamUpdate, PixelHeads, upsample
from .mfp import cell_centres, splat_radius
from .inputs import UNIT
from .model import DIRNet, check_images, sample_joint_features
from .release_blocks import PointMLP, PreActResidual, robust_rot6d_to_matrix
from .release_gcn import SemanticGCN
from .release_mfp import bone_index, bone_planes
from .release_transformer import BlockSkippingTransformer
from .resnet import ResNetEncoder

#: Attention-pooling epsilon of the release.
RELEASE_POOL_EPS = 1e-8
#: Joint that the release takes from another vertex for the left hand: (joint, MANO vertex).
#: Joint 12 is the middle fingertip; the release reads vertex 445 on the left, 444 on the right.
LEFT_MIDDLE_TIP = (12, 445)
#: Vertex count of MANO meshes (the tip override applies to MANO-topology models only).
MANO_NUM_VERTS = 778


class AbsoluteParamUpdate(ParamUpdate):
    """The release's update: new parameters predicted outright, not added to the previous ones.

    Same layers (and state-dict names) as :class:`~.heads.ParamUpdate`:
    ``new[s] = hand[s]([flat feats[s], params[s]])``,
    ``offset = offset_layer([flat left, flat right, offset])``; the previous values enter
    detached. Initialised as the release: weights N(0, 1e-3), default biases.

    Forward: feats {side: (B, 21, C)}, params {side: (B, P)}, offset (B, 3) ->
    (new params {side: (B, P)}, new offset (B, 3)).
    """

    def __init__(self, feat_channels: int, num_params: int, num_joints: int = 21) -> None:
        super().__init__(feat_channels, num_params, num_joints)
        for lin in [*self.hand.values(), self.offset]:
            nn.init.normal_(lin.weight, std=1e-3)
            bound = lin.in_features ** -0.5
            nn.init.uniform_(lin.bias, -bound, bound)

    def forward(self, feats: dict, params: dict, offset: torch.Tensor) -> tuple[dict, torch.Tensor]:
        flat = {s: feats[s].flatten(1) for s in SIDES}
        new = {s: self.hand[s](torch.cat([flat[s], params[s].detach()], dim=1)) for s in SIDES}
        new_offset = self.offset(torch.cat([flat["left"], flat["right"], offset.detach()], dim=1))
        return new, new_offset


class RawPixelHeads(PixelHeads):
    """:class:`~.heads.PixelHeads` returning the dense map as regressed (no sigmoid)."""

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.final(feat)
        return self.seg(feat), self.dense(feat)


class ReleaseJointInteraction(nn.Module):
    """Joint tokens -> GCN -> transformer -> parameter update -> bone planes (one stage).

    Args:
        cfg: configuration (width W, joint_dim D, mfp_channels C, gcn/transformer settings).
    Forward:
        fmap (B, W, h, w) fused map; prev: previous stage dict; decode: ``(params, offset) ->
        stage dict``; radius: bone footprint in cells; centres: optional (h * w, 2) cell
        centres of the map (a buffer of the stage).
        returns (planes conv output (B, W, h, w), stage dict).
    """

    def __init__(self, cfg: DIRConfig) -> None:
        super().__init__()
        d, c, width = cfg.joint_dim, cfg.mfp_channels, cfg.width
        self.visual = nn.ModuleDict({s: PointMLP(width, d) for s in SIDES})
        self.local_coord = nn.ModuleDict({s: PointMLP(3, d) for s in SIDES})
        self.global_coord = PointMLP(3, d)
        self.gcn = nn.ModuleDict({s: SemanticGCN(d, cfg.gcn_layers) for s in SIDES})
        self.transformer = BlockSkippingTransformer(2 * NUM_JOINTS, d, c, cfg.tf_layers, cfg.tf_heads,
                                                    cfg.tf_mlp_ratio)
        self.update = AbsoluteParamUpdate(c, cfg.num_params, NUM_JOINTS)
        self.plane_feat = PointMLP(c, c)
        planes = 2 * (NUM_JOINTS - 1) * c
        parent, child = bone_index(len(SIDES))  # the 40 bones of both hands, left first
        self.register_buffer("bone_parent", torch.tensor(parent), persistent=False)
        self.register_buffer("bone_child", torch.tensor(child), persistent=False)
        self.fusion = nn.Sequential(nn.Conv2d(planes, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                    nn.Conv2d(width, width, 1))

    def tokens(self, fmap: torch.Tensor, prev: dict) -> dict:
        """{side: (B, 21, D)} after the GCN and the global coordinate embedding."""
        half = prev["offset"].detach()[:, None, :] / 2.0
        shift = {"left": -half, "right": half}
        out = {}
        for s in SIDES:
            xyz = prev["joints"][s].detach() / UNIT
            tok = self.visual[s](sample_joint_features(fmap, prev["joints2d"][s].detach()))
            tok = self.gcn[s](tok + self.local_coord[s](xyz))
            out[s] = tok + self.global_coord(xyz + shift[s])
        return out

    def forward(self, fmap: torch.Tensor, prev: dict, decode: Callable[[dict, torch.Tensor], dict],
                radius: float, centres: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        tok = self.tokens(fmap, prev)
        both = self.transformer(torch.cat([tok["left"], tok["right"]], dim=1))
        feats = {"left": both[:, :NUM_JOINTS], "right": both[:, NUM_JOINTS:]}
        params, offset = self.update(feats, prev["params"], prev["offset"])
        out = decode(params, offset)
        h, w = fmap.shape[-2:]
        uv = torch.cat([out["joints2d"][s] for s in SIDES], dim=1)  # (B, 42, 2)
        # per side: the embedding's BatchNorm1d sees one hand's tokens at a time, as in training
        plane_feats = torch.cat([self.plane_feat(feats[s]) for s in SIDES], dim=1)  # (B, 42, C)
        planes = bone_planes(uv, plane_feats, h, w, radius, self.bone_parent, self.bone_child, centres)
        return self.fusion(planes), out


class ReleaseStage(nn.Module):
    """One release refinement stage.

    Args:
        cfg: configuration; prev_channels: channels of the previous map (2048 for the first
        stage, W after); skip_channels: channels of the encoder map; stride: 16 or 8.
    Forward:
        prev_map (B, prev_channels, h, w) already upsampled; skip (B, skip_channels, h, w);
        prev stage dict; decode. Returns (map (B, W, h, w), stage dict).
    """

    def __init__(self, cfg: DIRConfig, prev_channels: int, skip_channels: int, stride: int) -> None:
        super().__init__()
        width = cfg.width
        self.radius = splat_radius(stride)
        size = cfg.img_size // stride
        self.register_buffer("centres", cell_centres(size, size, torch.zeros(())), persistent=False)
        self.skip = PreActResidual(skip_channels, width)
        self.fuse = PreActResidual(prev_channels + width, width)
        self.joints = ReleaseJointInteraction(cfg)
        self.enhance = PreActResidual(2 * width, width)

    def forward(self, prev_map: torch.Tensor, skip: torch.Tensor, prev: dict,
                decode: Callable[[dict, torch.Tensor], dict]) -> tuple[torch.Tensor, dict]:
        fused = self.fuse(torch.cat([prev_map, self.skip(skip)], dim=1))
        planes, out = self.joints(fused, prev, decode, self.radius, self.centres)
        return self.enhance(torch.cat([fused, planes], dim=1)), out


class ReleaseDIRNet(DIRNet):
    """DIR as released by its authors; same constructor, ``decode`` and output as :class:`DIRNet`.

    Differences in the output: ``"camera"`` equals the raw camera numbers (the release applies
    no transform; s is not forced positive) and ``"dense"`` is not squashed into (0, 1).
    """

    def __init__(self, config: DIRConfig, hand_models: Mapping[str, nn.Module]) -> None:
        nn.Module.__init__(self)
        if config.variant != "release":
            raise ValueError(f"ReleaseDIRNet needs config.variant 'release', got {config.variant!r}")
        if set(hand_models) != set(SIDES):
            raise ValueError(f"hand_models needs exactly the keys {SIDES}, got {sorted(hand_models)}")
        self.config = cfg = config
        c2, c3, c4, c5 = cfg.encoder_channels
        self.backbone = ResNetEncoder(cfg.backbone)
        self.initial = InitialRegressor(c5, cfg.attention_channels, cfg.num_pca, cfg.num_betas)
        with torch.no_grad():  # a usable untrained start: raw camera scale S0, not 0
            for s in SIDES:
                self.initial.regress[s].bias[cfg.param_slices["camera"].start] = CAMERA_S0
                self.initial.attention[s].eps = RELEASE_POOL_EPS
        self.stages = nn.ModuleList([ReleaseStage(cfg, c5, c4, 16), ReleaseStage(cfg, cfg.width, c3, 8)])
        self.heads = RawPixelHeads(cfg.width)
        self.hand_models = nn.ModuleDict({s: hand_models[s] for s in SIDES})
        self.hand_pair = self.build_hand_pair(hand_models)

    def pair_tip_ids(self, hand_models: Mapping[str, nn.Module]) -> dict | None:
        """The left middle fingertip at MANO vertex 445 (:data:`LEFT_MIDDLE_TIP`) on MANO meshes."""
        left = hand_models["left"]
        if left.num_verts != MANO_NUM_VERTS:
            return None
        joint, vertex = LEFT_MIDDLE_TIP
        tips = left.tip_vertex_ids.tolist()
        tips[int(SKIN_TO_OUTPUT[joint]) - NUM_SKIN_JOINTS] = vertex
        return {"left": tips}

    def root_rotation(self, rot6d: torch.Tensor) -> torch.Tensor:
        """(..., 6) -> (..., 3, 3) by the release's symmetric ("robust") orthonormalisation."""
        return robust_rot6d_to_matrix(rot6d)

    def camera(self, raw: torch.Tensor) -> torch.Tensor:
        """The release's camera is the raw ``(s, tx, ty)``: returned unchanged."""
        return raw

    def side_joints(self, side: str, joints: torch.Tensor, verts: torch.Tensor) -> torch.Tensor:
        """On MANO meshes the release reads the left middle fingertip at vertex 445
        (:data:`LEFT_MIDDLE_TIP`), (B, 21, 3) -> (B, 21, 3)."""
        if side != "left" or verts.shape[1] != MANO_NUM_VERTS:
            return joints
        j, v = LEFT_MIDDLE_TIP
        return torch.cat([joints[:, :j], verts[:, v:v + 1], joints[:, j + 1:]], dim=1)

    def forward(self, images: torch.Tensor) -> dict:
        check_images(images, self.config.img_size)
        c2, c3, c4, c5 = self.backbone(images)
        init = self.initial(c5)
        stages = [self.decode(init["params"], init["offset"])]
        x = c5
        for stage, skip in zip(self.stages, (c4, c3)):
            x, out = stage(upsample(x, 2), skip, stages[-1], self.decode)
            stages.append(out)
        seg, dense = self.heads(x)
        return {"stages": stages, "seg": seg, "dense": dense, "attention": init["attention"],
                "attention_logits": init["attention_logits"]}


__all__ = ["AbsoluteParamUpdate", "LEFT_MIDDLE_TIP", "RawPixelHeads", "ReleaseDIRNet", "ReleaseJointInteraction",
           "ReleaseStage"]

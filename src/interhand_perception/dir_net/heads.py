"""Prediction heads of DIR: hand-split attention + initial regression, parameter updates,
pixel heads, and the one place where the weak-perspective camera is decoded.

Per-hand parameter vector (P = 64 by default, docs/architecture.md):
``[0:6]`` 6D root rotation (first two columns of R, column-major: ``R[:, 0], R[:, 1]``),
``[6:6+K]`` PCA pose, ``[.. : ..+10]`` betas, last 3 the *raw* camera ``(r, tx, ty)`` with
``log(s / S0) = 4 tanh(r / 4)`` (about ``log(s / S0)`` near the reference scale).
:func:`decode_camera` turns the raw camera into ``(s, tx, ty)`` with ``s > 0``;
:func:`encode_camera` is its inverse (for building targets or converting checkpoints).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..hand_model.joints import SIDES

# ---- weak-perspective camera ------------------------------------------------------------
#: Reference scale S0 (crop units per metre). The crop's side is the two hands' extent / 0.8
#: (dir_net/crop.py) and spans 2 units in [-1, 1]; a typical interacting pair spans ~0.2 m, so
#: 0.2 m * S0 = 0.8 * 2 -> S0 = 8.
CAMERA_S0 = 8.0
#: Bound of the log-scale: s stays in (S0*e^-4, S0*e^4), approached smoothly (tanh).
CAMERA_LOG_CLAMP = 4.0


def decode_camera(raw: torch.Tensor) -> torch.Tensor:
    """Raw camera numbers -> weak-perspective camera.

    Args:
        raw: (..., 3) ``(log(s / S0), tx, ty)`` as stored in the parameter vector.
    Returns:
        (..., 3) ``(s, tx, ty)`` with ``s = S0 * exp(L * tanh(raw_s / L))`` > 0, L the bound.

    The bound is smooth on purpose: a hard clamp has zero gradient outside its range, and early
    in training the 2D loss can push the scale down (a collapsed projection is the L1 optimum
    while the orientation is still unknown) into a region it could never leave.
    """
    b = CAMERA_LOG_CLAMP
    s = CAMERA_S0 * torch.exp(b * torch.tanh(raw[..., :1] / b))
    return torch.cat([s, raw[..., 1:]], dim=-1)


def encode_camera(cam: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`decode_camera`. (..., 3) ``(s, tx, ty)`` with s > 0 -> (..., 3) raw."""
    b = CAMERA_LOG_CLAMP
    log_s = torch.log(cam[..., :1] / CAMERA_S0).clamp(-b + 1e-6, b - 1e-6)
    return torch.cat([b * torch.atanh(log_s / b), cam[..., 1:]], dim=-1)


def project_weak_perspective(xyz: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """``uv = s * xyz[..., :2] + (tx, ty)``.

    Args:
        xyz: (..., N, 3) wrist-relative points, metres (e.g. (B, N, 3) or (B, 2, N, 3)).
        cam: (..., 3) decoded camera ``(s, tx, ty)`` with the same leading axes.
    Returns:
        (..., N, 2) crop coordinates in [-1, 1] (``uv = 2 * px / S - 1``).
    """
    return cam[..., None, :1] * xyz[..., :2] + cam[..., None, 1:]


# ---- initial prediction (a sensible mean) -----------------------------------------------
#: Root rotation of the initial guess: palm facing the camera, fingers pointing up in the
#: image. Canonical frames (docs/architecture.md): the right hand has fingers along -x, palm
#: normal -y, thumb +z; the left hand is the mirror image (fingers +x). Camera: x right,
#: y down, z forward. So for the right hand R e_x = +y, R e_y = +z, R e_z = +x (thumb on the
#: image right); for the left hand R e_x = -y, R e_y = +z, R e_z = -x.
INIT_ROTATION = {
    "right": ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "left": ((0.0, 0.0, -1.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
}
#: Initial offset (right root - left root) = 0.1 m along camera x, in units of 0.15 m.
INIT_OFFSET = (0.1 / 0.15, 0.0, 0.0)
#: Initial camera translation: each wrist half the offset from the crop centre in x
#: (0.05 m * S0 = 0.4) and below the centre in y, so that the upright mean-pose hand (about
#: 0.15 m from wrist to the flexed fingertips, 1.2 crop units) is roughly centred vertically.
INIT_CAMERA_T = {"left": (-0.4, 0.45), "right": (0.4, 0.45)}


def rotmat_to_rot6d(rot: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 6) ``[R[:, 0], R[:, 1]]`` (first two columns)."""
    return torch.cat([rot[..., :, 0], rot[..., :, 1]], dim=-1)


def initial_param_bias(side: str, num_pca: int = 45, num_betas: int = 10) -> torch.Tensor:
    """Per-hand parameter vector of the initial guess (float32).

    Returns:
        (6 + num_pca + num_betas + 3,): 6D rotation of :data:`INIT_ROTATION`, zero pose (the
        model's mean pose), zero shape, raw camera ``(0, tx, ty)`` i.e. ``s = S0``.
    """
    rot6d = rotmat_to_rot6d(torch.tensor(INIT_ROTATION[side]))
    cam = torch.tensor([0.0, *INIT_CAMERA_T[side]])
    return torch.cat([rot6d, torch.zeros(num_pca + num_betas), cam])


class SpatialAttention(nn.Module):
    """Per-hand spatial attention (paper eq. 1-2).

    ``net`` ends in the logit conv; the sigmoid is applied in ``forward`` so that the logits can
    be supervised directly (``loss.attention``). Parameter names are those of the earlier
    ``Sequential(..., Sigmoid())`` (the sigmoid held none), so checkpoints load unchanged.

    Forward: feat (B, C, h, w) -> (pooled (B, C), attention (B, 1, h, w) in (0, 1),
    logits (B, 1, h, w) with ``attention = sigmoid(logits)``).
    """

    #: Added to the attention sum in the pooling denominator (the release variant uses 1e-8).
    eps = 1e-6

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, 1, 1),
        )

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.net(feat)
        att = torch.sigmoid(logits)
        pooled = (feat * att).sum(dim=(2, 3)) / (att.sum(dim=(2, 3)) + self.eps)
        return pooled, att, logits


class InitialRegressor(nn.Module):
    """Initial estimate from the stride-32 map.

    Forward: feat (B, C, h, w) -> dict with "params" {side: (B, P)}, "offset" (B, 3) raw
    (units of 0.15 m), "attention" {side: (B, 1, h, w)} in (0, 1) and "attention_logits"
    {side: (B, 1, h, w)}.
    """

    def __init__(self, channels: int, hidden: int, num_pca: int = 45, num_betas: int = 10) -> None:
        super().__init__()
        num_params = 6 + num_pca + num_betas + 3
        self.attention = nn.ModuleDict({s: SpatialAttention(channels, hidden) for s in SIDES})
        self.regress = nn.ModuleDict({s: nn.Linear(channels, num_params) for s in SIDES})
        self.offset = nn.Linear(channels, 3)
        with torch.no_grad():
            for s in SIDES:
                nn.init.normal_(self.regress[s].weight, std=1e-3)
                self.regress[s].bias.copy_(initial_param_bias(s, num_pca, num_betas))
            nn.init.normal_(self.offset.weight, std=1e-3)
            self.offset.bias.copy_(torch.tensor(INIT_OFFSET))

    def forward(self, feat: torch.Tensor) -> dict:
        params, attention, logits = {}, {}, {}
        for s in SIDES:
            pooled, attention[s], logits[s] = self.attention[s](feat)
            params[s] = self.regress[s](pooled)
        offset = self.offset(feat.mean(dim=(2, 3)))
        return {"params": params, "offset": offset, "attention": attention, "attention_logits": logits}


class ParamUpdate(nn.Module):
    """Residual update of both hands' parameters and the offset from the joint features.

    Zero-initialised, so a fresh stage returns its input unchanged.

    Forward:
        feats: {side: (B, 21, C)} joint features; params: {side: (B, P)}; offset: (B, 3).
        returns (new params {side: (B, P)}, new offset (B, 3)); the previous values enter the
        linear layers detached but the residual sum keeps their gradient.
    """

    def __init__(self, feat_channels: int, num_params: int, num_joints: int = 21) -> None:
        super().__init__()
        n = num_joints * feat_channels
        self.hand = nn.ModuleDict({s: nn.Linear(n + num_params, num_params) for s in SIDES})
        self.offset = nn.Linear(2 * n + 3, 3)
        for lin in [*self.hand.values(), self.offset]:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, feats: dict, params: dict, offset: torch.Tensor) -> tuple[dict, torch.Tensor]:
        flat = {s: feats[s].flatten(1) for s in SIDES}
        new = {s: params[s] + self.hand[s](torch.cat([flat[s], params[s].detach()], dim=1)) for s in SIDES}
        d_off = self.offset(torch.cat([flat["left"], flat["right"], offset.detach()], dim=1))
        return new, offset + d_off


class PixelHeads(nn.Module):
    """Segmentation (3-class logits) and dense-correspondence (3 channels in (0, 1)) heads.

    Forward: feat (B, width, h, w) -> (seg (B, 3, h, w), dense (B, 3, h, w)).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        hidden = max(width // 2, 8)
        self.final = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 1),
        )

        def head() -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(width, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(),
                nn.Conv2d(hidden, 3, 1),
            )

        self.seg = head()
        self.dense = head()

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.final(feat)
        return self.seg(feat), torch.sigmoid(self.dense(feat))


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinear x``factor`` upsampling (B, C, h, w) -> (B, C, h*f, w*f); f = 1 is a no-op.

    ``factor`` is a Python int fixed by the configuration, so tracing sees no shape logic.
    """
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)


__all__ = [
    "CAMERA_S0", "decode_camera", "encode_camera", "project_weak_perspective",
    "initial_param_bias", "rotmat_to_rot6d", "InitialRegressor", "ParamUpdate", "PixelHeads",
    "SpatialAttention", "upsample",
]

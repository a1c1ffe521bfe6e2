"""Fit a hand model to detector keypoints: twist-swing start, then Levenberg-Marquardt.

Input per hand (MediaPipe Hands layout, 21 landmarks in ``JOINT_NAMES`` order): image pixels
``u_i`` (21, 2) and metric "world" landmarks ``X_i`` (21, 3). MediaPipe documents the world
landmarks as metres with the origin at the hand's approximate geometric centre; we assume
their axes are the camera's (x right, y down, z forward), i.e. they are camera-frame points up
to an unknown translation. Pixels from MediaPipe's normalised landmarks: ``(x * W, y * H)``.

Unknowns: root rotation ``R_0`` (updated as ``R_0 exp([d])``), the 15 full axis-angle joint
rotations ``theta`` (mean pose included), betas ``b``, the wrist position ``T`` in the camera
frame and the world landmarks' offset ``c`` (their origin is not the wrist). With ``P_i`` the
model joints minus the model wrist (:func:`twist_swing.forward_kinematics`), minimise

    E = sum_i rho(|P_i + c - X_i| / s_3d) + sum_i rho(|pi(T + P_i) - u_i| / s_2d)
        + |max(0, theta - hi) - max(0, lo - theta)|^2 / s_lim^2 + |b|^2 / s_b^2

with ``pi`` the pinhole projection, ``[lo, hi]`` the pose prior's box
(``pose_prior.pose_limits``) and Geman-McClure ``rho(e) = t^2 e^2 / (t^2 + e^2)`` per
landmark (iteratively reweighted: weight ``(t^2 / (t^2 + e^2))^2``); ``t`` starts
``anneal`` times larger and shrinks over the first iterations (graduated non-convexity), so
a bad landmark is first averaged in, then rejected. Jacobians are analytic: turning joint
``k`` by ``G_k d`` moves a point ``p`` it carries by ``-[p - p_k] G_k d`` (fingertips: the
skinning-weighted sum), axis-angle steps map through the right Jacobian of SO(3),
``J_r(t) = I - (1 - cos|t|)/|t|^2 [t] + (|t| - sin|t|)/|t|^3 [t]^2``, and betas move the rest
bones linearly (pose correctives of the tips are in the residual, not the Jacobian). Only the
21 joints are evaluated per iteration; the mesh once at the end.

Start: betas from bone lengths, rotations by twist-swing (:mod:`twist_swing`) on the
wrist-relative world landmarks, ``c`` the mean offset, ``T`` by linear least squares of
``fx (T_x + P_x) = (u - cx) (T_z + P_z)`` (and y) over the 21 joints, as
``runtime.placement`` does.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..hand_model import lbs as L
from ..hand_model.joints import SIDES, SKIN_TO_OUTPUT
from ..hand_model.pose_prior import pose_limits
from ..hand_model.rotation_np import axis_angle_to_matrix, axis_angle_to_quaternion
from ..runtime.placement import PlacedHands
from .twist_swing import (HandSkeleton, Kinematics, fit_betas_to_bones, forward_kinematics,
                          model_hand_pose, skeleton_from_model, twist_swing_ik)

DTYPE = torch.float64


@dataclass(frozen=True)
class FitConfig:
    """Weights (as noise scales) and solver settings; see the module docstring."""

    iterations: int = 15
    sigma_2d: float = 3.0          # px
    sigma_3d: float = 0.006        # m
    sigma_limit: float = 0.03      # rad
    sigma_betas: float = 1.5
    robust: float = 3.0            # Geman-McClure scale t, in sigmas
    anneal: float = 8.0            # t starts anneal * robust ...
    anneal_iterations: int = 6     # ... and reaches robust after this many iterations
    damping: float = 1e-3          # initial Levenberg-Marquardt lambda
    fit_shape: bool = True
    twist: str = "anatomical"


@dataclass
class FitState:
    """Unknowns of B hands: root (B, 3, 3), pose (B, 15, 3) full axis-angle, betas (B, S),
    transl (B, 3) wrist in the camera frame (m), offset (B, 3) world-landmark offset (m)."""

    root: torch.Tensor
    pose: torch.Tensor
    betas: torch.Tensor
    transl: torch.Tensor
    offset: torch.Tensor

    def where(self, keep: torch.Tensor, other: "FitState") -> "FitState":
        """Per hand: this state where ``keep`` (B,) is True, else ``other``."""
        pick = [torch.where(keep.view(-1, *[1] * (a.ndim - 1)), a, b) for a, b in
                zip(self.__dict__.values(), other.__dict__.values())]
        return FitState(*pick)


def right_jacobian(theta: torch.Tensor) -> torch.Tensor:
    """Right Jacobians (..., 3, 3) of SO(3) at axis-angle ``theta`` (..., 3) (docstring)."""
    t2 = (theta * theta).sum(-1)
    small = t2 < 1e-6
    t2s = torch.where(small, torch.ones_like(t2), t2)
    t = t2s.sqrt()
    b = torch.where(small, 0.5 - t2 / 24.0, (1.0 - torch.cos(t)) / t2s)
    c = torch.where(small, 1.0 / 6.0 - t2 / 120.0, (t - torch.sin(t)) / (t2s * t))
    k = L.skew(theta)
    eye = torch.eye(3, dtype=theta.dtype, device=theta.device)
    return eye - b[..., None, None] * k + c[..., None, None] * (k @ k)


def ancestors(parents: Sequence[int]) -> torch.Tensor:
    """(J, J) matrix ``A[i, k] = 1`` if joint k is a proper ancestor of joint i."""
    a = torch.zeros(len(parents), len(parents), dtype=DTYPE)
    for i in range(1, len(parents)):
        a[i] = a[parents[i]]
        a[i, parents[i]] = 1.0
    return a


def joint_jacobian(sk: HandSkeleton, kin: Kinematics, pose: torch.Tensor) -> torch.Tensor:
    """d(P_i) / d(root step, theta): (B, 21, 3, 48) for the wrist-relative output joints P."""
    anc = ancestors(sk.parents).to(pose)
    carry = anc.T + torch.eye(len(sk.parents), dtype=pose.dtype)      # carry[k, j]: k moves j
    skin = kin.skin
    lever_skin = anc[None, :, :, None] * (skin[:, :, None] - skin[:, None, :])  # (B, 16, 16, 3)
    moved = torch.einsum("tj,kj,btjc->btkc", sk.tip_weights, carry, kin.tip_moved)
    lever_tip = moved - (sk.tip_weights @ carry.T)[None, ..., None] * skin[:, None]
    lever = torch.cat([lever_skin, lever_tip], dim=1)[:, SKIN_TO_OUTPUT]     # (B, 21, 16, 3)
    blocks = -L.skew(lever) @ kin.glob[:, None]                              # (B, 21, 16, 3, 3)
    blocks = torch.cat([blocks[:, :, :1], blocks[:, :, 1:] @ right_jacobian(pose)[:, None]], 2)
    return blocks.permute(0, 1, 3, 2, 4).reshape(pose.shape[0], 21, 3, 48)


def shape_jacobian(sk: HandSkeleton, kin: Kinematics, num_betas: int) -> torch.Tensor:
    """d(P_i) / d(betas): (B, 21, 3, S) for the wrist-relative output joints P."""
    jd, vd = sk.j_dirs[..., :num_betas], sk.tip_dirs[..., :num_betas]
    glob = kin.glob
    d = glob.new_zeros(glob.shape[0], len(sk.parents), 3, num_betas)
    for level_t in sk.levels:
        level = list(level_t)
        par = [sk.parents[j] for j in level]
        d[:, level] = d[:, par] + glob[:, par] @ (jd[level] - jd[par])
    tip = glob[:, None] @ (vd[:, None] - jd[None]) + d[:, None]                 # (B, 5, 16, 3, S)
    tip = torch.einsum("tj,btjcs->btcs", sk.tip_weights, tip)
    return torch.cat([d, tip], dim=1)[:, SKIN_TO_OUTPUT]


def project(points: torch.Tensor, intr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pinhole pixels (B, N, 2) of camera points (B, N, 3) and d(pixels)/d(points) (B, N, 2, 3).

    ``intr`` = (fx, fy, cx, cy); depths are clamped to >= 1 mm.
    """
    fx, fy, cx, cy = intr
    x, y = points[..., 0], points[..., 1]
    z = points[..., 2].clamp_min(1e-3)
    uv = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)
    o = torch.zeros_like(z)
    jac = torch.stack([torch.stack([fx / z, o, -fx * x / z ** 2], -1),
                       torch.stack([o, fy / z, -fy * y / z ** 2], -1)], dim=-2)
    return uv, jac


def solve_translation(uv: torch.Tensor, rel: torch.Tensor, intr: torch.Tensor) -> torch.Tensor:
    """Wrist T (B, 3) from pixels (B, N, 2) of points ``T + rel`` (B, N, 3), linear least squares."""
    fx, fy, cx, cy = intr
    du, dv = uv[..., 0] - cx, uv[..., 1] - cy
    zero = torch.zeros_like(du)
    a = torch.cat([torch.stack([fx + zero, zero, -du], -1), torch.stack([zero, fy + zero, -dv], -1)], 1)
    b = torch.cat([du * rel[..., 2] - fx * rel[..., 0], dv * rel[..., 2] - fy * rel[..., 1]], 1)
    return torch.linalg.solve(a.transpose(1, 2) @ a, (a.transpose(1, 2) @ b[..., None]))[..., 0]


def geman_mcclure(e: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cost ``t^2 e^2 / (t^2 + e^2)`` and IRLS weight ``(t^2 / (t^2 + e^2))^2`` of norms e."""
    den = t * t + e * e
    return t * t * e * e / den, (t * t / den) ** 2


def evaluate(sk: HandSkeleton, state: FitState, uv: torch.Tensor, world: torch.Tensor,
             intr: torch.Tensor) -> tuple[Kinematics, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pose the state: kinematics, wrist-relative joints P (B, 21, 3), 3D residuals
    ``P + c - X`` (B, 21, 3) (m) and 2D residuals (B, 21, 2) (px)."""
    rots = torch.cat([state.root[:, None], L.batch_rodrigues(state.pose)], dim=1)
    kin = forward_kinematics(sk, rots, state.betas)
    rel = kin.joints - kin.joints[:, :1]
    pix, _ = project(state.transl[:, None] + rel, intr)
    return kin, rel, rel + state.offset[:, None] - world, pix - uv


def energy(state: FitState, r3: torch.Tensor, r2: torch.Tensor, limits: tuple, cfg: FitConfig,
           t: float) -> torch.Tensor:
    """Robust objective (B,) of the module docstring at Geman-McClure scale t."""
    lo, hi = limits
    theta = state.pose.reshape(-1, 45)
    over = (torch.relu(theta - hi) - torch.relu(lo - theta)) / cfg.sigma_limit
    return (geman_mcclure(r3.norm(dim=-1) / cfg.sigma_3d, t)[0].sum(-1)
            + geman_mcclure(r2.norm(dim=-1) / cfg.sigma_2d, t)[0].sum(-1)
            + (over ** 2).sum(-1) + (state.betas ** 2).sum(-1) / cfg.sigma_betas ** 2)


def lm_step(sk: HandSkeleton, state: FitState, kin: Kinematics, rel: torch.Tensor, r3: torch.Tensor,
            r2: torch.Tensor, intr: torch.Tensor, limits: tuple, cfg: FitConfig, t: float,
            lam: torch.Tensor) -> FitState:
    """One damped Gauss-Newton step of the reweighted problem (B hands at once)."""
    b, s = state.betas.shape
    n = 48 + s + 6
    j_rel = torch.cat([joint_jacobian(sk, kin, state.pose), shape_jacobian(sk, kin, s)], -1)
    eye3 = torch.eye(3, dtype=rel.dtype).expand(b, 21, 3, 3)
    j3 = torch.cat([j_rel, torch.zeros_like(eye3), eye3], -1) / cfg.sigma_3d
    _, dproj = project(state.transl[:, None] + rel, intr)
    j2 = dproj @ torch.cat([j_rel, eye3, torch.zeros_like(eye3)], -1) / cfg.sigma_2d
    e3, e2 = r3 / cfg.sigma_3d, r2 / cfg.sigma_2d
    w3 = geman_mcclure(e3.norm(dim=-1), t)[1][..., None, None]
    w2 = geman_mcclure(e2.norm(dim=-1), t)[1][..., None, None]
    hess = ((w3 * j3).transpose(-1, -2) @ j3).sum(1) + ((w2 * j2).transpose(-1, -2) @ j2).sum(1)
    grad = ((w3 * j3).transpose(-1, -2) @ e3[..., None]).sum(1)[..., 0] \
        + ((w2 * j2).transpose(-1, -2) @ e2[..., None]).sum(1)[..., 0]
    lo, hi = limits
    theta = state.pose.reshape(b, 45)
    over = (torch.relu(theta - hi) - torch.relu(lo - theta)) / cfg.sigma_limit
    diag = torch.zeros(b, n, dtype=rel.dtype)
    diag[:, 3:48] = (over != 0).to(rel.dtype) / cfg.sigma_limit ** 2
    diag[:, 48:48 + s] = 1.0 / cfg.sigma_betas ** 2
    grad[:, 3:48] += over / cfg.sigma_limit
    grad[:, 48:48 + s] += state.betas / cfg.sigma_betas ** 2
    hess = hess + torch.diag_embed(diag)
    damp = lam[:, None] * (torch.diagonal(hess, dim1=-2, dim2=-1) + 1e-6)
    step = -torch.linalg.solve(hess + torch.diag_embed(damp), grad[..., None])[..., 0]
    return FitState(root=state.root @ L.batch_rodrigues(step[:, :3]),
                    pose=state.pose + step[:, 3:48].reshape(b, 15, 3), betas=state.betas + step[:, 48:48 + s],
                    transl=state.transl + step[:, n - 6:n - 3], offset=state.offset + step[:, n - 3:])


def initial_state(sk: HandSkeleton, uv: torch.Tensor, world: torch.Tensor, intr: torch.Tensor,
                  cfg: FitConfig) -> FitState:
    """Twist-swing start (module docstring) for pixels (B, 21, 2) and world points (B, 21, 3)."""
    target = world - world[:, :1]
    betas = fit_betas_to_bones(sk, target, sigma_betas=cfg.sigma_betas) if cfg.fit_shape else \
        world.new_zeros(world.shape[0], sk.j_dirs.shape[-1])
    rots = twist_swing_ik(sk, target, betas, twist=cfg.twist)
    kin = forward_kinematics(sk, rots, betas)
    rel = kin.joints - kin.joints[:, :1]
    return FitState(root=rots[:, 0], pose=L.matrix_to_axis_angle(rots[:, 1:]), betas=betas,
                    transl=solve_translation(uv, rel, intr), offset=(world - rel).mean(1))


def refine(sk: HandSkeleton, state: FitState, uv: torch.Tensor, world: torch.Tensor,
           intr: torch.Tensor, limits: tuple, cfg: FitConfig) -> FitState:
    """Levenberg-Marquardt with per-hand step acceptance and an annealed robust scale."""
    lam = torch.full((state.pose.shape[0],), cfg.damping, dtype=DTYPE)
    for it in range(cfg.iterations):
        frac = min(1.0, it / max(cfg.anneal_iterations, 1))
        t = cfg.robust * cfg.anneal ** (1.0 - frac)
        kin, rel, r3, r2 = evaluate(sk, state, uv, world, intr)
        cost = energy(state, r3, r2, limits, cfg, t)
        trial = lm_step(sk, state, kin, rel, r3, r2, intr, limits, cfg, t, lam)
        _, _, t3, t2 = evaluate(sk, trial, uv, world, intr)
        ok = torch.isfinite(t3).all(-1).all(-1) & (energy(trial, t3, t2, limits, cfg, t) < cost)
        state = trial.where(ok, state)
        lam = torch.where(ok, (lam * 0.3).clamp_min(1e-7), (lam * 10.0).clamp_max(1e4))
    return state


def fit_keypoints(sk: HandSkeleton, uv: torch.Tensor, world: torch.Tensor, intr: torch.Tensor,
                  cfg: FitConfig = FitConfig(), limits: tuple | None = None) -> dict:
    """Fit B hands of one model (tensor level; float64 CPU).

    Args:
        uv: (B, 21, 2) pixels; world: (B, 21, 3) metres; intr: (4,) fx, fy, cx, cy.
        limits: (lo, hi) (45,) pose box; None uses ``pose_limits(sk.side)``.
    Returns:
        dict with "init" and "state" (:class:`FitState`), "joints" (B, 21, 3) camera frame,
        "rel" (B, 21, 3) wrist-relative, "err2d" (B,) mean px, "err3d" (B,) mean m,
        "weights2d" (B, 21) final robust weights of the pixels.
    """
    if limits is None:
        lo, hi = pose_limits(sk.side)
        limits = (torch.as_tensor(lo, dtype=DTYPE).reshape(45), torch.as_tensor(hi, dtype=DTYPE).reshape(45))
    init = initial_state(sk, uv, world, intr, cfg)
    state = refine(sk, init, uv, world, intr, limits, cfg)
    _, rel, r3, r2 = evaluate(sk, state, uv, world, intr)
    return {"init": init, "state": state, "rel": rel, "joints": rel + state.transl[:, None],
            "err2d": r2.norm(dim=-1).mean(-1), "err3d": r3.norm(dim=-1).mean(-1),
            "weights2d": geman_mcclure(r2.norm(dim=-1) / cfg.sigma_2d, cfg.robust)[1]}

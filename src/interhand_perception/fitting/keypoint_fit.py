"""Fit a hand model to detector keypoints: twist-swing start, then Levenberg-Marquardt.

Input per hand (MediaPipe Hands layout, 21 landmarks in ``JOINT_NAMES`` order): image pixels
``u_i`` (21, 2) and metric "world" landmarks ``X_i`` (21, 3). MediaPipe documents the world
landmarks as metres with the origin at the hand's approximate geometric centre, axes roughly
the camera's (x right, y down, z away from the camera). On real photos they are rotated
against the camera by 4-35 degrees (median 9.5; docs/keypoint_fit.md), so their rotation
``R_w`` is estimated with a prior towards the identity. Their scale is not metric either (on
rendered hands with known truth their bones were 16% short, and a fit whose shape followed
them placed hands 6-10% too close; docs/keypoint_fit.md), so their scale ``k_w`` is estimated
too, and the metric size comes from the hand model, kept at the mean adult hand's size by a
prior. Pixels from MediaPipe's normalised landmarks: ``(x * W, y * H)``.

Unknowns: root rotation ``R_0`` (updated as ``R_0 exp([d])``), the 15 full axis-angle joint
rotations ``theta`` (mean pose included), betas ``b`` (kept in ``[-b_max, b_max]``), the
wrist position ``T`` in the camera frame, the world landmarks' offset ``c`` (their origin is
not the wrist), rotation ``R_w`` (``R_w exp([d])``) and scale ``k_w`` (``k_w exp(e)``). With
``P_i`` the model joints minus the model wrist (:func:`twist_swing.forward_kinematics`) and
``L(b)`` the sum of the model's 20 rest bone lengths, minimise

    E = sum_i rho(|P_i + c - k_w R_w X_i| / s_3d) + sum_i rho(|pi(T + P_i) - u_i| / s_2d)
        + |max(0, theta - hi) - max(0, lo - theta)|^2 / s_lim^2 + |b|^2 / s_b^2
        + |vee(R_w - R_w^T) / 2|^2 / s_w^2 + (L(b) / L(0) - 1)^2 / s_size^2

with ``pi`` the pinhole projection, ``[lo, hi]`` the pose prior's box
(``pose_prior.pose_limits``) and Geman-McClure ``rho(e) = t^2 e^2 / (t^2 + e^2)`` per
landmark (iteratively reweighted: weight ``(t^2 / (t^2 + e^2))^2``); ``t`` starts
``anneal`` times larger and shrinks over the first iterations (graduated non-convexity), so
a bad landmark is first averaged in, then rejected. Per hand and term, ``t`` is at least
``robust_median`` times the median normalised residual: a term whose landmarks are all far
off (a start far from the pixels) stays in the fit instead of being rejected as a whole.
The rotation prior's vector ``vee(R_w - R_w^T) / 2 = sin(angle) axis`` changes by
``(tr(R_w) I - R_w^T) d / 2`` for the step ``d``. Jacobians are analytic: turning joint
``k`` by ``G_k d`` moves a point ``p`` it carries by ``-[p - p_k] G_k d`` (fingertips: the
skinning-weighted sum, plus their pose correctives through ``dR_k = R_k [J_r dtheta_k]``),
axis-angle steps map through the right Jacobian of SO(3),
``J_r(t) = I - (1 - cos|t|)/|t|^2 [t] + (|t| - sin|t|)/|t|^3 [t]^2``, betas move the rest
bones linearly and the world rotation moves ``R_w X`` by ``[R_w X] R_w d``. Only the 21
joints are evaluated per iteration; the mesh once at the end.

Start: ``k_w`` from the ratio of summed bone lengths (model at zero betas / world landmarks),
betas from the scaled bone lengths (clamped), then the pixels lifted to 3D: the wrist-relative
world landmarks are placed by the linear least squares of ``fx (T_x + X_x) = (u - cx) (T_z +
X_z)`` (and y; as ``pipeline.placement`` does) and each pixel is back-projected to its
landmark's depth (a pixel far from its placed landmark, more than 3 times the median, keeps
the landmark). Twist-swing (:mod:`twist_swing`) on these points gives a pose that agrees
with the pixels and takes only the depths from the world landmarks; ``T`` is solved again
for the posed model, ``R_w`` is the Kabsch rotation of the world landmarks onto it and ``c``
the mean offset. (Twist-swing on the world landmarks alone can start so far from the pixels
that the robust 2D term rejects them all; see docs/keypoint_fit.md.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Mapping

import numpy as np
import torch

from ..hand_model import lbs as L
from ..hand_model.joints import SIDES
from ..hand_model.pose_prior import pose_limits
from .scale import metric_size_prior, world_scale_start
from .twist_swing import (CAT_TO_OUTPUT, OUTPUT_FROM_CAT, HandSkeleton, Kinematics, fit_betas_to_bones,
                          forward_kinematics, kabsch, model_hand_pose, skeleton_from_model, twist_swing_ik)

DTYPE = torch.float64


@dataclass(frozen=True)
class FitConfig:
    """Weights (as noise scales) and solver settings; see the module docstring."""

    iterations: int = 8
    sigma_2d: float = 3.0          # px
    sigma_3d: float = 0.006        # m
    sigma_limit: float = 0.03      # rad
    sigma_betas: float = 2.0
    robust: float = 2.5            # Geman-McClure scale t, in sigmas ...
    robust_median: float = 2.0     # ... at least this times the median normalised residual
    anneal: float = 8.0            # t starts anneal * robust ...
    anneal_iterations: int = 4     # ... and reaches robust after this many iterations
    damping: float = 1e-3          # initial Levenberg-Marquardt lambda
    tolerance: float = 1e-3        # stop when no hand's cost drops by more than this fraction
    fit_shape: bool = True
    twist: str = "anatomical"
    max_betas: float = 3.0         # betas are kept in [-max_betas, max_betas]
    sigma_world_rotation: float = 0.2  # rad, prior on the world landmarks' rotation; 0: fixed at I
    fit_world_scale: bool = True   # the world landmarks' scale is unknown (estimated), not metric
    sigma_size: float = 0.05       # prior std of the model's size relative to the mean hand (0: none)
    lift_iterations: int = 1       # start: IK on the pixels lifted to the world landmarks' depths
    confidence_px: float = 6.0     # mean pixel error halving the confidence: this (px) and ...
    confidence_2d: float = 0.04    # ... this fraction of the hand's size, in quadrature
    confidence_3d: float = 0.012   # mean world-landmark error (m) halving the confidence


@dataclass
class FitState:
    """Unknowns of B hands: root (B, 3, 3), pose (B, 15, 3) full axis-angle, betas (B, S),
    transl (B, 3) wrist in the camera frame (m), offset (B, 3) world-landmark offset (m),
    world_rot (B, 3, 3) rotation of the world landmarks into the camera frame (None: I),
    world_scale (B,) their scale (None: 1, taken as metric)."""

    root: torch.Tensor
    pose: torch.Tensor
    betas: torch.Tensor
    transl: torch.Tensor
    offset: torch.Tensor
    world_rot: torch.Tensor | None = None
    world_scale: torch.Tensor | None = None


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


def joint_jacobian(sk: HandSkeleton, kin: Kinematics, pose: torch.Tensor) -> torch.Tensor:
    """d(P_i) / d(root step, theta): (B, 21, 3, 48) for the wrist-relative output joints P."""
    anc = sk.ancestors
    carry = anc.T + torch.eye(len(sk.parents), dtype=pose.dtype)      # carry[k, j]: k moves j
    skin = kin.skin
    lever_skin = anc[None, :, :, None] * (skin[:, :, None] - skin[:, None, :])  # (B, 16, 16, 3)
    moved = torch.einsum("tj,kj,btjc->btkc", sk.tip_weights, carry, kin.tip_moved)
    lever_tip = moved - (sk.tip_weights @ carry.T)[None, ..., None] * skin[:, None]
    lever = torch.cat([lever_skin, lever_tip], dim=1)[:, OUTPUT_FROM_CAT]     # (B, 21, 16, 3)
    jr = right_jacobian(pose)
    frames = kin.glob.clone()
    frames[:, 1:] = frames[:, 1:] @ jr                                       # G_k J_r(theta_k)
    blocks = torch.einsum("bikcd,bkde->bicke", -L.skew(lever), frames)       # (B, 21, 3, 16, 3)
    if bool(sk.tip_posedirs.any()):     # tips' pose correctives: dR_k = R_k [J_r dtheta]
        rot = L.batch_rodrigues(pose)
        d_rot = (rot[:, :, None] @ L.skew(torch.eye(3, dtype=pose.dtype))).flatten(-2)  # (B, 15, 3, 9)
        dirs = sk.tip_posedirs[..., :135].reshape(5, 3, 15, 9)
        d_tip = torch.einsum("tj,bjcd,tdki,bkei,bkef->btckf", sk.tip_weights, kin.glob, dirs, d_rot, jr)
        tips = CAT_TO_OUTPUT[16:]
        blocks[:, tips, :, 1:] += d_tip
    return blocks.reshape(pose.shape[0], 21, 3, 48)


def shape_jacobian(sk: HandSkeleton, kin: Kinematics, num_betas: int) -> torch.Tensor:
    """d(P_i) / d(betas): (B, 21, 3, S) for the wrist-relative output joints P."""
    jd, vd = sk.j_dirs[..., :num_betas], sk.tip_dirs[..., :num_betas]
    glob = kin.glob
    d = glob.new_zeros(glob.shape[0], len(sk.parents), 3, num_betas)
    for level, par, _ in sk.levels:
        d[:, level] = d[:, par] + torch.einsum("bjcd,jds->bjcs", glob[:, par], jd[level] - jd[par])
    tip = torch.einsum("tj,bjcd,tjds->btcs", sk.tip_weights, glob, vd[:, None] - jd[None]) \
        + torch.einsum("tj,bjcs->btcs", sk.tip_weights, d)
    return torch.cat([d, tip], dim=1)[:, OUTPUT_FROM_CAT]


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
    ``P + c - R_w X`` (B, 21, 3) (m) and 2D residuals (B, 21, 2) (px)."""
    rots = torch.cat([state.root[:, None], L.batch_rodrigues(state.pose)], dim=1)
    kin = forward_kinematics(sk, rots, state.betas)
    rel = kin.joints - kin.joints[:, :1]
    pix, _ = project(state.transl[:, None] + rel, intr)
    return kin, rel, rel + state.offset[:, None] - rotate_world(state, world), pix - uv


def rotate_world(state: FitState, world: torch.Tensor) -> torch.Tensor:
    """The world landmarks (B, 21, 3) in the camera frame's axes and the model's scale,
    ``k_w R_w X``."""
    out = world if state.world_rot is None else world @ state.world_rot.transpose(1, 2)
    return out if state.world_scale is None else out * state.world_scale[:, None, None]


def rotation_prior(state: FitState, cfg: FitConfig) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Prior residual ``v / s_w`` (B, 3) of the world landmarks' rotation, with
    ``v = vee(R_w - R_w^T) / 2 = sin(angle) axis``, and its derivative (B, 3, 3) for the step
    ``R_w exp([d])``: ``(tr(R_w) I - R_w^T) / (2 s_w)``; None when the rotation is fixed."""
    if state.world_rot is None or cfg.sigma_world_rotation <= 0:
        return None
    r = state.world_rot
    v = 0.5 * torch.stack([r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], -1)
    trace = torch.diagonal(r, dim1=-2, dim2=-1).sum(-1)
    jac = trace[:, None, None] * torch.eye(3, dtype=r.dtype) - r.transpose(1, 2)
    return v / cfg.sigma_world_rotation, jac / (2.0 * cfg.sigma_world_rotation)


def limit_excess(pose: torch.Tensor, limits: tuple, sigma: float) -> torch.Tensor:
    """(B, 45) normalised excess of the pose (B, 15, 3) beyond the box limits (lo, hi) (45,)."""
    theta = pose.reshape(-1, 45)
    return (torch.relu(theta - limits[1]) - torch.relu(limits[0] - theta)) / sigma


@dataclass
class Scales:
    """Per-hand Geman-McClure scales (B, 1), in sigmas, of the 2D and 3D terms."""

    t2: torch.Tensor
    t3: torch.Tensor


def robust_scales(r3: torch.Tensor, r2: torch.Tensor, cfg: FitConfig, t: float) -> Scales:
    """Geman-McClure scales: ``t`` (annealed), raised per hand and term to ``robust_median``
    times the median normalised residual, so that a term is never rejected as a whole (a
    start far off, or landmarks that no hand of the model fits, are averaged in: only
    landmarks far worse than the others are outliers)."""
    def scale(e: torch.Tensor) -> torch.Tensor:
        return torch.clamp_min(cfg.robust_median * e.median(-1, keepdim=True).values, t)

    return Scales(scale(r2.norm(dim=-1) / cfg.sigma_2d), scale(r3.norm(dim=-1) / cfg.sigma_3d))


def energy(state: FitState, r3: torch.Tensor, r2: torch.Tensor, limits: tuple, cfg: FitConfig,
           sc: Scales, sk: HandSkeleton | None = None) -> torch.Tensor:
    """Robust objective (B,) of the module docstring at the Geman-McClure scales ``sc``
    (the size prior needs the skeleton ``sk``)."""
    over = limit_excess(state.pose, limits, cfg.sigma_limit)
    prior = rotation_prior(state, cfg)
    size = None if sk is None else metric_size_prior(sk, state.betas, cfg.sigma_size)
    return (geman_mcclure(r3.norm(dim=-1) / cfg.sigma_3d, sc.t3)[0].sum(-1)
            + geman_mcclure(r2.norm(dim=-1) / cfg.sigma_2d, sc.t2)[0].sum(-1)
            + (over ** 2).sum(-1) + (state.betas ** 2).sum(-1) / cfg.sigma_betas ** 2
            + (0.0 if prior is None else (prior[0] ** 2).sum(-1))
            + (0.0 if size is None else size[0] ** 2))


def world_jacobian(state: FitState, rel: torch.Tensor, r3: torch.Tensor) -> torch.Tensor:
    """d(3D residuals) / d(world rotation step) (B, 21, 3, 3): for ``R_w exp([d])``,
    ``d(P + c - R_w exp([d]) X) = R_w [X]_x d = [R_w X]_x R_w d`` (``R_w X = P + c - r3``)."""
    return L.skew(rel + state.offset[:, None] - r3) @ state.world_rot[:, None]


def lm_step(sk: HandSkeleton, state: FitState, kin: Kinematics, rel: torch.Tensor, r3: torch.Tensor,
            r2: torch.Tensor, intr: torch.Tensor, limits: tuple, cfg: FitConfig, sc: Scales,
            lam: torch.Tensor) -> FitState:
    """One damped Gauss-Newton step of the reweighted problem (B hands at once).

    Unknowns (n = 54 + S, + 3 when the world rotation is estimated): root step (3), theta (45),
    betas (S), T (3), c (3) [, world rotation step d, ``R_w exp([d])`` (3)].
    """
    b, s = state.betas.shape
    prior_w = rotation_prior(state, cfg)
    scaled = state.world_scale is not None
    n = 54 + s + (0 if prior_w is None else 3) + int(scaled)
    j_rel = torch.cat([joint_jacobian(sk, kin, state.pose), shape_jacobian(sk, kin, s)], -1)
    eye3 = torch.eye(3, dtype=rel.dtype).expand(b, 21, 3, 3)
    zero3 = torch.zeros_like(eye3)
    _, dproj = project(state.transl[:, None] + rel, intr)
    blocks2, blocks3 = [j_rel, eye3, zero3], [j_rel, zero3, eye3]
    if prior_w is not None:
        blocks2.append(zero3)
        blocks3.append(world_jacobian(state, rel, r3))
    if scaled:                  # k_w exp(e): d(P + c - k_w R_w X) / de = -k_w R_w X
        blocks2.append(zero3[..., :1])
        blocks3.append(-(rel + state.offset[:, None] - r3)[..., None])
    j2 = torch.einsum("bicd,bidn->bicn", dproj, torch.cat(blocks2, -1)) / cfg.sigma_2d
    j3 = torch.cat(blocks3, -1) / cfg.sigma_3d
    e3, e2 = r3 / cfg.sigma_3d, r2 / cfg.sigma_2d
    w3 = geman_mcclure(e3.norm(dim=-1), sc.t3)[1]
    w2 = geman_mcclure(e2.norm(dim=-1), sc.t2)[1]
    jac = torch.cat([j3.reshape(b, 63, n), j2.reshape(b, 42, n)], 1)           # (B, 105, n)
    res = torch.cat([e3.reshape(b, 63), e2.reshape(b, 42)], 1)
    w = torch.cat([w3.repeat_interleave(3, 1), w2.repeat_interleave(2, 1)], 1)
    wj = (w[..., None] * jac).transpose(1, 2)
    hess, grad = wj @ jac, (wj @ res[..., None])[..., 0]
    over = limit_excess(state.pose, limits, cfg.sigma_limit)
    prior = torch.cat([(over != 0).to(rel.dtype) / cfg.sigma_limit ** 2,
                       torch.full((b, s), 1.0 / cfg.sigma_betas ** 2, dtype=rel.dtype)], 1)
    grad[:, 3:48 + s] += torch.cat([over / cfg.sigma_limit, state.betas / cfg.sigma_betas ** 2], 1)
    size_prior = metric_size_prior(sk, state.betas, cfg.sigma_size)
    if size_prior is not None:
        r_size, j_size = size_prior
        hess[:, 48:48 + s, 48:48 + s] += j_size[:, :, None] * j_size[:, None, :]
        grad[:, 48:48 + s] += r_size[:, None] * j_size
    if prior_w is not None:
        res_w, jac_w = prior_w
        r = slice(n - 3 - int(scaled), n - int(scaled))
        hess[:, r, r] += jac_w.transpose(1, 2) @ jac_w
        grad[:, r] += (jac_w.transpose(1, 2) @ res_w[..., None])[..., 0]
    diag = torch.diagonal(hess, dim1=-2, dim2=-1)
    diag[:, 3:48 + s] += prior
    diag += lam[:, None] * (diag + 1e-6)
    # betas at their bound that the gradient pushes outwards stay there (active set): their
    # rows and columns leave the system, so the other unknowns are not solved against a
    # step that the bound would cut
    g_b = grad[:, 48:48 + s]
    bound = cfg.max_betas - 1e-9
    held = ((state.betas >= bound) & (g_b < 0)) | ((state.betas <= -bound) & (g_b > 0))
    if bool(held.any()):
        free = torch.ones_like(grad, dtype=torch.bool)
        free[:, 48:48 + s] = ~held
        keep = (free[:, :, None] & free[:, None, :]).to(hess.dtype)
        hess = hess * keep + torch.diag_embed((~free).to(hess.dtype))
        grad = grad * free.to(grad.dtype)
    step = -torch.linalg.solve(hess, grad[..., None])[..., 0]
    margin = 2.0 * cfg.sigma_limit     # the penalty has no curvature inside: project the step
    pose = torch.maximum(torch.minimum(state.pose.reshape(b, 45) + step[:, 3:48], limits[1] + margin),
                         limits[0] - margin)
    k = 48 + s
    return FitState(root=state.root @ L.batch_rodrigues(step[:, :3]), pose=pose.reshape(b, 15, 3),
                    betas=(state.betas + step[:, 48:k]).clamp(-cfg.max_betas, cfg.max_betas),
                    transl=state.transl + step[:, k:k + 3], offset=state.offset + step[:, k + 3:k + 6],
                    world_rot=None if prior_w is None else state.world_rot @ L.batch_rodrigues(step[:, k + 6:k + 9]),
                    world_scale=state.world_scale * torch.exp(step[:, -1]) if scaled else None)


def initial_state(sk: HandSkeleton, uv: torch.Tensor, world: torch.Tensor, intr: torch.Tensor,
                  cfg: FitConfig, limits: tuple | None = None) -> FitState:
    """Twist-swing start (module docstring) for pixels (B, 21, 2) and world points (B, 21, 3);
    ``limits`` (lo, hi) (45,) clamp each joint in the IK (see ``twist_swing_ik``)."""
    scale = world_scale_start(sk, world) if cfg.fit_world_scale else None
    target = world - world[:, :1] if scale is None else (world - world[:, :1]) * scale[:, None, None]
    betas = fit_betas_to_bones(sk, target, sigma_betas=cfg.sigma_betas) if cfg.fit_shape else \
        world.new_zeros(world.shape[0], sk.j_dirs.shape[-1])
    betas = betas.clamp(-cfg.max_betas, cfg.max_betas)
    box = None if limits is None else tuple(lim.reshape(15, 3) for lim in limits)
    fx, fy, cx, cy = intr
    for _ in range(cfg.lift_iterations):   # pixels lifted to the depths of the target's points
        points = solve_translation(uv, target, intr)[:, None] + target
        z = points[..., 2].clamp_min(0.05)
        lifted = torch.stack([(uv[..., 0] - cx) / fx * z, (uv[..., 1] - cy) / fy * z, z], -1)
        miss = (project(points, intr)[0] - uv).norm(dim=-1)     # a pixel far off: keep the point
        far = miss > torch.clamp_min(3.0 * miss.median(-1, keepdim=True).values, cfg.robust * cfg.sigma_2d)
        lifted = torch.where(far[..., None], points, lifted)
        target = lifted - lifted[:, :1]
    rots = twist_swing_ik(sk, target, betas, twist=cfg.twist, limits=box)
    kin = forward_kinematics(sk, rots, betas)
    rel = kin.joints - kin.joints[:, :1]
    transl = solve_translation(uv, rel, intr)
    rot = None
    if cfg.sigma_world_rotation > 0:       # world axes -> camera axes, as the model now stands
        rot = kabsch(world - world.mean(1, keepdim=True), rel - rel.mean(1, keepdim=True))
    state = FitState(root=rots[:, 0], pose=L.matrix_to_axis_angle(rots[:, 1:]), betas=betas, transl=transl,
                     offset=torch.zeros_like(transl), world_rot=rot, world_scale=scale)
    state.offset = (rotate_world(state, world) - rel).mean(1)
    return state


def _pick(keep: torch.Tensor, new: Any, old: Any) -> Any:
    """Per hand (``keep`` (B,)): ``new`` where True else ``old`` (tensors, dataclasses, tuples,
    None)."""
    if new is None:
        return None
    if isinstance(new, torch.Tensor):
        return torch.where(keep.view(-1, *[1] * (new.ndim - 1)), new, old)
    if is_dataclass(new):
        return type(new)(*(_pick(keep, getattr(new, f.name), getattr(old, f.name)) for f in fields(new)))
    return type(new)(_pick(keep, a, b) for a, b in zip(new, old))


def refine(sk: HandSkeleton, state: FitState, uv: torch.Tensor, world: torch.Tensor,
           intr: torch.Tensor, limits: tuple, cfg: FitConfig) -> FitState:
    """Levenberg-Marquardt with per-hand step acceptance and an annealed robust scale."""
    lam = torch.full((state.pose.shape[0],), cfg.damping, dtype=DTYPE)
    current = evaluate(sk, state, uv, world, intr)
    for it in range(cfg.iterations):
        frac = min(1.0, it / max(cfg.anneal_iterations, 1))
        sc = robust_scales(current[2], current[3], cfg, cfg.robust * cfg.anneal ** (1.0 - frac))
        cost = energy(state, current[2], current[3], limits, cfg, sc, sk)
        trial = lm_step(sk, state, *current, intr, limits, cfg, sc, lam)
        evaluated = evaluate(sk, trial, uv, world, intr)
        new_cost = energy(trial, evaluated[2], evaluated[3], limits, cfg, sc, sk)
        ok = torch.isfinite(evaluated[2]).all(-1).all(-1) & (new_cost < cost)
        if bool(ok.all()):
            state, current = trial, evaluated
        elif bool(ok.any()):
            state, current = _pick(ok, (trial, evaluated), (state, current))
        lam = torch.where(ok, (lam * 0.3).clamp_min(1e-7), (lam * 10.0).clamp_max(1e4))
        if it >= cfg.anneal_iterations and bool((ok & (new_cost > (1.0 - cfg.tolerance) * cost)).all()):
            break                                     # converged: every hand gained < tolerance
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
    init = initial_state(sk, uv, world, intr, cfg, limits)
    state = refine(sk, init, uv, world, intr, limits, cfg)
    _, rel, r3, r2 = evaluate(sk, state, uv, world, intr)
    sc = robust_scales(r3, r2, cfg, cfg.robust)
    return {"init": init, "state": state, "rel": rel, "joints": rel + state.transl[:, None],
            "err2d": r2.norm(dim=-1).mean(-1), "err3d": r3.norm(dim=-1).mean(-1),
            "weights2d": geman_mcclure(r2.norm(dim=-1) / cfg.sigma_2d, sc.t2)[1]}


# ----------------------------------------------------------------------------- public API

#: One detection: landmarks (21, 2) pixels, world landmarks (21, 3) metres, detector score.
Detection = tuple


@dataclass
class FitResult:
    """One fitted hand; camera-frame coordinates in metres, camera axes.

    Attributes:
        vertices: (V, 3) float32 mesh, joints: (21, 3), both in the camera frame;
            vertices_rel, joints_rel: the same minus the wrist (``HandResult``'s convention).
        joints2d: (21, 2) pixels of the fitted joints; wrist: (3,) = ``joints[0]``.
        global_orient: (3,) root axis-angle in the camera frame; hand_pose: (45,) full
            axis-angle of joints 1..15 (MANO order, mean pose included); betas: (S,).
        error_2d: mean pixel distance to the landmarks; error_3d: mean distance (mm) to the
            world landmarks after their offset.
        landmark_weights: (21,) final robust weights of the pixels (near 0: rejected).
        world_rotation: (3,) axis-angle of the estimated rotation of the world landmarks into
            the camera frame (zeros when ``FitConfig.sigma_world_rotation`` is 0).
        world_scale: the estimated scale of the world landmarks (model size / MediaPipe's;
            1 when ``FitConfig.fit_world_scale`` is False).
        hand_size: larger side (px) of the landmarks' bounding box.
        confidence: ``score / ((1 + (error_2d / e_px)^2) (1 + (error_3d / e_mm)^2))`` with
            ``e_px = sqrt(6^2 + (0.04 hand_size)^2)`` px and ``e_mm`` = 12 mm
            (``FitConfig.confidence_px``, ``confidence_2d``, ``confidence_3d``): a fit off by
            that much in either halves the score; 0 when the fit is not finite or the wrist
            is not in front of the camera.
    """

    side: str
    vertices: np.ndarray
    joints: np.ndarray
    vertices_rel: np.ndarray
    joints_rel: np.ndarray
    joints2d: np.ndarray
    wrist: np.ndarray
    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    error_2d: float
    error_3d: float
    landmark_weights: np.ndarray
    confidence: float
    hand_size: float = float("nan")
    world_rotation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    world_scale: float = 1.0


def intrinsics_vector(intrinsics: Any) -> torch.Tensor:
    """(4,) float64 ``(fx, fy, cx, cy)`` from a sequence or an object with those attributes."""
    vals = [getattr(intrinsics, k) for k in ("fx", "fy", "cx", "cy")] \
        if hasattr(intrinsics, "fx") else list(intrinsics)
    out = torch.as_tensor(np.asarray(vals, dtype=np.float64).reshape(-1), dtype=DTYPE)
    if out.numel() != 4 or not bool(torch.isfinite(out).all()) or min(out[0], out[1]) <= 0:
        raise ValueError(f"intrinsics must be finite (fx, fy, cx, cy) with fx, fy > 0, got {vals}")
    return out


def confidence(score: float, error_2d: float, error_3d: float, hand_size: float, cfg: FitConfig) -> float:
    """``score / ((1 + (e_2d / e_px)^2) (1 + (e_3d / c_3d)^2))``, ``e_px = sqrt(c_px^2 +
    (c_2d size)^2)``: pixel errors count against a tolerance that grows with the hand's size
    in the image (MediaPipe's landmark noise does), world landmarks in metres."""
    tol = math.hypot(cfg.confidence_px, cfg.confidence_2d * hand_size)
    return score / ((1.0 + (error_2d / tol) ** 2) * (1.0 + (error_3d / cfg.confidence_3d) ** 2))


def fit_hands(detections: Mapping[str, Detection], intrinsics: Any, hand_models: Mapping[str, Any],
              iterations: int | None = None, config: FitConfig | None = None) -> dict[str, FitResult]:
    """Fit each detected hand's model to its keypoints (module docstring).

    Args:
        detections: side ("left"/"right") -> (landmarks (21, 2) image pixels, world landmarks
            (21, 3) metres, score), or an object with ``landmarks2d``, ``world``, ``score``
            (``HandDetection``); ``JOINT_NAMES`` (MediaPipe) order. Sides are the subject's
            hands. Non-finite values raise ValueError (filter such detections first).
        intrinsics: ``(fx, fy, cx, cy)`` or ``pipeline.placement.Intrinsics``.
        hand_models: side -> ``HandModel`` (MANO or built-in; any vertex count).
        iterations: overrides ``config.iterations``.
        config: weights and solver settings (defaults: :class:`FitConfig`).

    Returns:
        side -> :class:`FitResult`, for the sides in ``detections``.
    """
    cfg = config or FitConfig()
    if iterations is not None:
        cfg = replace(cfg, iterations=int(iterations))
    intr = intrinsics_vector(intrinsics)
    out = {}
    for side, det in detections.items():
        if side not in SIDES:
            raise ValueError(f"detection side must be one of {SIDES}, got {side!r}")
        if side not in hand_models:
            raise ValueError(f"no hand model for the {side} hand")
        if hasattr(det, "landmarks2d"):       # detection.mediapipe_hands.HandDetection
            det = (det.landmarks2d, det.world, det.score)
        uv, world = (np.asarray(a, dtype=np.float64) for a in det[:2])
        score = float(det[2])
        if uv.shape != (21, 2) or world.shape != (21, 3):
            raise ValueError(f"{side}: expected landmarks (21, 2) and world (21, 3), "
                             f"got {uv.shape}, {world.shape}")
        if not (np.isfinite(uv).all() and np.isfinite(world).all() and math.isfinite(score)):
            raise ValueError(f"{side}: landmarks, world landmarks and score must be finite")
        uv, world = torch.from_numpy(uv), torch.from_numpy(world)
        model = hand_models[side]
        sk = skeleton_from_model(model, DTYPE, "cpu")
        fit = fit_keypoints(sk, uv[None], world[None], intr, cfg)
        st = fit["state"]
        orient = L.matrix_to_axis_angle(st.root)
        full = st.pose.reshape(1, 45)
        like = model.v_template
        with torch.no_grad():
            mesh = model(orient.to(like), model_hand_pose(sk, full).to(like), st.betas.to(like),
                         pose_type="axis_angle")
        verts_rel = (mesh.vertices - mesh.joints[:, :1])[0].detach().cpu().double().numpy()
        rel = fit["rel"][0].numpy()
        wrist = st.transl[0].numpy()
        e2, e3 = float(fit["err2d"][0]), float(fit["err3d"][0])
        size = float(np.ptp(uv.numpy(), axis=0).max())
        conf = confidence(score, e2, e3, size, cfg)
        if not (np.isfinite(rel).all() and np.isfinite(verts_rel).all() and wrist[2] > 0):
            conf = 0.0                          # diverged or behind the camera: do not use
        out[side] = FitResult(
            side=side, vertices=(verts_rel + wrist).astype(np.float32), joints=rel + wrist,
            vertices_rel=verts_rel.astype(np.float32), joints_rel=rel,
            joints2d=project(fit["joints"], intr)[0][0].numpy(), wrist=wrist,
            global_orient=orient[0].numpy(), hand_pose=full[0].numpy(), betas=st.betas[0].numpy(),
            error_2d=e2, error_3d=e3 * 1000.0, landmark_weights=fit["weights2d"][0].numpy(),
            confidence=float(conf), hand_size=size,
            world_rotation=np.zeros(3) if st.world_rot is None else
            L.matrix_to_axis_angle(st.world_rot)[0].numpy(),
            world_scale=1.0 if st.world_scale is None else float(st.world_scale[0]))
    return out

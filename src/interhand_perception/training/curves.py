"""Training curves as a PNG (loss terms per step, validation errors per evaluation)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LOSS_KEYS = ("total", "joints3d", "verts3d", "joints2d", "offset", "seg", "dense")

#: Evaluation keys of the handedness panel (see ``evaluation.handedness``).
HANDEDNESS_KEYS = ("lr_seg_acc", "palm_normal_err_deg", "palm_normal_err_const_deg")


def _series(evals: list[dict], key: str) -> list[tuple]:
    """(step, value) of the evaluations that hold a finite ``key``."""
    return [(h["step"], h["eval"][key]) for h in evals
            if isinstance(h["eval"].get(key), (int, float)) and math.isfinite(h["eval"][key])]


def _plot_handedness(ax, evals: list[dict]) -> None:
    """Left/right seg accuracy (left axis, chance 0.5) and the palm-normal error next to its
    constant-guess baseline (right axis, degrees) per evaluation."""
    lines = []
    pts = _series(evals, "lr_seg_acc")
    if pts:
        lines += ax.plot(*zip(*pts), marker="o", color="tab:blue", label="lr_seg_acc")
    ax.axhline(0.5, color="tab:blue", ls=":", lw=0.8)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("left/right seg accuracy (chance 0.5)")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    for key, style in (("palm_normal_err_deg", dict(marker="s", color="tab:red")),
                       ("palm_normal_err_const_deg", dict(ls="--", color="tab:gray"))):
        pts = _series(evals, key)
        if pts:
            label = key if key == "palm_normal_err_deg" else "palm normal, constant guess"
            lines += twin.plot(*zip(*pts), label=label, **style)
    twin.set_ylabel("palm normal error (deg)")
    twin.set_ylim(0.0, 180.0)  # the full range of an angle; ~90 is a random orientation
    twin.set_yticks(range(0, 181, 30))
    ax.set_title("handedness (held-out)")
    if lines:
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="lower left")


def plot_curves(history: list[dict], path: str | Path) -> Path | None:
    """Draw the loss terms (log scale) and the evaluation errors recorded in ``history``, plus
    a handedness panel (left/right seg accuracy, palm-normal error vs. its constant-guess
    baseline) when the evaluations hold those keys.

    Args:
        history: records written by the trainer: ``{"step", "total", ...}`` for losses and
            ``{"step", "eval": {"mpjpe_stage0": ..., ...}}`` for evaluations.
        path: PNG to write.
    Returns:
        The path, or None when there is nothing to draw yet.
    """
    losses = [h for h in history if "total" in h]
    evals = [h for h in history if "eval" in h]
    if not losses and not evals:
        return None
    handed = [h for h in evals if any(k in h["eval"] for k in HANDEDNESS_KEYS)]
    fig, axes = plt.subplots(1, 3 if handed else 2, figsize=(18 if handed else 12, 4.2))
    ax = axes[0]
    for key in LOSS_KEYS:
        pts = [(h["step"], h[key]) for h in losses if key in h and h[key] > 0]
        if pts:
            ax.plot(*zip(*pts), label=key, lw=1.6 if key == "total" else 1.0)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("training loss (weighted terms, all stages)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1]
    keys = sorted({k for h in evals for k in h["eval"] if k.startswith("mpjpe_stage")})
    for key in keys:
        ax.plot([h["step"] for h in evals if key in h["eval"]],
                [h["eval"][key] for h in evals if key in h["eval"]], marker="o", label=key)
    for key in ("mrrpe",):
        pts = [(h["step"], h["eval"][key]) for h in evals if key in h["eval"]]
        if pts:
            ax.plot(*zip(*pts), marker="s", ls="--", label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("mm")
    ax.set_title("held-out synthetic test split")
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(fontsize=8)
    if handed:
        _plot_handedness(axes[2], handed)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

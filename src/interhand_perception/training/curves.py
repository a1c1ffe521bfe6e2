"""Training curves as a PNG (loss terms per step, validation errors per evaluation)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LOSS_KEYS = ("total", "joints3d", "verts3d", "joints2d", "offset", "seg", "dense")


def plot_curves(history: list[dict], path: str | Path) -> Path | None:
    """Draw the loss terms (log scale) and the evaluation errors recorded in ``history``.

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
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""The resume state of a training run, beside its model checkpoint (``dir_net.checkpoint``).

``train_state.pt`` holds the optimiser and scheduler state, counters and the loss history; it
holds tensors and plain types only and is read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

from pathlib import Path

import torch


def save_train_state(path: str | Path, optimizer, scheduler, step: int, epoch: int, history: list,
                     scaler: dict | None = None) -> None:
    """Optimiser, scheduler, counters and loss history for ``--resume`` (tensors and plain types only).

    ``scaler``: the fp16 gradient scaler's ``state_dict()`` (stored under ``"scaler"``), or None.
    """
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "step": int(step), "epoch": int(epoch), "history": history}
    if scaler is not None:
        state["scaler"] = scaler
    torch.save(state, tmp)
    tmp.replace(path)


def load_train_state(path: str | Path) -> dict:
    """Counterpart of :func:`save_train_state`, loaded with ``weights_only=True``."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)

"""Which torch device a name means (``auto``, ``cpu``, ``cuda``, ``cuda:N``)."""
from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available (torch.cuda.is_available() is False); use 'cpu' or 'auto'")
    return torch.device(name)

"""Checkpoints that carry their own configuration.

A model checkpoint is one ``.safetensors`` file: the network weights (fp32 or fp16) plus string
metadata holding the full run configuration (JSON), the hand-model fingerprints it was trained
with, and the training step. Loading needs no pickle at all.

Hand-model arrays (MANO or built-in) are never stored: the network's hand-model buffers are
non-persistent, so a checkpoint trained with MANO does not redistribute MANO.

The resume state of a training run (optimiser, scheduler) is ``training.checkpoint``'s.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT = "interhand_perception/dir-v1"


def save_checkpoint(path: str | Path, model: torch.nn.Module, config: dict, *, step: int = 0,
                    hand_models: dict | None = None, half: bool = False,
                    extra: dict | None = None) -> Path:
    """Write ``model``'s state dict and ``config`` to one safetensors file.

    Args:
        path: output file (``.safetensors``).
        model: the network (a DDP wrapper is unwrapped).
        config: the full run configuration (must be JSON-serialisable).
        step: optimiser step reached.
        hand_models: ``{side: HandModel}``; their fingerprints are recorded.
        half: store floating tensors as fp16 (for small demo files).
        extra: more JSON-serialisable metadata (e.g. evaluation results).
    Returns:
        The path written.
    """
    model = getattr(model, "module", model)
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        if half and v.is_floating_point():
            v = v.half()
        state[k] = v
    meta = {
        "format": FORMAT,
        "config": json.dumps(config, sort_keys=True),
        "step": str(int(step)),
        "hand_models": json.dumps({s: getattr(m, "fingerprint", "?") for s, m in (hand_models or {}).items()}),
        "extra": json.dumps(extra or {}, sort_keys=True),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns:
        ``(state_dict, info)`` where info has ``config`` (dict), ``step`` (int),
        ``hand_models`` (dict) and ``extra`` (dict).
    Raises:
        FileNotFoundError: the file does not exist (the message says how to get weights).
        ValueError: the file is not an interhand_perception checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}. Use the shipped demo weights "
            "(weights/demo_r18_128.safetensors) or train your own with `interhand train --config ...`.")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not an interhand_perception checkpoint (format={meta.get('format')!r})")
        state = {k: f.get_tensor(k) for k in f.keys()}
    info = {
        "config": json.loads(meta["config"]),
        "step": int(meta.get("step", 0)),
        "hand_models": json.loads(meta.get("hand_models", "{}")),
        "extra": json.loads(meta.get("extra", "{}")),
    }
    return state, info


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (identifies checkpoints, ONNX files and engines' sources)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def trained_on(path: str | Path) -> str:
    """What the weights were trained on: the embedded run config's ``data.kind``
    ("synthetic", "interhand26m", ...), read from the file's header only (no tensors);
    "unknown" for a file that is not such a checkpoint or carries no data kind."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            return "unknown"
        return str(json.loads(meta.get("config", "{}")).get("data", {}).get("kind") or "unknown")
    except Exception:  # noqa: BLE001 (missing file, not safetensors: SafetensorError, bad JSON)
        return "unknown"

"""Run configuration: one YAML file describes model, hand model, data, loss and training.

``load_run_config`` merges the file over :data:`DEFAULTS`, checks every key and value, and
raises ``ValueError`` with the dotted key and what to fix. The merged dict is what checkpoints
embed, so a checkpoint always knows how to rebuild its network and its data.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

DEFAULTS: dict = {
    "model": {
        "backbone": "resnet50",
        "img_size": 256,
        "num_stages": 2,
    },
    "hand_model": {
        "mano_dir": None,  # None: the built-in hand model; else a folder with MANO_{RIGHT,LEFT}.pkl
    },
    "data": {
        "kind": "synthetic",  # synthetic | interhand26m
        "train_samples": 20000,
        "test_samples": 500,
        "seed": 0,
        "cache_dir": None,  # pre-rendered synthetic shards (interhand gen-data)
        "root": None,  # InterHand2.6M root
        # What skins InterHand2.6M's NeuralAnnot fits: "mano" (real data: the MANO files of
        # hand_model.mano_dir) or "builtin" (the built-in hand model; only meaningful for data whose
        # fits were made with it, e.g. the fabricated test fixtures; needs hand_model.mano_dir unset).
        "fits_model": "mano",
        "max_samples": None,
        "augment": True,
        "augment_rotation_deg": 180.0,  # in-plane rotation range of the augmentation (release: 180)
        "num_workers": 2,
    },
    "loss": {},
    "train": {
        "out_dir": "runs/default",
        "device": "auto",  # auto | cpu | cuda
        "epochs": 50,
        "batch_size": 64,
        "lr": 3.0e-4,
        "weight_decay": 1.0e-4,
        "warmup_steps": 200,
        "grad_clip": 1.0,
        "max_minutes": None,  # stop (and checkpoint) after this wall time
        "max_steps": None,
        "log_every": 20,
        "ckpt_every": 500,
        "eval_every": 1000,
        "eval_samples": 200,
        "seed": 0,
        "threads": None,  # torch CPU threads; None = torch default
        "save_half": False,
    },
}

CHOICES = {
    "data.kind": ("synthetic", "interhand26m"),
    "data.fits_model": ("mano", "builtin"),
    "train.device": ("auto", "cpu", "cuda"),
}
POSITIVE = ("train.epochs", "train.batch_size", "train.lr", "train.log_every", "train.ckpt_every",
            "train.eval_every", "data.train_samples", "data.test_samples", "model.img_size")


def _merge(base: dict, over: dict, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        key = f"{prefix}{k}"
        if isinstance(out.get(k), dict) and isinstance(v, dict):
            out[k] = _merge(out[k], v, key + ".")
        elif k not in out and prefix.split(".")[0] in ("data", "train", "hand_model"):
            raise ValueError(f"unknown config key '{key}'; known keys in '{prefix[:-1]}': {sorted(base)}")
        else:
            out[k] = v
    return out


def _get(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def validate_run_config(cfg: dict) -> dict:
    """Check a merged configuration; raise ValueError naming the key and the fix."""
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown top-level config sections {sorted(unknown)}; expected {sorted(DEFAULTS)}")
    for key, allowed in CHOICES.items():
        if _get(cfg, key) not in allowed:
            raise ValueError(f"config '{key}' is {_get(cfg, key)!r}; choose one of {allowed}")
    for key in POSITIVE:
        v = _get(cfg, key)
        if not isinstance(v, (int, float)) or v <= 0:
            raise ValueError(f"config '{key}' must be a positive number, got {v!r}")
    if cfg["data"]["kind"] == "interhand26m" and not cfg["data"]["root"]:
        raise ValueError("config 'data.root' must point at the InterHand2.6M folder when data.kind is interhand26m")
    from ..dir_net import DIRConfig  # validates model keys and values

    DIRConfig.from_dict(cfg["model"])
    return cfg


def load_run_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Read a YAML run config, merge it over the defaults and validate it.

    Args:
        path: YAML file or None for the defaults.
        overrides: nested dict applied last (e.g. from the command line).
    """
    user = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        user = yaml.safe_load(p.read_text()) or {}
        if not isinstance(user, dict):
            raise ValueError(f"{p}: the top level must be a mapping")
    cfg = _merge(DEFAULTS, user)
    cfg = _merge(cfg, overrides or {})
    return validate_run_config(cfg)


def parse_overrides(items: list[str]) -> dict:
    """``["train.epochs=3", "model.backbone=resnet18"]`` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override '{item}' must look like section.key=value")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out

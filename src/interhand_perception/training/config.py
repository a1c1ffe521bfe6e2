"""Run configuration: one YAML file describes model, hand model, data, loss and training.

``load_run_config`` merges the file over :data:`DEFAULTS`, checks every key and value, and
raises ``ValueError`` with the dotted key and what to fix. The merged dict is what checkpoints
embed, so a checkpoint always knows how to rebuild its network and its data.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

DEFAULTS: dict = {
    "model": {
        "backbone": "resnet50",
        "img_size": 256,
        "num_stages": 2,
        # ImageNet ResNet weights to start the backbone from: a torchvision-format state dict the
        # user supplies (.pth/.pt saved with torch.save(state_dict), or .safetensors); fc.* is
        # ignored. Loaded at the start of a fresh run (not on --resume). Nothing is downloaded.
        "backbone_weights": None,
    },
    "hand_model": {
        "mano_dir": None,  # None: the built-in hand model; else a folder with MANO_{RIGHT,LEFT}.pkl
    },
    "data": {
        "kind": "synthetic",  # synthetic | interhand26m
        "train_samples": 20000,
        "test_samples": 500,
        "seed": 0,
        "generator_version": 2,  # synthetic generator (data/synthetic.py): 2 = body + skin cues, 1 = old
        "cache_dir": None,  # pre-rendered synthetic shards (interhand gen-data)
        "root": None,  # InterHand2.6M root
        # What skins InterHand2.6M's NeuralAnnot fits: "mano" (real data: the MANO files of
        # hand_model.mano_dir) or "builtin" (the built-in hand model; only meaningful for data whose
        # fits were made with it, e.g. the fabricated test fixtures; needs hand_model.mano_dir unset).
        "fits_model": "mano",
        "max_samples": None,
        "augment": True,
        "augment_rotation_deg": 180.0,  # in-plane rotation range of the augmentation (release: 180)
        # DataLoader worker processes: a number, or "auto" = min(12, CPUs - 2) per GPU process on
        # CUDA, min(4, CPUs // 4) (at least 1) on CPU. CPUs = those this process may run on.
        "num_workers": 2,
        "prefetch_factor": None,  # batches each worker prepares ahead; None = 4 on CUDA, 2 on CPU
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
        "lr_schedule": "steps",  # cosine over max_steps (steps) or over max_minutes of wall time (time)
        "init_from": None,  # start from this checkpoint's weights (same architecture; not the optimiser)
        "max_steps": None,
        "log_every": 20,
        "ckpt_every": 500,
        "eval_every": 1000,
        "eval_samples": 200,
        "seed": 0,
        "threads": None,  # torch CPU threads; None = torch default
        "save_half": False,
        # Mixed precision of the forward pass: "auto" (bf16 autocast on CUDA, off on CPU), "bf16",
        # "fp16" (CUDA only, with a gradient scaler) or "off" (fp32). Losses, the hand models and
        # the camera always run in fp32.
        "amp": "auto",
        "channels_last": "auto",  # NHWC convolutions: "auto" (on for CUDA), true or false
        # torch.compile the network and the loss: false, true (= "default"), or a torch.compile
        # mode ("reduce-overhead" adds CUDA graphs). The first steps are slow while it compiles.
        "compile": False,
    },
}

CHOICES = {
    "data.kind": ("synthetic", "interhand26m"),
    "data.fits_model": ("mano", "builtin"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.amp": ("auto", "bf16", "fp16", "off"),
    "train.lr_schedule": ("steps", "time"),
    "data.generator_version": (1, 2),
}
#: ``train.compile`` values: off, on (torch.compile's default mode), or a torch.compile mode.
COMPILE_MODES = (False, True, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
def _check_runtime_keys(cfg: dict) -> None:
    """Types of the performance keys (num_workers, prefetch_factor, channels_last, compile, ...)."""
    d, t = cfg["data"], cfg["train"]
    workers = d["num_workers"]
    if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValueError(f"config 'data.num_workers' must be an integer >= 0 or 'auto', got {workers!r}")
    pf = d["prefetch_factor"]
    if pf is not None and (isinstance(pf, bool) or not isinstance(pf, int) or pf < 1):
        raise ValueError(f"config 'data.prefetch_factor' must be a positive integer or null, got {pf!r}")
    if t["channels_last"] not in ("auto", True, False):
        raise ValueError(f"config 'train.channels_last' is {t['channels_last']!r}; choose one of auto, true, false")
    if t["compile"] not in COMPILE_MODES:
        raise ValueError(f"config 'train.compile' is {t['compile']!r}; choose one of {COMPILE_MODES}")
    weights = cfg["model"].get("backbone_weights")
    if weights is not None and not isinstance(weights, str):
        raise ValueError(f"config 'model.backbone_weights' must be a file path or null, got {weights!r}")
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
    _check_runtime_keys(cfg)
    from ..dir_net import DIRConfig  # validates model keys and values
    from ..dir_net.build import network_section
    from .losses import LossWeights

    DIRConfig.from_dict(network_section(cfg["model"]))
    LossWeights.from_dict(cfg["loss"])
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
        node[parts[-1]] = _scalar(yaml.safe_load(value))
    return out


_EXPONENT_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _scalar(value):
    """YAML 1.1 reads ``8e-4`` (no dot in the mantissa) as a string; a command line means the number."""
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    return value

"""Where the project's shipped files are (the repository checkout this package is installed from).

The package is installed editable (``pip install -e .``) from a checkout, in the venv and in the
Docker images alike, so shipped data (the demo weights, config/, launch/) sit beside ``src/``.
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_WEIGHTS = REPO_ROOT / "weights" / "demo_r18_128.safetensors"
NODE_CONFIG = REPO_ROOT / "config" / "hands.yaml"

"""Networks whose outputs before the issue-13 rewrite are stored in tests/data/forward_reference.npz.

``seeded_net(cfg)`` builds the network with a fixed seed and perturbs every parameter
(N(0, 0.05) draws, so that the refinement stages move the hands), ``reference_input(cfg)`` is
the fixed input. Both only use the random generator in construction order, so the same code
path gives the same weights; tests/test_compile.py compares the current forward with the
stored outputs.
"""
import torch

from interhand_perception.dir_net.build import build_dir_net
from tiny_config import TINY_MODEL

#: name -> DIRConfig mapping (small enough for a 2-core CPU).
REFERENCE_CASES = {
    "tiny_bone_t3": {**TINY_MODEL, "num_stages": 3},
    "tiny_joint_t1": {**TINY_MODEL, "num_stages": 1, "mfp_mode": "joint"},
    "tiny_single_t2": {**TINY_MODEL, "mfp_mode": "single"},
    "r18_nodeweights_t2": {"backbone": "resnet18", "img_size": 64, "num_stages": 2, "width": 32,
                           "joint_dim": 32, "mfp_kernel": 3},
    "release_r50": {"variant": "release", "backbone": "resnet50", "img_size": 64, "width": 32, "joint_dim": 32},
}


def seeded_net(cfg: dict, seed: int = 13) -> torch.nn.Module:
    """The network of ``cfg`` in eval mode with seeded, perturbed parameters."""
    torch.manual_seed(seed)
    net = build_dir_net(cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not name.startswith("backbone."):  # a perturbed 50-layer trunk overflows
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return net


def reference_input(cfg: dict, batch: int = 1) -> torch.Tensor:
    """(batch, 3, S, S) fixed input of the reference outputs."""
    gen = torch.Generator().manual_seed(7)
    s = cfg["img_size"]
    return torch.randn(batch, 3, s, s, generator=gen)

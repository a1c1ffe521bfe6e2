"""ResNet-18/34/50 encoders returning the stride 4, 8, 16 and 32 feature maps.

Module names follow torchvision (``conv1``, ``bn1``, ``layer1``..``layer4``; blocks with
``conv1``/``bn1``/``conv2``/``bn2`` [``conv3``/``bn3``] and ``downsample.0``/``downsample.1``), so a
torchvision-format state dict loads with :func:`load_torchvision_state_dict`. Nothing here
downloads weights: pretrained weights are a file the user provides.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

# blocks per layer and block type of each depth
_SPECS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convs with identity shortcut. (B, cin, H, W) -> (B, planes, H/s, W/s)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(cin, planes, 3, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = _downsample(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(y + skip)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, "v1.5") -> 1x1 x4. (B, cin, H, W) -> (B, 4*planes, H/s, W/s)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = _conv(cin, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv(planes, out, 1)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample = _downsample(cin, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(y + skip)


class ResNetEncoder(nn.Module):
    """ResNet trunk without the classifier.

    Args:
        depth: "resnet18" | "resnet34" | "resnet50".
    Forward:
        x: (B, 3, S, S) normalised image.
        returns [c2, c3, c4, c5]: (B, C_k, S/4, S/4), (B, ., S/8, .), (B, ., S/16, .),
        (B, ., S/32, .) with C = (64, 128, 256, 512) for 18/34 and (256, 512, 1024, 2048) for 50.
    """

    def __init__(self, depth: str = "resnet50") -> None:
        super().__init__()
        if depth not in _SPECS:
            raise ValueError(f"unknown ResNet depth {depth!r}; choose from {sorted(_SPECS)}")
        kind, counts = _SPECS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        channels = []
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), counts)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, stride if j == 0 else 1))
                cin = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            channels.append(cin)
        self.out_channels: tuple[int, ...] = tuple(channels)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


@dataclass
class LoadReport:
    """Outcome of :func:`load_torchvision_state_dict` (key names in the encoder's naming)."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        for name in ("missing", "unexpected", "mismatched", "ignored"):
            keys = getattr(self, name)
            if keys:
                shown = ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else "")
                parts.append(f"{len(keys)} {name}: {shown}")
        return "; ".join(parts)


def load_torchvision_state_dict(
    encoder: ResNetEncoder,
    state_dict: Mapping[str, torch.Tensor],
    strict: bool = True,
) -> LoadReport:
    """Copy a torchvision-format ResNet state dict into ``encoder`` (in place, no renaming).

    ``fc.*`` (the classifier) is ignored; a leading ``module.`` (DataParallel) is stripped.
    Values are cast to each destination tensor's dtype and device.

    Args:
        encoder: the :class:`ResNetEncoder` to fill.
        state_dict: mapping name -> tensor, e.g. ``torch.load("resnet50.pth")``.
        strict: raise ValueError when keys are missing/unexpected or shapes differ.
    Returns:
        :class:`LoadReport`; with ``strict=False`` whatever matched is loaded anyway.
    """
    report = LoadReport()
    own = encoder.state_dict()
    matched: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if name.startswith("fc."):
            report.ignored.append(name)
        elif name not in own:
            report.unexpected.append(name)
        elif tuple(own[name].shape) != tuple(value.shape):
            report.mismatched.append(f"{name} {tuple(value.shape)} != {tuple(own[name].shape)}")
        else:
            matched[name] = value
    report.missing = sorted(set(own) - set(matched) - {m.split(" ")[0] for m in report.mismatched})
    if strict and not report.ok:
        raise ValueError(f"torchvision state dict does not fit {encoder.depth}: {report.summary()}")
    with torch.no_grad():
        for name, value in matched.items():
            own[name].copy_(value.to(device=own[name].device, dtype=own[name].dtype))
            report.loaded.append(name)
    return report

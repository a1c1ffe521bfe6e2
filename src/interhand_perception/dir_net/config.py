"""Configuration of the DIR network (a dataclass loadable from a YAML mapping).

Only architecture hyper-parameters live here; training settings belong to ``training/``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

#: Channels of the stride-4/8/16/32 feature maps of each supported backbone.
BACKBONE_CHANNELS: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
}

MFP_MODES: tuple[str, ...] = ("bone", "joint", "single")
#: "project": this project's network (model.py); "release": the layout of the authors' public
#: release, whose checkpoints ``interhand import-release`` converts (release_model.py).
VARIANTS: tuple[str, ...] = ("project", "release")
#: Fields the release variant fixes (its structure has no switch for them): name -> value.
RELEASE_FIXED: dict[str, Any] = {"num_stages": 2, "mfp_mode": "bone", "use_gcn": True, "use_transformer": True,
                                 "gcn_node_weights": True, "mfp_kernel": 3, "attention_hidden": None}

#: Layout of the 64 numbers predicted per hand (see docs/architecture.md).
ROT6D_DIM = 6
CAMERA_DIM = 3


@dataclass
class DIRConfig:
    """Architecture of :class:`~interhand_perception.dir_net.model.DIRNet`.

    Attributes:
        variant: "project" (default) or "release" (the authors' released architecture, for their
            weights; it fixes the fields in :data:`RELEASE_FIXED`, runs ``tf_layers`` blocks of
            ``tf_layers + 1`` built ones, and ignores nothing silently: other values raise).
        backbone: "resnet18" | "resnet34" | "resnet50".
        img_size: side S of the square input crop; a multiple of 32 (128, 192, 256, ...).
        num_stages: number T of refinement stages, 0..3 (stage 1 at stride 16, stages 2 and 3
            at stride 8).
        width: channels of the decoder feature maps.
        joint_dim: channels of a joint token (visual + coordinate feature, GCN, transformer).
        mfp_channels: channels of a joint feature after the interaction (64), used by the
            parameter update and splatted by the multi-plane feature projection.
        mfp_mode: "bone" (release variant: 2 x 20 bone planes), "joint" (paper: 2 x 21 joint
            planes) or "single" (ablation: everything summed into one plane).
        use_gcn: intra-hand graph convolution on/off (ablation switch).
        use_transformer: inter-hand transformer on/off (ablation switch).
        gcn_layers: graph-convolution layers per hand.
        gcn_node_weights: per-joint GCN weight matrices as in the reference release (+~2.75M
            parameters per hand and stage at joint_dim 128); default True (the release).
        mfp_kernel: kernel of the first MFP enhancement conv: 3 (release) or 1 (a cheaper
            variant for CPU-sized models: the 2560-channel 3x3 conv dominates their cost).
        tf_layers: transformer blocks.
        tf_heads: attention heads (must divide ``joint_dim``).
        tf_mlp_ratio: hidden size of the transformer MLP relative to ``joint_dim``.
        attention_hidden: hidden channels of each hand's spatial-attention conv; ``None``
            means half the channels of the stride-32 map (1024 for ResNet-50).
        num_pca: PCA pose coefficients per hand (45 = all components).
        num_betas: shape values per hand.
    """

    variant: str = "project"
    backbone: str = "resnet50"
    img_size: int = 256
    num_stages: int = 2
    width: int = 256
    joint_dim: int = 128
    mfp_channels: int = 64
    mfp_mode: str = "bone"
    use_gcn: bool = True
    use_transformer: bool = True
    gcn_layers: int = 4
    gcn_node_weights: bool = True
    mfp_kernel: int = 3
    tf_layers: int = 3
    tf_heads: int = 4
    tf_mlp_ratio: float = 2.0
    attention_hidden: int | None = None
    num_pca: int = 45
    num_betas: int = 10

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "DIRConfig":
        """Raise ValueError naming the first invalid field."""
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.variant == "release":
            for name, value in RELEASE_FIXED.items():
                if getattr(self, name) != value:
                    raise ValueError(f"variant 'release' needs {name}={value!r}, got {getattr(self, name)!r}")
        if self.backbone not in BACKBONE_CHANNELS:
            raise ValueError(f"backbone must be one of {sorted(BACKBONE_CHANNELS)}, got {self.backbone!r}")
        if self.img_size < 64 or self.img_size % 32:
            raise ValueError(f"img_size must be a multiple of 32 and >= 64, got {self.img_size}")
        if not 0 <= self.num_stages <= 3:
            raise ValueError(f"num_stages must be in 0..3, got {self.num_stages}")
        if self.mfp_kernel not in (1, 3):
            raise ValueError(f"mfp_kernel must be 1 or 3, got {self.mfp_kernel}")
        if self.mfp_mode not in MFP_MODES:
            raise ValueError(f"mfp_mode must be one of {MFP_MODES}, got {self.mfp_mode!r}")
        for name in ("width", "joint_dim", "mfp_channels", "tf_heads", "num_betas"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.joint_dim % self.tf_heads:
            raise ValueError(f"tf_heads ({self.tf_heads}) must divide joint_dim ({self.joint_dim})")
        if not 1 <= self.num_pca <= 45:
            raise ValueError(f"num_pca must be in 1..45, got {self.num_pca}")
        if self.gcn_layers < 0 or self.tf_layers < 0 or self.tf_mlp_ratio <= 0:
            raise ValueError("gcn_layers/tf_layers must be >= 0 and tf_mlp_ratio > 0")
        if self.attention_hidden is not None and self.attention_hidden <= 0:
            raise ValueError(f"attention_hidden must be positive or None, got {self.attention_hidden}")
        return self

    # ---- derived quantities -------------------------------------------------------------
    @property
    def encoder_channels(self) -> tuple[int, int, int, int]:
        """Channels of the encoder maps at strides 4, 8, 16, 32."""
        return BACKBONE_CHANNELS[self.backbone]

    @property
    def attention_channels(self) -> int:
        """Resolved hidden width of the spatial-attention convs."""
        if self.attention_hidden is not None:
            return int(self.attention_hidden)
        return self.encoder_channels[3] // 2

    @property
    def num_params(self) -> int:
        """Numbers predicted per hand: 6D rotation + PCA + betas + camera (64 by default)."""
        return ROT6D_DIM + self.num_pca + self.num_betas + CAMERA_DIM

    @property
    def param_slices(self) -> dict[str, slice]:
        """Named slices of the per-hand parameter vector."""
        p, b = self.num_pca, self.num_betas
        return {
            "rot6d": slice(0, ROT6D_DIM),
            "pose": slice(ROT6D_DIM, ROT6D_DIM + p),
            "betas": slice(ROT6D_DIM + p, ROT6D_DIM + p + b),
            "camera": slice(ROT6D_DIM + p + b, ROT6D_DIM + p + b + CAMERA_DIM),
        }

    def stage_strides(self) -> list[int]:
        """Stride (input pixels per map cell) of each refinement stage's map: [16, 8, 8][:T]."""
        return [16, 8, 8][: self.num_stages]

    # ---- (de)serialisation -------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "DIRConfig":
        """Build from a mapping (e.g. a parsed YAML section); unknown keys raise ValueError."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DIRConfig keys: {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python mapping (YAML/JSON friendly) that ``from_dict`` reads back."""
        return asdict(self)

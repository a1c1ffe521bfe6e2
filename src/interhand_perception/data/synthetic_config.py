"""Parameters of the synthetic two-hand generator (``data.synthetic``), a module of their own
so that the scene, body and appearance samplers can take them without importing the generator."""
from __future__ import annotations

from dataclasses import dataclass

#: The newest generator version (see ``data.synthetic``'s docstring).
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the generator (defaults follow InterHand2.6M-like statistics)."""

    img_size: int = 256
    seed: int = 0
    version: int = GENERATOR_VERSION
    pose_style: str = "any"
    betas_std: float = 0.8
    focal_range: tuple[float, float] = (400.0, 1500.0)
    image_width_range: tuple[int, int] = (512, 1280)
    depth_range: tuple[float, float] = (0.3, 1.2)
    palm_facing_p: float = 0.4      # palm towards the camera (else back, else anything)
    back_facing_p: float = 0.35
    orient_spread: float = 0.55     # std of the tilt away from the base direction
    front_p: float = 0.3            # one hand approaches the other along the optical axis
    contact_p: float = 0.6          # gap 0-8 mm, else 8-35 mm (80%) or 35-90 mm
    vertex_slack: float = 0.005     # added to the vertex gap (about the vertex spacing)
    max_root_distance: float = 0.3
    crop_shift: float = 0.04        # crop centre jitter, fraction of the side
    crop_scale: tuple[float, float] = (0.97, 1.08)
    egocentric_p: float = 0.4       # version 2: the person's own camera, else a third person's
    cross_p: float = 0.06           # version 2: crossed arms (left wrist right of the right one)
    arm_p: float = 0.85
    sleeve_p: float = 0.4
    second_light_p: float = 0.5
    distractor_p: float = 0.3
    motion_blur_p: float = 0.15
    jpeg_p: float = 0.3
    noise_max: float = 0.03

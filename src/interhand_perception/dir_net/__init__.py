"""DIR network (Decoupled Iterative Refinement, ICCV 2023) for two interacting hands."""
from .config import DIRConfig
from .heads import CAMERA_S0, decode_camera, encode_camera, project_weak_perspective
from .build import build_dir_net
from .model import DIRNet, count_parameters
from .resnet import ResNetEncoder, load_torchvision_state_dict

__all__ = [
    "DIRConfig", "DIRNet", "build_dir_net", "count_parameters", "ResNetEncoder",
    "load_torchvision_state_dict", "decode_camera", "encode_camera", "project_weak_perspective",
    "CAMERA_S0",
]

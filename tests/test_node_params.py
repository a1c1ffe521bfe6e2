"""hands_node parameter validation (ROS-free): defaults, every error says what to fix."""
from __future__ import annotations

import pytest
import yaml

from interhand_perception.paths import DEMO_WEIGHTS, NODE_CONFIG
from interhand_perception.pipeline.config import PARAMETERS, ConfigError, validate


def test_defaults_are_valid_and_use_the_demo_weights():
    p = validate({})
    assert p.checkpoint == str(DEMO_WEIGHTS)
    assert p.mano_dir is None and p.crop_mode == "detect" and p.crop_roi is None and p.method == "keypoint_fit"
    assert p.device == "auto" and p.precision == "fp32" and p.publish_tf and not p.publish_joint_tf


def test_the_shipped_yaml_lists_every_parameter_and_validates():
    doc = yaml.safe_load(NODE_CONFIG.read_text())
    values = doc["/**/hands_node"]["ros__parameters"]
    assert set(values) == set(PARAMETERS)
    validate(values)


@pytest.mark.parametrize("values, message", [
    ({"crop_mode": "square"}, "crop_mode: 'square' is not one of center, full, roi, detect"),
    ({"method": "hamer"}, "method: 'hamer' is not one of dir, keypoint_fit"),
    ({"crop_mode": "roi"}, "crop_roi: crop_mode roi needs [cx, cy, side]"),
    ({"crop_mode": "roi", "crop_roi": [10.0, 10.0, -5.0]}, "side > 0"),
    ({"device": "gpu"}, "device: 'gpu' is not auto, cpu, cuda or cuda:N"),
    ({"device": "cpu", "precision": "fp16"}, "fp16 needs a CUDA device"),
    ({"precision": "fp64"}, "precision: 'fp64' is not one of fp32, fp16, bf16, int8"),
    ({"device": "cpu", "precision": "bf16"}, "bf16 needs a CUDA device"),
    ({"device": "cuda", "precision": "bf16", "backend": "tensorrt"}, "precision: bf16 needs backend pytorch"),
    ({"cuda_graph": "on"}, "cuda_graph: expected true or false"),
    ({"precision": "int8", "backend": "onnxruntime", "device": "cuda"}, "precision: int8 needs backend tensorrt"),
    ({"backend": "openvino"}, "backend: 'openvino' is not one of auto, pytorch, onnxruntime, tensorrt"),
    ({"cpu_threads": -1}, "cpu_threads: -1 is outside [0, 256]"),
    ({"image_transport": "theora"}, "image_transport"),
    ({"min_confidence": 1.5}, "min_confidence: 1.5 is outside [0, 1]"),
    ({"assumed_hfov_deg": 0.0}, "assumed_hfov_deg: 0.0 is outside (0, 179]"),
    ({"max_image_width": 10.5}, "max_image_width: expected an integer"),
    ({"publish_tf": "yes"}, "publish_tf: expected true or false"),
    ({"frame_prefix": "/abs"}, "frame_prefix"),
    ({"diagnostics_period_s": float("nan")}, "diagnostics_period_s: expected a finite number"),
    ({"method": "dir", "checkpoint": "/nonexistent/w.safetensors"}, "checkpoint: /nonexistent/w.safetensors does not exist"),
    ({"mano_dir": "/nonexistent/mano"}, "mano_dir: /nonexistent/mano is not a directory"),
    ({"crop_mod": "center"}, "unknown parameter(s) crop_mod"),
    ({"image_topic": "camera//image"}, "image_topic: 'camera//image' is not a valid ROS 2 topic name"),
    ({"output_topic": "2hands"}, "output_topic: '2hands' is not a valid ROS 2 topic name"),
])
def test_invalid_values_fail_with_what_to_fix(values, message):
    with pytest.raises(ConfigError) as err:
        validate(values)
    assert message in str(err.value)


def test_all_problems_are_reported_at_once(tmp_path):
    (tmp_path / "mano").mkdir()
    (tmp_path / "mano" / "MANO_RIGHT.pkl").write_bytes(b"")
    with pytest.raises(ConfigError) as err:
        validate({"mano_dir": str(tmp_path / "mano"), "placement": "both", "warn_period_s": -1})
    text = str(err.value)
    assert "lacks MANO_LEFT.pkl" in text and "placement: 'both'" in text and "warn_period_s: -1" in text
    assert text.count("\n  - ") == 3


def test_roi_accepts_integers_from_yaml():
    p = validate({"crop_mode": "roi", "crop_roi": [320, 240, 300]})
    assert p.crop_roi == (320.0, 240.0, 300.0)


# ----------------------------------------------------------------------------- one table
def test_node_params_fields_follow_the_table():
    """``NodeParams`` has the table's names, in its order, with the defaults' types."""
    import typing
    from dataclasses import fields

    from interhand_perception.pipeline.config import NodeParams

    assert [f.name for f in fields(NodeParams)] == list(PARAMETERS)
    hints = typing.get_type_hints(NodeParams)
    resolved = {"checkpoint": str, "mano_dir": (str | None), "crop_roi": (tuple[float, float, float] | None)}
    for name, p in PARAMETERS.items():
        assert hints[name] == resolved.get(name, type(p.default)), name
    defaults = validate({})
    for name, p in PARAMETERS.items():
        if name not in resolved:
            assert getattr(defaults, name) == p.default, name


def test_shipped_yaml_and_docs_table_are_generated_from_the_table():
    """config/hands.yaml and the table of docs/node.md are what ``interhand params`` prints:
    regenerate them (``interhand params > config/hands.yaml``, and the markdown between the
    markers) after changing the table."""
    from interhand_perception.paths import REPO_ROOT
    from interhand_perception.pipeline.config import MARKDOWN_BEGIN, MARKDOWN_END, render_markdown, render_yaml

    assert NODE_CONFIG.read_text() == render_yaml()
    doc = (REPO_ROOT / "docs" / "node.md").read_text()
    assert doc.split(MARKDOWN_BEGIN + "\n")[1].split(MARKDOWN_END)[0] == render_markdown()


def test_every_entry_is_described_with_its_range_in_help_and_yaml():
    from interhand_perception.pipeline.config import GROUPS, help_text, render_yaml

    text, yml = help_text(), render_yaml()
    for name, p in PARAMETERS.items():
        assert p.group in GROUPS and len(p.description) > 20, name
        assert f"    {name} " in text and f"    {name}: " in yml, name
        if p.lo is not None:
            assert p.lo < p.hi and (p.range_text() in text), name
        if p.choices:
            assert isinstance(p.default, str) and p.default in p.choices, name
    assert "--- smoothing and interpenetration ---" in yml

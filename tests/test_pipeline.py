"""``pipeline.Pipeline``: the one per-frame chain of the node, ``interhand infer`` and the
benchmark (unmirror -> method -> confidence -> depth, smoothing, interpenetration).

Real parts: the shipped demo weights (DIR, ResNet-18 at 128 px) on a held-out synthetic frame,
the real post-processing; nothing is mocked.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from interhand_perception.data.synthetic import SyntheticConfig, generate_sample
from interhand_perception.paths import DEMO_WEIGHTS
from interhand_perception.pipeline.methods import DIRMethod
from interhand_perception.pipeline.pipeline import Pipeline, post_config
from interhand_perception.pipeline.placement import intrinsics_from_camera_info
from interhand_perception.pipeline.postprocess import PostConfig, PostProcessor
from interhand_perception.pipeline.config import validate


@pytest.fixture(scope="module")
def reconstructor():
    from interhand_perception.network import HandReconstructor

    return HandReconstructor.from_checkpoint(DEMO_WEIGHTS, device="cpu")


@pytest.fixture(scope="module")
def frame():
    """A 256 x 256 held-out render, its intrinsics and a depth image at the hands' depth."""
    s = generate_sample(3, "test", SyntheticConfig(img_size=256))
    intr = intrinsics_from_camera_info(s["K"].reshape(-1).tolist(), 256, 256)
    depth = np.full((256, 256), np.nan)
    depth[:, :128] = float(s["joints3d"][:, 0, 2].mean())   # a reading on the left half only
    return s["image"], intr, depth


def test_the_chain_is_the_method_then_the_post_processing(reconstructor, frame):
    rgb, intr, depth = frame
    method = DIRMethod(reconstructor, "full")
    pipe = Pipeline(method, reconstructor.hand_models, min_confidence=0.3, post=PostConfig(smoothing=True))
    out = pipe(rgb, intr, 0.0, depth)
    # the same steps by hand
    by_hand, _ = method(rgb, intr, 0.0)
    valid = by_hand.confidence >= 0.3
    by_hand, valid, post = PostProcessor(PostConfig(smoothing=True), pipe.faces)(by_hand, valid, 0.0, intr, depth)
    np.testing.assert_array_equal(out.valid, valid)
    np.testing.assert_allclose(out.frame.placed.joints, by_hand.placed.joints, atol=1e-6)
    assert out.post["depth"] == post["depth"]
    assert {"crop", "network", "placement", "method", "post"} <= set(out.timings)
    assert out.intrinsics == intr and out.rgb is rgb


def test_min_confidence_decides_validity(reconstructor, frame):
    rgb, intr, _ = frame
    pipe = Pipeline(DIRMethod(reconstructor, "full"), reconstructor.hand_models, min_confidence=0.0)
    assert pipe(rgb, intr, 0.0).valid.all()
    pipe = Pipeline(DIRMethod(reconstructor, "full"), reconstructor.hand_models, min_confidence=1.0)
    assert not pipe(rgb, intr, 0.0).valid.any()


def test_a_mirrored_stream_gives_the_hands_of_the_true_image(reconstructor, frame):
    """The mirror of the image and of its depth image, principal point mirrored too, with
    ``mirrored``: the same hands, in the same places, as the true image."""
    rgb, intr, depth = frame
    w = rgb.shape[1]
    mirrored_intr = replace(intr, cx=(w - 1) - intr.cx)
    plain = Pipeline(DIRMethod(reconstructor, "full"), reconstructor.hand_models, post=PostConfig(smoothing=False))
    selfie = Pipeline(DIRMethod(reconstructor, "full"), reconstructor.hand_models, mirrored=True,
                      post=PostConfig(smoothing=False))
    a = plain(rgb, intr, 0.0, depth)
    b = selfie(np.ascontiguousarray(rgb[:, ::-1]), mirrored_intr, 0.0, np.ascontiguousarray(depth[:, ::-1]))
    np.testing.assert_allclose(b.frame.placed.joints, a.frame.placed.joints, atol=1e-5)
    assert b.post["depth"] == a.post["depth"] and any(a.post["depth"])   # the depth image was used
    assert b.intrinsics.cx == pytest.approx(intr.cx)


def test_built_from_the_node_parameters(frame):
    p = validate({"method": "dir", "checkpoint": str(DEMO_WEIGHTS), "crop_mode": "full", "device": "cpu",
                  "min_confidence": 0.25, "smoothing_beta": 3.0, "hand_timeout_s": 0.5, "backend": "pytorch"})
    pipe = Pipeline.from_params(p)
    assert pipe.min_confidence == 0.25 and pipe.post.config == post_config(p)
    assert pipe.post.config.beta == 3.0 and pipe.post.config.timeout_s == 0.5
    rgb, intr, _ = frame
    first = pipe(rgb, intr, 0.0)
    assert first.frame.placed.joints.shape == (2, 21, 3) and pipe.model_id
    pipe.reset(replace(pipe.post.config, smoothing=False))     # a new stream: no smoothing state
    assert pipe.post.tracks is None

"""Deployment: the network on fast runtimes (ROS-free).

:mod:`.export_onnx` exports DIR with its hand-model layer to ONNX; :mod:`.inference_backends`
puts PyTorch, ONNX Runtime and TensorRT (:mod:`.tensorrt_engine`, :mod:`.tensorrt_backend`:
engines built and cached per TensorRT version, GPU, precision and model) behind one interface
that ``runtime.pipeline.FrameProcessor`` accepts; :mod:`.fast_inference` holds the measured CPU
speed-ups; :mod:`.backend_bench` compares them stage by stage (docs/cpu_speed.md).
"""

"""One camera frame -> both hands in the camera frame (ROS-free).

The data path, in the order a frame takes it:

* :mod:`.decode`: image bytes / arrays -> RGB, with the bad-input errors (``InputError``);
* :mod:`.camera_info`: camera_info fitted to the image (size, ROI, binning, distortion);
* :mod:`.methods`: the reconstruction method (``dir``: crop -> network -> :mod:`.placement`,
  in :mod:`.frame`; ``keypoint_fit``: detector -> hand-model fit);
* :mod:`.postprocess`: :mod:`.depth` (aligned depth image), :mod:`.smoothing` (One Euro
  filter, hand timeouts) and :mod:`.penetration` (measure, optionally resolve);
* :mod:`.frame_stats`, :mod:`.stream_health`: what the node's diagnostics report.
"""

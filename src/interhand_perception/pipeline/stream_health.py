"""The health of an image stream, for the node's /diagnostics and filtering (ROS-free).

Three things a camera stream gets wrong that the reconstruction itself cannot see:

* :class:`StreamClock`: **stamps** that are zero (some drivers, bag tools) or not later than
  the previous one. The temporal filter and ``hand_timeout_s`` need a time that moves forward,
  so every frame gets a *stream time*: it advances by the stamp difference while stamps are
  sane and by the time of receipt otherwise, so a hand that left the view still times out.
* :class:`TransportMeter`: **frames lost before the node saw them** (a best-effort transport
  that drops large messages, a full subscription queue). DDS numbers every sample a publisher
  writes (``publication_sequence_number`` with the publisher's id in rclpy's ``MessageInfo``);
  gaps in those numbers are frames that were published and never arrived, and the numbers
  advance at the publisher's rate, whatever arrives.
* :func:`assess` turns the node's counters into a diagnostic level and the problems to
  report: no image yet (WARN), a camera that stopped (no frame for ``image_timeout_s``:
  ERROR), frames arriving far below the publisher's rate (WARN), and the camera_info and
  error states the node passes in.

Times are seconds on one monotonic clock, passed in, so that tests drive them.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

#: Diagnostic levels (diagnostic_msgs/DiagnosticStatus).
OK, WARN, ERROR = 0, 1, 2

#: Input arriving below this share of the publisher's rate is reported (WARN).
MIN_DELIVERED_RATIO = 0.5

#: What to do about frames lost before the node (measured in docs/ros_node.md).
LOSS_HINT = ("frames are lost before the node takes them: in transport (with Fast DDS, images over 512 KiB "
             "need config/fastdds_large_images.xml in the CAMERA DRIVER's process: FASTDDS_DEFAULT_PROFILES_FILE, "
             "or FASTRTPS_DEFAULT_PROFILES_FILE on Humble/Jazzy; docs/ros_node.md) or, when processing_p50_ms is "
             "long, because this process is too busy to take each one before the next replaces it")


class StreamClock:
    """Stream time for filtering from image stamps, robust to zero and backwards stamps.

    ``stream time`` starts at the first frame's stamp (or its time of receipt when that stamp
    is zero) and then only moves forward: by ``stamp - previous stamp`` when both stamps are
    set and increasing, by ``received - previous received`` otherwise. Its absolute value
    means nothing; its differences are what the filter and the hand timeout use.
    """

    def __init__(self) -> None:
        self._stamp: float | None = None      # previous non-zero stamp
        self._received: float | None = None   # previous time of receipt
        self._t: float | None = None

    def __call__(self, stamp_s: float, received_s: float) -> tuple[float, str | None]:
        """One frame: (stream time, problem) with problem None, ``"stamp_zero"`` or
        ``"stamp_backwards"`` (not later than the previous stamp; equal counts).

        Args:
            stamp_s: the image's header.stamp in seconds (0 = unset).
            received_s: when the node received it (monotonic seconds).
        """
        problem = None
        if stamp_s == 0.0:
            problem = "stamp_zero"
        elif self._stamp is not None and stamp_s <= self._stamp:
            problem = "stamp_backwards"
        if self._t is None:
            t = stamp_s if problem is None else received_s
        elif problem is None and self._stamp is not None:
            t = self._t + (stamp_s - self._stamp)
        else:
            t = self._t + max(received_s - self._received, 0.0)
        if stamp_s != 0.0:
            self._stamp = stamp_s  # a stream that restarts its clock (a looping bag) is followed
        self._received, self._t = received_s, t
        return t, problem


class TransportMeter:
    """Frames published vs frames received, from DDS publication sequence numbers.

    Per publisher (its id), a sequence number more than one above the previous one means the
    samples in between were published and never delivered; a number at or below the previous
    one means the publisher restarted (counted from there). Frames without a sequence number
    (an RMW that does not report it) make the published side unknown.

    Args:
        window_s: the rate window, seconds.
    """

    def __init__(self, window_s: float = 5.0):
        self.window_s = float(window_s)
        self.lost = 0
        self.numbered = 0            # frames that carried a sequence number
        self._last: dict = {}        # publisher id -> last sequence number
        self._events: deque = deque()  # (time, samples published since the previous frame)

    def record(self, publisher, sequence: int | None, t: float) -> None:
        """A frame from ``publisher`` (any hashable id, or None) numbered ``sequence`` arrived
        at ``t``."""
        if sequence is None:
            return
        self.numbered += 1
        previous = self._last.get(publisher)
        advanced = 1
        if previous is not None and sequence > previous:
            advanced = sequence - previous
            self.lost += advanced - 1
        self._last[publisher] = sequence
        self._events.append((float(t), advanced))
        while self._events and self._events[0][0] < t - self.window_s:
            self._events.popleft()

    def published_rate(self, now: float) -> float | None:
        """Samples per second the publishers wrote over the window ending at ``now``, or None
        when unknown (fewer than two numbered frames in the window)."""
        while self._events and self._events[0][0] < now - self.window_s:
            self._events.popleft()
        if len(self._events) < 2:
            return None
        covered = now - self._events[0][0]
        return sum(n for _, n in list(self._events)[1:]) / covered if covered > 0 else None

    def snapshot(self, now: float) -> dict:
        """``lost_in_transport`` (None when no frame carried a number) and ``published_rate_hz``."""
        rate = self.published_rate(now)
        return {"lost_in_transport": self.lost if self.numbered else None,
                "published_rate_hz": None if rate is None else round(rate, 2)}


@dataclass(frozen=True)
class HealthInputs:
    """What :func:`assess` looks at.

    Attributes:
        received: frames received so far.
        last_input_age_s: seconds since the newest frame arrived (None: none yet).
        input_rate_hz: frames received per second (window).
        published_rate_hz: the publisher's rate (None: unknown).
        image_timeout_s: a stream silent this long counts as stopped.
        image_topic: resolved topic name, for the messages.
    """

    received: int
    last_input_age_s: float | None
    input_rate_hz: float
    published_rate_hz: float | None
    image_timeout_s: float
    image_topic: str


def assess(h: HealthInputs) -> tuple[int, list[str]]:
    """(level, problems) of the image stream: OK, WARN or ERROR and one sentence per problem."""
    if h.received == 0 or h.last_input_age_s is None:
        return WARN, [f"no images received on {h.image_topic} yet"]
    if h.last_input_age_s > h.image_timeout_s:
        return ERROR, [f"no image for {h.last_input_age_s:.1f} s on {h.image_topic} (image_timeout_s "
                       f"{h.image_timeout_s:g}): the camera stopped or its messages no longer arrive"]
    if h.published_rate_hz and h.input_rate_hz < MIN_DELIVERED_RATIO * h.published_rate_hz:
        return WARN, [f"receiving {h.input_rate_hz:.1f} of {h.published_rate_hz:.1f} images/s published on "
                      f"{h.image_topic}: {LOSS_HINT}"]
    return OK, []

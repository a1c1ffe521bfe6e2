"""DDS participants for the ROS tests and their child processes (no test here).

:class:`Participant` is one rclpy context (its own DDS participant), one node and an executor,
so that one process can play two ends of a topic. :func:`serve_until_stdin_closes` keeps a
child process's publishers alive (late subscribers, reliable repairs) until the parent closes
its stdin.
"""
from __future__ import annotations

import select
import sys
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor


class Participant:
    """One rclpy context (its own DDS participant), one node and an executor."""

    def __init__(self, name: str):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, condition, timeout: float = 30.0) -> bool:
        """Spin until ``condition()``; False on timeout."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.01)
        return True

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def serve_until_stdin_closes(p: Participant, timeout: float) -> int:
    """Spin ``p`` until the parent closes our stdin (0), or ``timeout`` seconds (3, said on stderr)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p.executor.spin_once(timeout_sec=0.02)
        if select.select([sys.stdin], [], [], 0)[0] and sys.stdin.readline() == "":
            return 0
    print("child: parent never closed stdin", file=sys.stderr)
    return 3

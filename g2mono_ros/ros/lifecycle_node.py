"""The managed (lifecycle) variant of the depth node, for stacks that bring perception up in order.

Same phases and code path as ``DepthNode`` (``DepthNodePhases``), driven by lifecycle transitions:
configure validates and loads the network, activate subscribes and starts the worker,
deactivate stops them (the network stays loaded), cleanup frees it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from g2mono_ros.errors import G2MonoError
from g2mono_ros.ros.node import NODE_NAME, DepthNodePhases, _run_node

__all__ = ['LifecycleDepthNode', 'main']


class LifecycleDepthNode(DepthNodePhases, LifecycleNode):
    """``depth_node`` as a lifecycle node; starts unconfigured, with its parameters declared.

    A bad parameter or checkpoint makes ``configure`` fail (the node stays unconfigured and logs
    why) instead of ending the process, so the lifecycle manager can report it.
    """

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._declare_parameters()
        self._configured = False
        self._active = False
        self._worker = None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except G2MonoError as exc:
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        self._configured = True
        self.get_logger().info(f'configured: network loaded on {self.engine.device}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._activate()
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self.get_logger().info('deactivated: inputs unsubscribed, network kept loaded')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info('cleaned up: network freed')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # Back to unconfigured with nothing running: a later configure starts afresh.
        self._stop()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop(self) -> None:
        if self._active:
            self._deactivate()
            self._active = False

    def _release(self) -> None:
        if self._configured:
            self._cleanup()
            self._configured = False

    def close(self, timeout_s: float | None = None) -> bool:
        """Stop the worker (if any) before the node is destroyed; False if still running."""
        if not self._configured:
            return True
        return super().close() if timeout_s is None else super().close(timeout_s)


def main(args: Sequence[str] | None = None) -> int:
    """Console entry point ``depth_lifecycle_node``: 0 on a clean shutdown, 2 on a bad setting."""
    argv = list(sys.argv if args is None else args)
    try:
        return _run_node(argv, LifecycleDepthNode)
    except G2MonoError as exc:
        print(f'{NODE_NAME}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())

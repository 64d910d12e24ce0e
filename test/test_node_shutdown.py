"""Shutdown of the node process: the one upstream artefact dropped from stderr after Ctrl-C
(a half-built rclpy Task collected later), and every other unraisable exception still shown."""

from __future__ import annotations

import gc
import sys

import pytest

pytest.importorskip('rclpy')


class _RaisesOnDel:
    def __del__(self) -> None:
        raise ValueError('a real problem')


def test_half_built_rclpy_task_is_quiet_after_shutdown_and_others_are_not(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from rclpy.task import Task

    from g2mono_ros.ros.node import _ignore_half_built_rclpy_tasks

    monkeypatch.setattr(sys, 'unraisablehook', sys.__unraisablehook__)
    # Without the hook: what a KeyboardInterrupt inside Task.__init__ leaves on stderr.
    half_built = Task.__new__(Task)
    del half_built
    gc.collect()
    assert "no attribute '_exception'" in capsys.readouterr().err

    _ignore_half_built_rclpy_tasks()
    half_built = Task.__new__(Task)
    del half_built
    gc.collect()
    assert capsys.readouterr().err == ''
    other = _RaisesOnDel()
    del other
    gc.collect()
    assert 'a real problem' in capsys.readouterr().err

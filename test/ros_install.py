"""Test helper for a ROS install (``colcon build`` + ``source install/setup.bash``): the
package's console scripts live in ``<prefix>/lib/g2mono_ros`` (where ``ros2 run`` looks), not on
PATH, so the tests that start ``depth_node`` by name would not find it. Used by conftest.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import MutableMapping
from pathlib import Path

__all__ = ['put_installed_scripts_on_path']


def put_installed_scripts_on_path(environ: MutableMapping[str, str] = os.environ) -> Path | None:
    """Prepend ``<ament prefix of g2mono_ros>/lib/g2mono_ros`` to ``environ['PATH']`` when
    ``depth_node`` is not on PATH yet and that folder has it; returns the folder added or None.

    ``AMENT_PREFIX_PATH`` is read from ``environ``; a venv (no ament install of the package, or
    its scripts in the venv's bin) is left as it is.
    """
    path = environ.get('PATH', '')
    if shutil.which('depth_node', path=path) is not None:
        return None
    for prefix in environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        marker = Path(prefix) / 'share' / 'ament_index' / 'resource_index' / 'packages'
        scripts = Path(prefix) / 'lib' / 'g2mono_ros'
        if prefix and (marker / 'g2mono_ros').is_file() and (scripts / 'depth_node').is_file():
            environ['PATH'] = os.pathsep.join([str(scripts), path]) if path else str(scripts)
            return scripts
    return None

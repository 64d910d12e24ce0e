"""Keeps a module-level skip to its own module when launch_testing's pytest plugin is installed.

launch_testing (every ROS 2 install; its plugin loads by entry point) imports each test file
inside ``pytest_pycollect_makemodule`` to look for ``generate_test_description`` and catches only
``SyntaxError``. A ``pytest.importorskip`` at module level then raises ``Skipped`` out of the
directory's collection, and pytest skips every test file of the directory (``1 skipped``, nothing
run). This hook wrapper turns that into a plain ``pytest.Module``, whose own import reports the
skip for that file alone. Used by ``conftest.py``; tested in ``test_collect_guard.py``.
"""

from __future__ import annotations

import pytest

__all__ = ['pytest_pycollect_makemodule']

_PYTEST_MAJOR = int(pytest.__version__.split('.')[0])


def _module_instead_of_skip(outcome, parent, **path):
    try:
        outcome.get_result()
    except pytest.skip.Exception:
        # pytest's Module imports the file again and reports its skip as the module's.
        outcome.force_result(pytest.Module.from_parent(parent, **path))


# pluggy checks a hook implementation's argument names against the spec of this pytest:
# 6.x (Humble) passes `path`, 7.x (Jazzy) both, 8+ only `module_path`.
if _PYTEST_MAJOR >= 7:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_pycollect_makemodule(module_path, parent):
        outcome = yield
        if module_path.name != '__init__.py':
            _module_instead_of_skip(outcome, parent, path=module_path)
else:  # pragma: no cover - pytest 6 (Ubuntu 22.04, ROS 2 Humble)
    @pytest.hookimpl(hookwrapper=True)
    def pytest_pycollect_makemodule(path, parent):
        outcome = yield
        if path.basename != '__init__.py':
            _module_instead_of_skip(outcome, parent, fspath=path)

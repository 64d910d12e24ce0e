"""``collect_guard``: with launch_testing's collection hook, one test file's module-level skip
skips that file only, not every file of the directory.

launch_testing cannot be installed here, so its hook is a FAKE (``FAKE_LAUNCH_TESTING``) that
does what the real ``launch_testing.pytest.hooks.find_launch_test_entrypoint`` does: import the
file inside ``pytest_pycollect_makemodule``, catching ``SyntaxError`` only. Each case runs a
separate pytest on three small files in ``tmp_path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TEST_DIR = Path(__file__).resolve().parent

FAKE_LAUNCH_TESTING = '''
import importlib
import sys
from pathlib import Path

import pytest

def _entrypoint(path):
    sys.path.insert(0, str(path.parent))
    try:
        module = importlib.import_module(path.stem)
    except SyntaxError:
        return None
    return getattr(module, 'generate_test_description', None)

if int(pytest.__version__.split('.')[0]) >= 7:
    def pytest_pycollect_makemodule(module_path, parent):
        _entrypoint(module_path)
else:
    def pytest_pycollect_makemodule(path, parent):
        _entrypoint(Path(str(path)))
'''

FILES = {
    'test_first.py': 'def test_first():\n    pass\n',
    'test_needs_missing.py': ("import pytest\n\npytest.importorskip('no_such_module_g2mono')\n\n\n"
                              'def test_never_runs():\n    pass\n'),
    'test_last.py': 'def test_last():\n    pass\n',
}


def _run(tmp_path: Path, plugins: list[str]) -> str:
    (tmp_path / 'plugins').mkdir(exist_ok=True)
    (tmp_path / 'plugins' / 'fake_launch_testing.py').write_text(FAKE_LAUNCH_TESTING)
    tests = tmp_path / 'tests'
    tests.mkdir(exist_ok=True)
    for name, text in FILES.items():
        (tests / name).write_text(text)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path / 'plugins'), str(TEST_DIR), os.environ.get('PYTHONPATH', '')]))
    args = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-rs']
    for plugin in plugins:
        args += ['-p', plugin]
    result = subprocess.run([*args, str(tests)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    return result.stdout + result.stderr


def test_without_the_guard_one_skip_skips_the_directory(tmp_path):
    """The hazard itself (so the next test is known to test something)."""
    out = _run(tmp_path, ['fake_launch_testing'])
    assert 'passed' not in out and '1 skipped' in out, out


@pytest.mark.parametrize('plugins', [['fake_launch_testing', 'collect_guard'], ['collect_guard']])
def test_with_the_guard_the_skip_stays_in_its_module(tmp_path, plugins):
    out = _run(tmp_path, plugins)
    assert '2 passed, 1 skipped' in out, out
    assert 'no_such_module_g2mono' in out, out  # the skip reason names the missing module

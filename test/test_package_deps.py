"""package.xml declares what the code imports, and nothing it does not (rosdep installs from it).

Reads the sources as text (no imports): every ROS package or rosdep-keyed Python module
imported by the package, its launch file or its tests must be declared, and every declared
dependency must be used.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

# rosdep key -> how its use shows in the sources (a module name, or a text for pytest plugins).
PYTHON_KEYS = {
    'python3-numpy': 'numpy', 'python3-yaml': 'yaml', 'python3-opencv': 'cv2',
    'python3-pil': 'PIL', 'python3-tqdm': 'tqdm', 'python3-matplotlib': 'matplotlib',
    'python3-skimage': 'skimage',
    'python3-pytest': 'pytest',
}
PLUGIN_TEXT = {'python3-pytest-timeout': 'pytest.mark.timeout'}
# Used through another package's module: rclpy.lifecycle needs lifecycle_msgs at run time.
INDIRECT_TEXT = {'lifecycle_msgs': 'rclpy.lifecycle'}
# ROS packages whose Python module has another name: `import tf2_ros` needs tf2_ros_py (the
# package tf2_ros is the C++ library and does not pull the Python one in).
ROS_PACKAGE_OF_MODULE = {'tf2_ros': 'tf2_ros_py'}
MODULE_OF_ROS_PACKAGE = {package: module for module, package in ROS_PACKAGE_OF_MODULE.items()}
ROS_MODULE = re.compile(r'^(rclpy|rcl_interfaces|ament_index_python|launch|launch_ros|'
                        r'launch_testing|tf2_ros|message_filters|cv_bridge|sensor_msgs_py|'
                        r'rosbag2_py|\w+_msgs)$')
IMPORT = re.compile(r'^\s*(?:from|import)\s+([A-Za-z_]\w*)', re.MULTILINE)


def _declared(repo_root: Path) -> dict[str, set[str]]:
    root = ET.parse(repo_root / 'package.xml').getroot()
    return {tag: {e.text.strip() for e in root.iter(tag)}
            for tag in ('exec_depend', 'test_depend', 'depend', 'build_depend')}


def _used(files) -> tuple[set[str], str]:
    modules: set[str] = set()
    text = ''
    for path in files:
        source = path.read_text()
        text += source
        modules.update(IMPORT.findall(source))
    return modules, text


def test_every_imported_ros_package_is_declared_and_every_declaration_used(repo_root):
    declared = _declared(repo_root)
    run_files = [*(repo_root / 'g2mono_ros').rglob('*.py'), *(repo_root / 'launch').glob('*.py')]
    test_files = list((repo_root / 'test').glob('*.py'))
    run_modules, run_text = _used(run_files)
    test_modules, test_text = _used(test_files)
    exec_deps = declared['exec_depend'] | declared['depend']
    test_deps = declared['test_depend'] | exec_deps

    run_packages = {ROS_PACKAGE_OF_MODULE.get(m, m) for m in run_modules if ROS_MODULE.match(m)}
    test_packages = {ROS_PACKAGE_OF_MODULE.get(m, m) for m in test_modules
                     if ROS_MODULE.match(m)}
    missing_run = run_packages - exec_deps
    missing_test = test_packages - test_deps
    assert not missing_run, f'imported by the package but not <exec_depend>: {sorted(missing_run)}'
    assert not missing_test, f'imported by the tests but not declared: {sorted(missing_test)}'
    for key, module in PYTHON_KEYS.items():
        if module in run_modules:
            assert key in exec_deps, f'{module} is imported: declare <exec_depend>{key}'
        elif module in test_modules:
            assert key in test_deps, f'{module} is imported by tests: declare {key}'

    unused = set()
    for dep in exec_deps:
        if dep in INDIRECT_TEXT:
            used = INDIRECT_TEXT[dep] in run_text
        elif dep.startswith('python3-'):
            used = PYTHON_KEYS.get(dep) in run_modules
        else:
            used = MODULE_OF_ROS_PACKAGE.get(dep, dep) in run_modules
        unused |= set() if used else {dep}
    for dep in declared['test_depend']:
        if dep in PLUGIN_TEXT:
            used = PLUGIN_TEXT[dep] in test_text
        elif dep.startswith('python3-'):
            used = PYTHON_KEYS.get(dep) in test_modules
        else:
            used = MODULE_OF_ROS_PACKAGE.get(dep, dep) in test_modules
        unused |= set() if used else {dep}
    assert not unused, f'declared in package.xml but never used: {sorted(unused)}'

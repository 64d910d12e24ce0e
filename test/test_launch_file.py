"""launch/depth.launch.py parses and declares what the README promises (launch_ros is not
installed here, so this reads the file's syntax tree; test_launch_depth.py runs it for real)."""

from __future__ import annotations

import ast

import pytest

from g2mono_ros.ros.node import PARAMETERS

REQUIRED_ARGUMENTS = {'params_file', 'weights', 'device', 'camera_model', 'namespace', 'image',
                      'camera_info', 'points', 'use_sim_time', 'fastdds_large_data', 'lifecycle'}


@pytest.fixture(scope='module')
def launch_tree(repo_root):
    source = (repo_root / 'launch' / 'depth.launch.py').read_text()
    return ast.parse(source, filename='depth.launch.py')


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_declares_every_argument_with_a_description(launch_tree):
    declared = {}
    for call in _calls(launch_tree, 'DeclareLaunchArgument'):
        name = ast.literal_eval(call.args[0])
        description = _keyword(call, 'description')
        assert description is not None, name
        declared[name] = ast.literal_eval(description)
    assert set(declared) == REQUIRED_ARGUMENTS
    assert all(len(text) > 15 for text in declared.values())


def test_node_overrides_only_declared_parameters(launch_tree):
    overridden = set()
    for node in ast.walk(launch_tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                and node.value.id == 'overrides' and isinstance(node.slice, ast.Constant):
            overridden.add(node.slice.value)
        if isinstance(node, ast.Dict):
            overridden |= {k.value for k in node.keys
                           if isinstance(k, ast.Constant) and k.value in ('use_sim_time',)}
    loop_names = {elt.value for call in ast.walk(launch_tree) if isinstance(call, ast.For)
                  for elt in getattr(call.iter, 'elts', []) if isinstance(elt, ast.Constant)}
    overridden |= loop_names
    assert overridden >= {'weights', 'device', 'camera_model', 'use_sim_time'}
    assert overridden - {'use_sim_time'} <= set(PARAMETERS)


def test_node_action_and_large_data_option(launch_tree):
    (node,) = _calls(launch_tree, 'Node')
    assert ast.literal_eval(_keyword(node, 'executable')) == 'depth_node'
    assert ast.literal_eval(_keyword(node, 'name')) == 'depth_node'
    (env,) = _calls(launch_tree, 'SetEnvironmentVariable')
    assert [ast.literal_eval(a) for a in env.args] == ['FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA']
    assert _keyword(env, 'condition') is not None
    (share,) = [c for c in _calls(launch_tree, 'PathJoinSubstitution')]
    assert [ast.literal_eval(e) for e in share.args[0].elts[1:]] == ['config', 'depth.yaml']


def test_default_topics_match_the_node_defaults(launch_tree):
    assign = next(node for node in ast.walk(launch_tree) if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], 'id', '') == 'DEFAULT_TOPICS')
    topics = ast.literal_eval(assign.value)
    assert topics == {'image': PARAMETERS['image_topic'].default,
                      'camera_info': PARAMETERS['camera_info_topic'].default,
                      'points': PARAMETERS['points_topic'].default}


def test_lifecycle_argument_starts_the_lifecycle_executable(launch_tree, repo_root):
    (node,) = _calls(launch_tree, 'LifecycleNode')
    assert ast.literal_eval(_keyword(node, 'executable')) == 'depth_lifecycle_node'
    assert ast.literal_eval(_keyword(node, 'name')) == 'depth_node'
    setup = (repo_root / 'setup.py').read_text()
    assert "'depth_lifecycle_node = g2mono_ros.ros.lifecycle_node:main'" in setup

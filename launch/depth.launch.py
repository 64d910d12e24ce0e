"""Launch the g2mono_ros depth node with the installed parameters file.

    ros2 launch g2mono_ros depth.launch.py weights:=/path/to/model.pt \
        image:=/cam/color/image_raw camera_info:=/cam/color/camera_info points:=/ouster/points
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'g2mono_ros'

#: The node's default input topics (config/depth.yaml), relative so that `namespace:=` moves
#: them; the launch arguments remap them (a relative value stays inside the namespace).
DEFAULT_TOPICS = {
    'image': 'camera/image_raw',
    'camera_info': 'camera/camera_info',
    'points': 'lidar/points',
}


def _is_true(text):
    return text.strip().lower() in ('true', '1', 'yes', 'on')


def _depth_node(context):
    """Build the node once the arguments are known: only non-empty overrides reach it."""
    value = {name: LaunchConfiguration(name).perform(context)
             for name in ('params_file', 'weights', 'device', 'camera_model', 'namespace',
                          'use_sim_time', 'lifecycle', *DEFAULT_TOPICS)}
    overrides = {'use_sim_time': _is_true(value['use_sim_time'])}
    # Empty launch arguments leave the parameters file's value in force.
    for name in ('weights', 'device', 'camera_model'):
        if value[name]:
            overrides[name] = value[name]
    remappings = [(default, value[name]) for name, default in DEFAULT_TOPICS.items()
                  if value[name] and value[name] != default]
    if _is_true(value['lifecycle']):
        # Managed: it waits unconfigured for a lifecycle manager or `ros2 lifecycle set`.
        from launch_ros.actions import LifecycleNode
        return [LifecycleNode(
            package=PACKAGE,
            executable='depth_lifecycle_node',
            name='depth_node',
            namespace=value['namespace'],
            parameters=[value['params_file'], overrides],
            remappings=remappings,
            output='screen',
            emulate_tty=True,
        )]
    return [Node(
        package=PACKAGE,
        executable='depth_node',
        name='depth_node',
        namespace=value['namespace'],
        parameters=[value['params_file'], overrides],
        remappings=remappings,
        output='screen',
        emulate_tty=True,
    )]


def generate_launch_description():
    default_params = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', 'depth.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=default_params,
            description='ROS 2 parameters YAML of depth_node (default: the installed '
                        'config/depth.yaml).'),
        DeclareLaunchArgument(
            'weights', default_value='',
            description='Checkpoint path (ours .pt or the official epoch_100.pth); overrides '
                        'the parameters file. Empty keeps the file\'s value.'),
        DeclareLaunchArgument(
            'device', default_value='',
            description='auto | cuda | cpu; overrides the parameters file. Empty keeps the '
                        'file\'s value.'),
        DeclareLaunchArgument(
            'camera_model', default_value='',
            description='raw (CameraInfo K + D: image_raw) | rectified (P, no distortion: '
                        'image_rect); overrides the parameters file. Empty keeps the '
                        'file\'s value.'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node: its default topics (camera/image_raw, '
                        'camera/camera_info, lidar/points, g2mono/depth) move into it.'),
        DeclareLaunchArgument(
            'image', default_value=DEFAULT_TOPICS['image'],
            description='Camera image topic (remaps camera/image_raw, within the '
                        'namespace).'),
        DeclareLaunchArgument(
            'camera_info', default_value=DEFAULT_TOPICS['camera_info'],
            description='CameraInfo topic of that camera (remaps camera/camera_info, '
                        'within the namespace).'),
        DeclareLaunchArgument(
            'points', default_value=DEFAULT_TOPICS['points'],
            description='LiDAR PointCloud2 topic (remaps lidar/points, within the '
                        'namespace).'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='Use /clock (true when replaying a bag with --clock).'),
        DeclareLaunchArgument(
            'lifecycle', default_value='false',
            description='true: start the managed (lifecycle) depth node; it loads the network '
                        'on configure and subscribes on activate.'),
        DeclareLaunchArgument(
            'fastdds_large_data', default_value='false',
            description='true: set FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (Fast DDS >= 2.13: '
                        'Jazzy and newer; Humble needs an XML profile) so big images go over '
                        'shared memory / TCP instead of fragmented UDP; the camera and LiDAR '
                        'drivers should use it too. Cancelled by '
                        'ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST.'),
        SetEnvironmentVariable('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA',
                               condition=IfCondition(LaunchConfiguration('fastdds_large_data'))),
        OpaqueFunction(function=_depth_node),
    ])

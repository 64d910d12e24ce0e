"""launch_testing: `ros2 launch g2mono_ros depth.launch.py namespace:=...` brings up a node that
answers in that namespace, with the parameters file (keyed `/**`) applied and relative remaps.

Needs a full ROS 2 install (launch, launch_ros, launch_testing and the built package); skipped
where launch_testing is missing. Where it is not, test_node_dds.py covers the same behaviour by
starting the console script with the parameters file and remaps the launch file passes.
"""

from __future__ import annotations

import tempfile
import threading
import time
import unittest
from pathlib import Path

import numpy as np
import pytest

launch_testing = pytest.importorskip('launch_testing')
pytest.importorskip('launch_ros')

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
import yaml  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from g2mono_ros.models.checkpoint import save_checkpoint  # noqa: E402
from g2mono_ros.ros.codecs import numpy_to_image, xyz_to_pointcloud2  # noqa: E402
from g2mono_ros.models import create_model  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
HEIGHT, WIDTH = 96, 160
NAMESPACE = 'launch_ns'
# Relative remaps: they resolve inside the namespace (/launch_ns/launch_test/image ...).
TOPICS = {'image': 'launch_test/image', 'camera_info': 'launch_test/camera_info',
          'points': 'launch_test/points'}
WORKDIR = Path(tempfile.mkdtemp(prefix='g2mono_launch_test_'))


def _launch_file() -> Path:
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory('g2mono_ros')) / 'launch' / 'depth.launch.py'
        if installed.is_file():
            return installed
    except (ImportError, LookupError):
        pass
    return REPO_ROOT / 'launch' / 'depth.launch.py'


def _params_file() -> Path:
    """The shipped YAML with a small network input, as a user's own params_file would be."""
    document = yaml.safe_load((REPO_ROOT / 'config' / 'depth.yaml').read_text())
    params = document['/**']['ros__parameters']
    # Points already in the optical frame (the feed below): an explicit identity, not TF.
    params.update(input_height=64, max_depth=20.0)
    params['extrinsic'].update(translation=[0.0, 0.0, 0.0], rotation=[0.0, 0.0, 0.0, 1.0])
    path = WORKDIR / 'depth_small.yaml'
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.launch_test
def generate_test_description():
    weights = save_checkpoint(WORKDIR / 'seed_small.pt', create_model('seed_small'),
                              variant='seed_small', model_kwargs={}, max_depth=20.0,
                              input_height=64, input_width=0)
    arguments = {'weights': str(weights), 'device': 'cpu', 'params_file': str(_params_file()),
                 'namespace': NAMESPACE, **TOPICS}
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(_launch_file())),
                                 launch_arguments=arguments.items()),
        launch_testing.actions.ReadyToTest(),
    ])


def _header(stamp_ns: int, frame_id: str) -> Header:
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return header


def _camera_info(header: Header) -> CameraInfo:
    info = CameraInfo(header=header, height=HEIGHT, width=WIDTH, distortion_model='plumb_bob')
    info.d = [0.0] * 5
    info.k = [120.0, 0.0, WIDTH / 2, 0.0, 120.0, HEIGHT / 2, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [120.0, 0.0, WIDTH / 2, 0.0, 0.0, 120.0, HEIGHT / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


# launch_testing's plugin collects this file as one launch test and runs these classes with
# unittest, ignoring pytest marks. Where launch_testing imports but its plugin is not loaded
# (`-p no:launch_testing`, PYTEST_DISABLE_PLUGIN_AUTOLOAD, a pytest its hooks do not support),
# plain pytest would collect the classes and run them without the launch: skip them there.
WITHOUT_PLUGIN = pytest.mark.skip(reason='a launch test: runs under the launch_testing plugin')


@WITHOUT_PLUGIN
class TestDepthLaunch(unittest.TestCase):

    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node('g2mono_launch_test')

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.try_shutdown()

    def test_depth_arrives_with_the_image_header(self) -> None:
        node = self.node
        topic = {name: f'/{NAMESPACE}/{relative}' for name, relative in TOPICS.items()}
        pub_image = node.create_publisher(Image, topic['image'], qos_profile_sensor_data)
        pub_info = node.create_publisher(CameraInfo, topic['camera_info'],
                                         qos_profile_sensor_data)
        pub_points = node.create_publisher(PointCloud2, topic['points'], qos_profile_sensor_data)
        received: list[Image] = []
        # Were the `/**` parameters file dropped under the namespace, the node would have no
        # extrinsic (exit 2 without tf2_ros, no transform with it) and nothing would come.
        node.create_subscription(Image, f'/{NAMESPACE}/g2mono/depth', received.append, 10)
        rng = np.random.default_rng(0)
        # The params file sets the identity extrinsic: points already in the optical frame.
        xyz = np.stack([rng.uniform(-3, 3, 2000), rng.uniform(-2, 2, 2000),
                        rng.uniform(4, 12, 2000)], axis=1).astype(np.float32)
        rgb = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
        sent: set[int] = set()
        stop = threading.Event()

        def feed() -> None:
            while not stop.is_set():
                stamp = time.time_ns()
                sent.add(stamp)
                pub_points.publish(xyz_to_pointcloud2(xyz, _header(stamp, 'lidar')))
                pub_info.publish(_camera_info(_header(stamp, 'camera_optical')))
                pub_image.publish(numpy_to_image(rgb, 'rgb8', _header(stamp, 'camera_optical')))
                time.sleep(0.1)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            deadline = time.monotonic() + 120.0
            while not received and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.1)
        finally:
            stop.set()
            feeder.join(5.0)
        self.assertTrue(received, f'no /{NAMESPACE}/g2mono/depth within 120 s')
        depth = received[0]
        self.assertIn(depth.header.stamp.sec * 1_000_000_000 + depth.header.stamp.nanosec, sent)
        self.assertEqual(depth.header.frame_id, 'camera_optical')
        self.assertEqual((depth.height, depth.width, depth.encoding), (HEIGHT, WIDTH, '32FC1'))


@WITHOUT_PLUGIN
@launch_testing.post_shutdown_test()
class TestDepthLaunchShutdown(unittest.TestCase):

    def test_exit_code(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)

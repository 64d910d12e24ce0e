"""MotionConfig: the motion parameters from flat ROS names, and each bad value named at start-up."""

from __future__ import annotations

import pytest

from g2mono_ros.config import MotionConfig, NodeConfig
from g2mono_ros.errors import ConfigError


def test_flat_parameters_build_the_motion_config():
    config = NodeConfig.from_flat({
        'weights': 'model.pt', 'motion_source': 'odometry', 'odom_topic': 'wheel/odom',
        'point_time_field': 't', 'point_time_unit': 'ns',
        'lidar_to_base.translation': [0.1, 0.0, 1.2],
        'lidar_to_base.rotation': [0.0, 0.0, 0.0, 2.0 ** 0.5 / 2 * 2.0 ** 0.5]})
    motion = config.motion
    assert (motion.motion_source, motion.odom_topic, motion.point_time_field) == \
        ('odometry', 'wheel/odom', 't')
    assert motion.lidar_to_base_translation == (0.1, 0.0, 1.2)
    assert motion.lidar_to_base_rotation == pytest.approx((0.0, 0.0, 0.0, 1.0))
    assert NodeConfig.from_flat({'weights': 'm.pt'}).motion == MotionConfig()


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'motion_source': 'imu'}, "'motion_source' must be one of none, odometry, tf; got 'imu'"),
    ({'point_time_unit': 'min'}, "'point_time_unit' must be one of auto, s, ms, us, ns"),
    ({'odom_topic': ''}, "'odom_topic' must be a non-empty string"),
    ({'fixed_frame': ' '}, "'fixed_frame' must be a non-empty string"),
    ({'point_time_field': ''}, "'point_time_field' must be a non-empty string"),
    ({'motion_max_extrapolation': 2.0}, "'motion_max_extrapolation' must be a finite number "
                                        '>= 0.0 and <= 1.0'),
    ({'motion_max_gap': 0.0}, "'motion_max_gap' must be a finite number > 0.0"),
    ({'motion_tf_timeout': -1.0}, "'motion_tf_timeout' must be a finite number >= 0.0"),
    ({'lidar_to_base_translation': ()}, r"'lidar_to_base.translation' must be 3 finite"),
    ({'lidar_to_base_rotation': (0.0, 0.0, 0.0, 3.0)},
     r"'lidar_to_base.rotation' must be a unit quaternion"),
    ({'lidar_to_base_translation': (0.0, 1.0)}, r"'lidar_to_base.translation' must be 3 finite"),
])
def test_bad_values_name_the_parameter(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MotionConfig(**kwargs)

"""bagio failure modes: each one a BagError that names what is missing or broken."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from g2mono_ros import bagio
from g2mono_ros.errors import BagError
from g2mono_ros.synth import write_synthetic_bag
from g2mono_ros.synth.bag import SYNTH_TOPICS


@pytest.fixture(scope='module')
def good_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('good') / 'synth'
    write_synthetic_bag(path, 1, 3, width=64, height=48)
    return path


def _images_only_bag(path, *, tf=None):
    with bagio.BagWriter(path) as writer:
        store = writer.store
        rgb = np.zeros((4, 6, 3), dtype=np.uint8)
        writer.write('/camera/image_raw', bagio.image_message(store, rgb, 'rgb8', 10, 'cam'), 10)
        if tf is not None:
            writer.write('/tf_static', bagio.tf_static_message(store, tf, 10), 10)
    return path


def test_missing_path(tmp_path):
    with pytest.raises(BagError, match='does not exist'):
        bagio.open_bag(tmp_path / 'nope')


def test_directory_that_is_not_a_bag(tmp_path):
    with pytest.raises(BagError, match='has no metadata.yaml and 0 .mcap/.db3 files'):
        bagio.open_bag(tmp_path)


def test_truncated_mcap_is_a_bag_error(good_bag, tmp_path):
    """An interrupted copy/recording: the MCAP footer and summary are gone."""
    broken = tmp_path / 'broken'
    shutil.copytree(good_bag, broken)
    mcap = next(broken.glob('*.mcap'))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match='cannot open bag .*broken'):
        bagio.open_bag(broken)


def test_garbage_file_is_a_bag_error(tmp_path):
    junk = tmp_path / 'junk.mcap'
    junk.write_bytes(b'not an mcap file at all' * 10)
    with pytest.raises(BagError, match='cannot open bag .*junk.mcap.*magic'):
        bagio.open_bag(junk)


def test_unreadable_metadata_is_a_bag_error(good_bag, tmp_path):
    broken = tmp_path / 'badmeta'
    shutil.copytree(good_bag, broken)
    (broken / 'metadata.yaml').write_text('rosbag2_bagfile_information: [unclosed\n')
    with pytest.raises(BagError, match='cannot open bag .*badmeta'):
        bagio.open_bag(broken)


def test_unknown_storage_suffix_is_a_bag_error(tmp_path):
    other = tmp_path / 'scan.bag'
    other.write_bytes(b'#ROSBAG V2.0\n')
    with pytest.raises(BagError, match='cannot open bag .*scan.bag'):
        bagio.open_bag(other)


def test_missing_topic_is_named_at_the_call(good_bag):
    with bagio.open_bag(good_bag) as bag:
        with pytest.raises(BagError, match=r'lacks topic\(s\) /velodyne_points; it has: '
                                           r'.*/camera/image_raw'):
            bag.messages('/velodyne_points')
        with pytest.raises(BagError, match=r'lacks topic\(s\) /a, /b'):
            bag.require_topics([SYNTH_TOPICS['image'], '/a', '/b'])


def test_no_camera_info(tmp_path):
    path = _images_only_bag(tmp_path / 'nocaminfo')
    with bagio.open_bag(path) as bag:
        with pytest.raises(BagError, match='no CameraInfo on /camera/camera_info and no '
                                           'CameraInfo topic at all'):
            bag.camera_model('/camera/camera_info')


def test_camera_info_on_another_topic_is_suggested(good_bag):
    with bagio.open_bag(good_bag) as bag:
        with pytest.raises(BagError, match=r'no CameraInfo on /cam/info \(CameraInfo topics: '
                                           r'/camera/camera_info\)'):
            bag.camera_model('/cam/info')


def test_no_tf_static_means_no_extrinsic(tmp_path):
    path = _images_only_bag(tmp_path / 'notf')
    with pytest.raises(BagError, match='has no /tf_static topic, so no camera/LiDAR extrinsic'):
        bagio.read_extrinsic(path, 'cam', 'lidar')


def test_unconnected_frames_are_named(tmp_path):
    tf = [bagio.StaticTransform('base_link', 'cam', np.eye(4)),
          bagio.StaticTransform('odom', 'lidar', np.eye(4))]
    path = _images_only_bag(tmp_path / 'split', tf=tf)
    with pytest.raises(BagError, match=r"no static transform chain from LiDAR frame 'lidar' to "
                                       r"camera frame 'cam'.*frames there: base_link, cam, lidar, "
                                       r'odom'):
        bagio.read_extrinsic(path, 'cam', 'lidar')


def test_default_frames_need_the_points_topic(tmp_path):
    tf = [bagio.StaticTransform('cam', 'lidar', np.eye(4))]
    path = _images_only_bag(tmp_path / 'nopoints', tf=tf)
    with pytest.raises(BagError, match=r'lacks topic\(s\) /camera/camera_info'):
        bagio.read_extrinsic(path)
    assert np.array_equal(bagio.read_extrinsic(path, 'cam', 'lidar'), np.eye(4))


def test_undecodable_image_is_a_bag_error(tmp_path):
    path = tmp_path / 'badenc'
    with bagio.BagWriter(path) as writer:
        msg = bagio.image_message(writer.store, np.zeros((2, 4), np.uint8), 'no_such_encoding', 3,
                                   'cam')
        writer.write('/img', msg, 3)
    with bagio.open_bag(path) as bag:
        with pytest.raises(BagError, match="cannot decode /img at 3 ns: .*'no_such_encoding'"):
            list(bag.images('/img'))


def test_writer_refuses_an_existing_path(good_bag):
    with pytest.raises(BagError, match='exists already; not overwriting'):
        bagio.BagWriter(good_bag)
    with pytest.raises(BagError, match='exists already; not overwriting'):
        write_synthetic_bag(good_bag, 0, 1, width=64, height=48)


def test_failed_write_leaves_nothing_behind(tmp_path):
    path = tmp_path / 'partial'
    with pytest.raises(RuntimeError, match='boom'):
        with bagio.BagWriter(path) as writer:
            rgb = np.zeros((2, 2, 3), np.uint8)
            writer.write('/x', bagio.image_message(writer.store, rgb, 'rgb8', 1, 'c'), 1)
            raise RuntimeError('boom')
    assert not path.exists()


def test_unknown_storage_is_refused(tmp_path):
    with pytest.raises(BagError, match="bag storage must be mcap or sqlite3; got 'ros1'"):
        bagio.BagWriter(tmp_path / 'x', storage='ros1')
    assert not (tmp_path / 'x').exists()

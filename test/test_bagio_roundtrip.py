"""A tiny synthetic bag written to tmp_path and read back through bagio: topics, counts, stamps,
contents, extrinsic, CameraInfo, and rclpy's view of the serialised messages."""

from __future__ import annotations

import shutil
import numpy as np
import pytest
import yaml

from g2mono_ros import bagio
from g2mono_ros.synth import SyntheticSequence, write_synthetic_bag
from g2mono_ros.synth.bag import SYNTH_TOPICS
from g2mono_ros.fusion.transforms import invert_transform

FRAMES = 9
OPTIONS = {'width': 64, 'height': 48, 'beams': 16, 'distortion': True}


@pytest.fixture(scope='module')
def synthetic_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('bags') / 'synth'
    info = write_synthetic_bag(path, 4, FRAMES, **OPTIONS)
    return path, info


def test_topics_types_and_counts(synthetic_bag):
    path, info = synthetic_bag
    topics = bagio.list_topics(path)
    expected = {
        SYNTH_TOPICS['image']: (bagio.IMAGE_TYPE, FRAMES),
        SYNTH_TOPICS['camera_info']: (bagio.CAMERA_INFO_TYPE, FRAMES),
        SYNTH_TOPICS['depth']: (bagio.IMAGE_TYPE, FRAMES),
        SYNTH_TOPICS['points']: (bagio.POINTCLOUD2_TYPE, info.num_scans),
        SYNTH_TOPICS['tf_static']: (bagio.TF_TYPE, 1),
    }
    assert {name: (t.msgtype, t.count) for name, t in topics.items()} == expected
    assert 3 <= info.num_scans <= 4  # 0.27 s of images at 10 Hz, plus half a period


def test_stamps_are_30_and_10_hz_unaligned_and_logged_at_header_time(synthetic_bag):
    path, info = synthetic_bag
    with bagio.open_bag(path) as bag:
        images = list(bag.messages(SYNTH_TOPICS['image']))
        scans = list(bag.messages(SYNTH_TOPICS['points']))
        depth = list(bag.messages(SYNTH_TOPICS['depth']))
        infos = list(bag.messages(SYNTH_TOPICS['camera_info']))
    image_stamps = np.array([m.stamp_ns for m in images])
    scan_stamps = np.array([m.stamp_ns for m in scans])
    assert tuple(image_stamps) == info.image_stamps_ns
    assert tuple(scan_stamps) == info.scan_stamps_ns
    assert all(m.log_time_ns == m.stamp_ns for m in images + scans)
    assert np.abs(np.diff(image_stamps) - 1e9 / 30).max() < 2.5e6
    assert np.abs(np.diff(scan_stamps) - 1e8).max() < 4.5e6
    assert not set(image_stamps) & set(scan_stamps)
    # Ground truth and CameraInfo carry the image's header.
    for image, gt, cam in zip(images, depth, infos):
        assert gt.stamp_ns == cam.stamp_ns == image.stamp_ns
        assert gt.msg.header.frame_id == cam.msg.header.frame_id == image.msg.header.frame_id
    assert images[0].msg.header.frame_id == info.camera_frame
    assert scans[0].msg.header.frame_id == info.lidar_frame


def test_contents_equal_the_sequence(synthetic_bag):
    path, info = synthetic_bag
    seq = SyntheticSequence(4, num_frames=FRAMES, **OPTIONS)
    with bagio.open_bag(path) as bag:
        images = list(bag.images(SYNTH_TOPICS['image']))
        depths = list(bag.depth_images(SYNTH_TOPICS['depth']))
        clouds = list(bag.point_clouds(SYNTH_TOPICS['points'], ('intensity', 'ring')))
    for i in (0, FRAMES - 1):
        frame = seq.image_frame(i)
        assert images[i][0] == frame.stamp_ns
        assert np.array_equal(images[i][1], frame.rgb)
        assert depths[i][1].dtype == np.float32
        assert np.array_equal(depths[i][1], frame.depth_gt)
    for j, (stamp, xyz, extras) in enumerate(clouds):
        scan = seq.scan(j)
        assert stamp == scan.stamp_ns
        assert np.array_equal(xyz, scan.points)
        assert np.array_equal(extras['intensity'], scan.intensity)
        assert extras['ring'].dtype == np.uint16
        assert np.array_equal(extras['ring'], scan.ring)


def test_extrinsic_equals_the_generated_one(synthetic_bag):
    path, info = synthetic_bag
    T = bagio.read_extrinsic(path)
    assert np.allclose(T, info.T_cam_lidar, atol=1e-12)
    with bagio.open_bag(path) as bag:
        explicit = bagio.read_extrinsic(bag, info.camera_frame, info.lidar_frame)
        reverse = bag.read_extrinsic(info.lidar_frame, info.camera_frame)
        frames = {(tf.parent, tf.child) for tf in bag.static_transforms()}
    assert np.allclose(explicit, info.T_cam_lidar, atol=1e-12)
    assert np.allclose(reverse, invert_transform(info.T_cam_lidar), atol=1e-12)
    # A tf tree as a robot publishes it: both sensors hang off base_link.
    assert frames == {('base_link', info.camera_frame), ('base_link', info.lidar_frame)}


def test_camera_model_round_trips_with_distortion(synthetic_bag):
    path, info = synthetic_bag
    with bagio.open_bag(path) as bag:
        camera = bag.camera_model(SYNTH_TOPICS['camera_info'])
    assert camera == info.camera
    assert camera.is_distorted


def test_tf_static_is_offered_transient_local(synthetic_bag):
    path, _ = synthetic_bag
    meta = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    by_topic = {t['topic_metadata']['name']: t['topic_metadata'] for t in
                meta['topics_with_message_count']}
    qos = yaml.safe_load(by_topic['/tf_static']['offered_qos_profiles'])
    assert qos[0]['durability'] == 1  # rmw TRANSIENT_LOCAL
    assert qos[0]['reliability'] == 1  # rmw RELIABLE
    assert meta['storage_identifier'] == 'mcap'
    assert 'g2mono_ros.synth' in meta['custom_data']


def test_bare_mcap_file_and_directory_without_metadata_open(synthetic_bag, tmp_path):
    path, info = synthetic_bag
    mcap = next(path.glob('*.mcap'))
    assert bagio.list_topics(mcap)[SYNTH_TOPICS['image']].count == FRAMES
    orphan = tmp_path / 'interrupted'
    orphan.mkdir()
    shutil.copy(mcap, orphan / mcap.name)
    assert np.allclose(bagio.read_extrinsic(orphan), info.T_cam_lidar)


def test_raw_cdr_deserialises_with_rclpy_message_types(synthetic_bag):
    """The live replayer publishes the raw CDR bytes; rclpy's own types must read them."""
    pytest.importorskip('rclpy')
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from g2mono_ros.ros.codecs import camera_info_to_model, pointcloud2_to_xyz, rgb_from_image

    path, info = synthetic_bag
    types = {bagio.IMAGE_TYPE: Image, bagio.CAMERA_INFO_TYPE: CameraInfo,
             bagio.POINTCLOUD2_TYPE: PointCloud2}
    topics = [SYNTH_TOPICS[k] for k in ('image', 'camera_info', 'points')]
    seen = set()
    with bagio.open_bag(path) as bag:
        for topic, msgtype, log_time, raw in bag.raw_messages(topics):
            msg = deserialize_message(raw, types[msgtype])
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == log_time
            if msgtype == bagio.IMAGE_TYPE:
                assert rgb_from_image(msg).shape == (48, 64, 3)
            elif msgtype == bagio.CAMERA_INFO_TYPE:
                assert camera_info_to_model(msg) == info.camera
            else:
                xyz, extras = pointcloud2_to_xyz(msg, ('ring',))
                assert xyz.shape[0] > 1000 and extras['ring'].max() <= 15
            seen.add(topic)
    assert seen == set(topics)


def test_writer_builders_round_trip_arbitrary_messages(tmp_path):
    path = tmp_path / 'custom'
    xyz = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    depth_mm = np.array([[0, 1500], [65535, 7]], dtype=np.uint16)
    with bagio.BagWriter(path) as writer:
        store = writer.store
        writer.write('/d', bagio.image_message(store, depth_mm, '16UC1', 5, 'cam'), 5)
        writer.write('/p', bagio.pointcloud2_message(store, xyz, 7, 'velodyne',
                                                     {'t': np.array([0.5, 1.5])}), 7)
    with bagio.open_bag(path) as bag:
        (stamp, depth), = list(bag.depth_images('/d'))
        (_, points, extras), = list(bag.point_clouds('/p', ('t',)))
        assert bag.frame_id('/p') == 'velodyne'
        assert (bag.start_ns, bag.end_ns) == (5, 8)
    assert stamp == 5
    assert np.allclose(depth, depth_mm / 1000.0)
    assert np.array_equal(points, xyz)
    assert extras['t'].dtype == np.float64 and np.array_equal(extras['t'], [0.5, 1.5])



def test_same_seed_writes_byte_identical_bags(tmp_path):
    for name in ('a', 'b', 'c'):
        write_synthetic_bag(tmp_path / name / 'bag', 2 if name != 'c' else 3, 2,
                            width=32, height=24)
    a, b, c = ((tmp_path / n / 'bag' / 'bag.mcap').read_bytes() for n in ('a', 'b', 'c'))
    assert a == b
    assert a != c


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_both_storages_read_as_directory_and_as_bare_file(tmp_path, storage):
    path = tmp_path / storage
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    with bagio.BagWriter(path, storage=storage) as writer:
        for stamp in (100, 200):
            writer.write('/img', bagio.image_message(writer.store, rgb, 'rgb8', stamp, 'c'), stamp)
    (storage_file,) = [p for p in path.iterdir() if p.suffix in ('.mcap', '.db3')]
    for source in (path, storage_file):
        with bagio.open_bag(source) as bag:
            frames = list(bag.images('/img'))
        assert [stamp for stamp, _ in frames] == [100, 200]
        assert all(np.array_equal(image, rgb) for _, image in frames)


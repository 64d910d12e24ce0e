"""Training datasets: every kind loads real files written here, and every malformed case fails
with a DatasetError before training starts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from g2mono_ros.errors import DatasetError
from g2mono_ros.training.config import DataConfig, config_from_mapping
from g2mono_ros.training.datasets import (
    EpochSampler,
    TrainingDataset,
    build_source,
    read_depth_png,
)

HW = (64, 64)


def _data(kind: str, path: Path | str = '', **kwargs) -> DataConfig:
    config = DataConfig(kind=kind, path=str(path), **kwargs)
    config.validate()
    return config


def _train_config(data: dict, **sim) -> object:
    return config_from_mapping({'train_data': data, 'input_height': 64, 'input_width': 64,
                                'simulation': sim or {}})


def _write_rgb(path: Path, h: int, w: int, seed: int) -> None:
    rgb = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb)


def _write_u16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), values.astype(np.uint16))


# ---------------------------------------------------------------- PNG folders


def test_png_folder_depth_scale_and_items(tmp_path):
    depth = np.zeros((48, 80), np.uint16)
    depth[10:30, 20:60] = 65535 // 2
    for name in ('a', 'b'):
        _write_rgb(tmp_path / 'rgb' / f'{name}.png', 48, 80, 1)
        _write_u16(tmp_path / 'depth' / f'{name}.png', depth)
    assert read_depth_png(tmp_path / 'depth' / 'a.png', 20.0 / 65535)[15, 30] == pytest.approx(10.0, abs=1e-3)
    source = build_source(_data('png_folder', tmp_path, depth_max_depth=20.0), HW, 80.0)
    assert len(source) == 2
    frame = source.load(0, None)
    assert frame.rgb.shape == (64, 64, 3) and frame.target_m.shape == HW
    assert set(np.unique(frame.target_m).round(3)) <= {0.0, 10.0}
    cfg = _train_config({'kind': 'png_folder', 'path': str(tmp_path), 'depth_max_depth': 20.0})
    item = TrainingDataset(source, cfg, train=True)[(0, 1)]
    assert item['rgb'].shape == (3, 64, 64) and item['input'].shape == (1, 64, 64)
    assert item['target'].max() == pytest.approx(10.0 / 80.0, abs=1e-4)


def test_png_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match='has no rgb/ folder'):
        build_source(_data('png_folder', tmp_path, depth_max_depth=20.0), HW, 80.0)
    (tmp_path / 'rgb').mkdir()
    (tmp_path / 'depth').mkdir()
    with pytest.raises(DatasetError, match=r'holds no \.png/\.jpg images'):
        build_source(_data('png_folder', tmp_path, depth_max_depth=20.0), HW, 80.0)
    _write_rgb(tmp_path / 'rgb' / 'a.png', 32, 32, 0)
    with pytest.raises(DatasetError, match="depth .*a.png.* for image 'a.png' is missing"):
        build_source(_data('png_folder', tmp_path, depth_max_depth=20.0), HW, 80.0)
    cv2.imwrite(str(tmp_path / 'depth' / 'a.png'), np.zeros((32, 32), np.uint8))
    with pytest.raises(DatasetError, match='must be single-channel 16-bit; got uint8'):
        build_source(_data('png_folder', tmp_path, depth_max_depth=20.0), HW, 80.0)
    _write_u16(tmp_path / 'depth' / 'a.png', np.ones((16, 32)))
    with pytest.raises(DatasetError, match=r"'a.png' is \(16, 32\), its image \(32, 32\)"):
        build_source(_data('png_folder', tmp_path, depth_max_depth=20.0), HW, 80.0)


# ---------------------------------------------------------------- KITTI


def _kitti_tree(root: Path, raw: Path) -> Path:
    drive = '2011_09_26_drive_0001_sync'
    for frame in ('0000000005', '0000000006'):
        base = root / 'train' / drive / 'proj_depth'
        gt = np.zeros((60, 200), np.uint16)
        gt[30:, :] = 10 * 256  # 10 m
        velo = np.zeros((60, 200), np.uint16)
        velo[30::4, ::3] = 10 * 256
        _write_u16(base / 'groundtruth' / 'image_02' / f'{frame}.png', gt)
        _write_u16(base / 'velodyne_raw' / 'image_02' / f'{frame}.png', velo)
        _write_rgb(raw / drive[:10] / drive / 'image_02' / 'data' / f'{frame}.png', 60, 200, 2)
    return root


def test_kitti_layout_loads_inputs_and_targets(tmp_path):
    root = _kitti_tree(tmp_path / 'depth', tmp_path / 'raw')
    source = build_source(_data('kitti', root, raw_root=str(tmp_path / 'raw')), HW, 80.0)
    assert len(source) == 2
    frame = source.load(1, None)
    # bottom-aligned crop of the image scaled to cover 64x64
    assert frame.rgb.shape == (64, 64, 3)
    assert frame.target_m.max() == pytest.approx(10.0)
    assert 0 < (frame.sparse_m > 0).sum() < (frame.target_m > 0).sum()
    cfg = _train_config({'kind': 'kitti', 'path': str(root), 'raw_root': str(tmp_path / 'raw')},
                        p_full_scan=1.0)
    item = TrainingDataset(source, cfg, train=False)[0]
    assert torch.equal(item['input'][0] > 0, torch.from_numpy(frame.sparse_m > 0))


def test_kitti_val_selection_layout(tmp_path):
    root = tmp_path / 'val_selection_cropped'
    stem = '2011_09_26_drive_0002_sync_{}_0000000005_image_02.png'
    _write_u16(root / 'groundtruth_depth' / stem.format('groundtruth_depth'), np.full((40, 120), 2560))
    _write_u16(root / 'velodyne_raw' / stem.format('velodyne_raw'), np.full((40, 120), 5120))
    _write_rgb(root / 'image' / stem.format('image'), 40, 120, 0)
    frame = build_source(_data('kitti', root, split='val'), HW, 80.0).load(0, None)
    assert frame.target_m.max() == pytest.approx(10.0) and frame.sparse_m.max() == pytest.approx(20.0)


def test_kitti_errors(tmp_path):
    with pytest.raises(DatasetError, match='does not exist'):
        build_source(_data('kitti', tmp_path / 'nope'), HW, 80.0)
    (tmp_path / 'k').mkdir()
    with pytest.raises(DatasetError, match="has no 'train' split"):
        build_source(_data('kitti', tmp_path / 'k'), HW, 80.0)
    (tmp_path / 'k' / 'train').mkdir()
    with pytest.raises(DatasetError, match='no KITTI ground-truth PNGs'):
        build_source(_data('kitti', tmp_path / 'k'), HW, 80.0)
    root = _kitti_tree(tmp_path / 'k2', tmp_path / 'raw')
    with pytest.raises(DatasetError, match='RGB image .* is missing'):
        build_source(_data('kitti', root, raw_root=str(tmp_path / 'elsewhere')), HW, 80.0)


# ---------------------------------------------------------------- synthetic


def test_synthetic_frames_scan_and_lidar_inputs(tmp_path):
    data = {'kind': 'synthetic', 'seeds': [3], 'frames_per_sequence': 2, 'render_width': 64,
            'render_height': 64, 'beams': [16], 'cache_dir': str(tmp_path / 'cache')}
    cfg = _train_config(data, p_full_scan=0.0,
                        lidar={'p_beam_subsample': 1.0, 'beam_steps': [2], 'p_missing_sector': 0.0,
                               'p_range_limit': 0.0, 'p_point_dropout': 0.0})
    source = build_source(cfg.train_data, HW, 80.0)
    frame = source.load(1, None)
    assert frame.scan is not None and frame.scan.points_lidar.shape[1] == 3
    assert set(np.unique(frame.scan.ring)) <= set(range(16))
    assert len(list((tmp_path / 'cache').glob('*.npz'))) == 1
    again = build_source(cfg.train_data, HW, 80.0).load(1, None)  # from the .npz cache
    assert np.array_equal(again.target_m, frame.target_m)
    full = TrainingDataset(source, cfg, train=False)[1]['input']
    half = TrainingDataset(source, cfg, train=True)[(0, 1)]['input']
    # every other beam dropped: fewer points than the full scan, and reproducible
    assert 0 < (half > 0).sum() < (full > 0).sum()
    assert torch.equal(half, TrainingDataset(source, cfg, train=True)[(0, 1)]['input'])


def test_epoch_sampler_shards_and_resumes():
    a = list(EpochSampler(10, batch_size=2, seed=1, epoch=0, rank=0, world_size=2))
    b = list(EpochSampler(10, batch_size=2, seed=1, epoch=0, rank=1, world_size=2))
    assert len(a) == len(b) == 4 and not {i for _, i in a} & {i for _, i in b}
    resumed = list(EpochSampler(10, batch_size=2, seed=1, epoch=0, rank=0, world_size=2,
                                start_batch=1))
    assert resumed == a[2:]
    assert a != list(EpochSampler(10, batch_size=2, seed=1, epoch=1, rank=0, world_size=2))


# ---------------------------------------------------------------- rosbag


@pytest.fixture(scope='module')
def synthetic_bag(tmp_path_factory):
    from g2mono_ros.synth.bag import write_synthetic_bag

    path = tmp_path_factory.mktemp('bag') / 'synth'
    write_synthetic_bag(path, 3, 6, width=64, height=48, beams=16)
    return path


def test_rosbag_pairs_images_with_scans(synthetic_bag):
    source = build_source(_data('rosbag', synthetic_bag), HW, 80.0)
    assert len(source) == 6  # 30 Hz images, 10 Hz scans, 60 ms window: all pair
    frame = source.load(2, None)
    assert frame.rgb.shape == (64, 64, 3)
    assert (frame.target_m > 0).mean() > 0.05
    assert frame.scan.ring is not None
    cfg = _train_config({'kind': 'rosbag', 'path': str(synthetic_bag)})
    item = TrainingDataset(source, cfg, train=False)[2]
    # validation input = the whole paired scan = the target here
    assert torch.allclose(item['input'], item['target'])
    # run.val_input=simulated: a degraded scan, the same for every call
    sim_cfg = _train_config({'kind': 'rosbag', 'path': str(synthetic_bag)}, p_full_scan=0.0,
                            lidar={'p_beam_subsample': 1.0, 'beam_steps': [2]})
    simulated = TrainingDataset(source, sim_cfg, train=False, simulate_val=True)
    assert 0 < (simulated[2]['input'] > 0).sum() < (item['target'] > 0).sum()
    assert torch.equal(simulated[2]['input'], simulated[2]['input'])
    strided = build_source(_data('rosbag', synthetic_bag, frame_stride=2, limit=2), HW, 80.0)
    assert len(strided) == 2


def test_rosbag_errors(synthetic_bag, tmp_path):
    with pytest.raises(DatasetError, match='does not exist'):
        build_source(_data('rosbag', tmp_path / 'missing'), HW, 80.0)
    with pytest.raises(DatasetError, match='lacks topic.*/front/image'):
        build_source(_data('rosbag', synthetic_bag, image_topic='/front/image'), HW, 80.0)
    with pytest.raises(DatasetError, match='lacks topic.*/odom'):
        build_source(_data('rosbag', synthetic_bag, merge_neighbours=1, odom_topic='/odom'),
                     HW, 80.0)
    with pytest.raises(DatasetError, match='no image .* has a scan'):
        build_source(_data('rosbag', synthetic_bag, sync_max_offset=1e-6), HW, 80.0)


def _odometry(store, T: np.ndarray, stamp_ns: int):
    from g2mono_ros.bagio import _header
    from g2mono_ros.fusion.transforms import quaternion_from_rotation

    t = store.types
    q = quaternion_from_rotation(T[:3, :3])
    pose = t['geometry_msgs/msg/Pose'](
        position=t['geometry_msgs/msg/Point'](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
        orientation=t['geometry_msgs/msg/Quaternion'](x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                                      w=float(q[3])))
    zero = t['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0)
    return t['nav_msgs/msg/Odometry'](
        header=_header(store, stamp_ns, 'odom'), child_frame_id='lidar',
        pose=t['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=np.zeros(36)),
        twist=t['geometry_msgs/msg/TwistWithCovariance'](
            twist=t['geometry_msgs/msg/Twist'](linear=zero, angular=zero), covariance=np.zeros(36)))


def test_rosbag_merges_neighbouring_scans_through_odometry(tmp_path):
    """A bag written here with odometry of the LiDAR; the rig moves 1 m between scans, so a
    wrong transform direction would put merged points metres off the ground truth."""
    from g2mono_ros.bagio import (
        BagWriter,
        StaticTransform,
        camera_info_message,
        image_message,
        pointcloud2_message,
        tf_static_message,
    )
    from g2mono_ros.synth.sequence import SyntheticSequence

    seq = SyntheticSequence(4, num_frames=6, width=64, height=64, beams=16, speed_mps=10.0)
    path = tmp_path / 'odom_bag'
    with BagWriter(path) as bag:
        store = bag.store
        bag.write('/tf_static', tf_static_message(
            store, [StaticTransform('camera', 'lidar', seq.T_cam_lidar)], seq.start_ns), seq.start_ns)
        for j in range(5):
            scan = seq.scan(j)
            bag.write('/lidar/points', pointcloud2_message(store, scan.points, scan.stamp_ns, 'lidar',
                                                          {'ring': scan.ring}), scan.stamp_ns)
            bag.write('/odom', _odometry(store, scan.T_world_lidar, scan.stamp_ns), scan.stamp_ns)
            # one image exactly at each scan's stamp (so the paired scan is exact)
            frame = seq._render_image(j, scan.stamp_ns)
            bag.write('/camera/image_raw', image_message(store, frame.rgb, 'rgb8', scan.stamp_ns,
                                                         'camera'), scan.stamp_ns)
            bag.write('/camera/camera_info', camera_info_message(store, seq.camera, scan.stamp_ns,
                                                                 'camera'), scan.stamp_ns)
    single = build_source(_data('rosbag', path), HW, 80.0)
    merged = build_source(_data('rosbag', path, merge_neighbours=2, odom_topic='/odom'), HW, 80.0)
    assert len(single) == len(merged) == 5
    gt = seq._render_image(2, seq.scan_stamp_ns(2)).depth_gt  # 64x64: the input size
    one, many = single.load(2, None).target_m, merged.load(2, None).target_m
    assert (many > 0).sum() > 1.3 * (one > 0).sum()
    both = (many > 0) & (gt > 0)
    rel = np.abs(many[both] - gt[both]) / gt[both]
    assert np.median(rel) < 0.03

"""One projection per pair (fusion.sparse) against the old two-projection output: the image-size
map is identical, the network-size map equals the nearest-kept resize of it, and differs from a
direct projection at the network size only by where boundary points fall (checked per point)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2mono_ros.errors import ShapeError
from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.fusion.projection import project_points, project_points_to_depth
from g2mono_ros.fusion.sparse import SparseProjector
from g2mono_ros.imaging import network_pixel_index, network_pixel_table
from g2mono_ros.models.engine import resize_sparse_depth

T_IDENTITY = np.eye(4)


def _camera(width: int = 240, height: int = 135, distorted: bool = True) -> CameraModel:
    f = 0.8 * width
    K = np.array([[f, 0.0, width / 2 - 0.3], [0.0, f, height / 2 + 0.7], [0.0, 0.0, 1.0]])
    D = np.array([-0.12, 0.03, 0.001, -0.0005, 0.0]) if distorted else np.zeros(5)
    return CameraModel(width=width, height=height, K=K, D=D,
                       distortion_model='plumb_bob' if distorted else 'none')


def _points(n: int = 20_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.2, 60.0, n)
    return np.stack([rng.uniform(-0.8, 0.8, n) * z, rng.uniform(-0.5, 0.5, n) * z, z],
                    axis=1).astype(np.float32)


@pytest.mark.parametrize('net_hw', [(64, 128), (128, 192), (135, 240)])
def test_one_projection_equals_the_old_image_size_map_and_its_resize(net_hw) -> None:
    camera, points = _camera(), _points()
    maps = SparseProjector().project(points, T_IDENTITY, camera, net_hw, min_range=0.5,
                                     max_range=50.0, want_full=True)
    old_full, _ = project_points_to_depth(points, T_IDENTITY, camera, min_range=0.5,
                                          max_range=50.0)
    np.testing.assert_array_equal(maps.full, old_full)
    np.testing.assert_array_equal(maps.net, resize_sparse_depth(old_full, net_hw))
    assert maps.net.shape == net_hw and maps.net.dtype == np.float32
    without_full = SparseProjector().project(points, T_IDENTITY, camera, net_hw, min_range=0.5,
                                             max_range=50.0, want_full=False)
    assert without_full.full is None
    np.testing.assert_array_equal(without_full.net, maps.net)


def test_against_the_old_direct_network_size_projection() -> None:
    """What differs from projecting straight into the network grid (the old ``pre`` stage).

    Old: each point goes to the network pixel containing its own sub-pixel position (scaled
    intrinsics). New: to the network pixel containing the centre of its image pixel. A point
    on the other side of a network pixel border than its image pixel's centre lands one network
    pixel over; nothing else changes (same points, same depths, nearest kept). Per axis that
    is about s / 4 of the points for a scale s = network / image size (s borders per image
    pixel, a quarter of such a pixel on the far side on average): at 240x135 -> 128x64 (s
    0.53, 0.47) about a quarter move, each by exactly one network pixel, i.e. the network sees
    the point shifted by at most half an image pixel, below a LiDAR-camera calibration's error.
    """
    camera, points = _camera(), _points()
    net_hw = (64, 128)
    full_hits = project_points(points, T_IDENTITY, camera, min_range=0.5, max_range=50.0)
    old_hits = project_points(points, T_IDENTITY, camera, out_hw=net_hw, min_range=0.5,
                              max_range=50.0)
    common, in_new, in_old = np.intersect1d(full_hits.index, old_hits.index,
                                            return_indices=True)
    # The same points survive (culling is the same test in both grids) up to float rounding.
    assert common.size >= 0.999 * max(full_hits.index.size, old_hits.index.size)
    new_rows = network_pixel_index(full_hits.row[in_new], camera.height, net_hw[0])
    new_cols = network_pixel_index(full_hits.col[in_new], camera.width, net_hw[1])
    d_row = np.abs(new_rows - old_hits.row[in_old])
    d_col = np.abs(new_cols - old_hits.col[in_old])
    assert d_row.max() <= 1 and d_col.max() <= 1
    moved = np.mean((d_row > 0) | (d_col > 0))
    expected = 1 - (1 - 128 / 240 / 4) * (1 - 64 / 135 / 4)
    assert 0.7 * expected < moved < 1.3 * expected
    maps = SparseProjector().project(points, T_IDENTITY, camera, net_hw, min_range=0.5,
                                     max_range=50.0, want_full=False)
    old_net, _ = project_points_to_depth(points, T_IDENTITY, camera, out_hw=net_hw,
                                         min_range=0.5, max_range=50.0)
    # Every value is a real point depth; about as many pixels are filled.
    assert np.isin(maps.net[maps.net > 0], full_hits.depth).all()
    assert abs(int((maps.net > 0).sum()) - int((old_net > 0).sum())) < 0.05 * (old_net > 0).sum()


def test_reused_buffers_forget_the_previous_scan() -> None:
    camera = _camera()
    projector = SparseProjector()
    first = projector.project(_points(seed=1), T_IDENTITY, camera, (64, 128), min_range=0.5,
                              max_range=50.0, want_full=True)
    first_net = first.net.copy()
    second = projector.project(_points(n=500, seed=2), T_IDENTITY, camera, (64, 128),
                               min_range=0.5, max_range=50.0, want_full=True)
    fresh = SparseProjector(reuse_buffers=False).project(
        _points(n=500, seed=2), T_IDENTITY, camera, (64, 128), min_range=0.5, max_range=50.0,
        want_full=True)
    np.testing.assert_array_equal(second.net, fresh.net)
    np.testing.assert_array_equal(second.full, fresh.full)
    assert second.net is first.net or not np.array_equal(first_net, second.net)


def test_same_size_network_shares_the_map() -> None:
    camera = _camera(width=128, height=64)
    maps = SparseProjector().project(_points(), T_IDENTITY, camera, (64, 128), min_range=0.5,
                                     max_range=50.0, want_full=True)
    assert maps.net is maps.full


def test_network_size_must_be_positive() -> None:
    with pytest.raises(ShapeError, match=r'net_hw must be two positive sizes .*\(0, 128\)'):
        SparseProjector().project(_points(), T_IDENTITY, _camera(), (0, 128), min_range=0.5,
                                  max_range=50.0, want_full=False)


def _torch_matches_numpy(device: str) -> None:
    camera, points = _camera(), _points()
    expected = SparseProjector().project(points, T_IDENTITY, camera, (64, 128), min_range=0.5,
                                         max_range=50.0, want_full=True)
    got = SparseProjector(torch.device(device)).project(
        points, T_IDENTITY, camera, (64, 128), min_range=0.5, max_range=50.0, want_full=True)
    assert isinstance(got.net, torch.Tensor) and got.net.device.type == device
    np.testing.assert_array_equal(got.net.cpu().numpy(), expected.net)
    np.testing.assert_array_equal(got.full.cpu().numpy(), expected.full)


def test_torch_projector_matches_numpy_on_cpu_tensors() -> None:
    """The device path's code, run on CPU tensors (no GPU here): bit-identical maps."""
    # A 'cpu' device means numpy; a torch.device other than cpu means tensors. Force the
    # tensor path on the CPU through the private switch the GPU path uses.
    camera, points = _camera(), _points()
    projector = SparseProjector()
    got = projector._project_torch(torch.from_numpy(points), T_IDENTITY, camera, (64, 128),
                                   min_range=0.5, max_range=50.0, want_full=True)
    expected = SparseProjector().project(points, T_IDENTITY, camera, (64, 128), min_range=0.5,
                                         max_range=50.0, want_full=True)
    np.testing.assert_array_equal(got.net.numpy(), expected.net)
    np.testing.assert_array_equal(got.full.numpy(), expected.full)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_torch_projector_matches_numpy_on_cuda() -> None:
    _torch_matches_numpy('cuda')


def test_full_pixels_cover_every_point_of_the_image_size_map() -> None:
    camera, points = _camera(), _points(seed=4)
    projector = SparseProjector()
    for seed in (4, 5):  # the reused buffer: the second scan's pixels, not the first's
        maps = projector.project(_points(seed=seed), T_IDENTITY, camera, (64, 128),
                                 min_range=0.5, max_range=50.0, want_full=True)
        assert maps.full_pixels is not None and maps.full_pixels.dtype == np.int64
        assert set(np.flatnonzero(maps.full)) == set(maps.full_pixels.tolist())
    assert projector.project(points, T_IDENTITY, camera, (64, 128), min_range=0.5,
                             max_range=50.0, want_full=False).full_pixels is None


@pytest.mark.parametrize(('in_size', 'out_size'), [(1080, 320), (1920, 576), (480, 320),
                                                   (7, 7), (5, 9), (1, 1)])
def test_network_pixel_table_is_the_index_of_every_pixel(in_size: int, out_size: int) -> None:
    table = network_pixel_table(in_size, out_size)
    index = np.arange(in_size)
    np.testing.assert_array_equal(table, network_pixel_index(index, in_size, out_size))
    # by hand: the output pixel that contains the input pixel's centre
    np.testing.assert_array_equal(table, np.floor((index + 0.5) * out_size / in_size))
    assert not table.flags.writeable

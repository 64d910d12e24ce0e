"""The node's per-frame path at camera resolution, old against new, in one process (no DDS).

Used by ``bench_node.py --frame-path``. For each case (1920x1080 bgr8 and yuyv, 640x480 rgb8;
128k-point clouds at 10 Hz, a 30 Hz camera) it times, on real rclpy messages:

- callback thread: the per-message work of the image and cloud callbacks. Old: full RGB
  conversion (``codecs.rgb_from_image_reference``, the numpy decoder the node used) and full
  cloud decoding. New: the O(1) checks (``check_image``, ``check_pointcloud2``). The
  synchroniser and stamp bookkeeping around them are the same in both and not timed. Busy
  share = 30 x image time + 10 x cloud time, per second.
- everything except the model, per processed pair (``lazy``: the new path without a
  ``sparse_depth`` subscriber, which the node then skips): old = the callbacks' decoding + the old
  worker (projection at the network size, a second one at image size for ``sparse_depth``,
  float bilinear resize of the full image in torch, torch upsampling, the checked
  ``depth_to_image`` twice); new = the node's worker (decode + area resize on uint8, one
  projection, cv2 upsampling, the clean ``depth_to_image``). The network's forward pass is
  timed inside and subtracted (both paths call the same engine).

The old worker path is kept here, callable, so the comparison is always made in the same run.

``--breakdown`` (``report_breakdown``): the new path alone, split into its stages where the node
runs them (decode, cloud, projection, network inputs, the rest of ``DepthEngine.infer``,
upsampling, the two messages), p50/p95 each; the engine's internals are timed through wrappers.

Edge-aware cases (``upsample: edge_aware``, the node's default): the new worker path as the
node runs it (camera-size image decoded too, as the guide), once with the torch upsampler that
computes all four neighbours at every pixel (``torch``, the path before
``models.upsample_host``), once as it ran before the host upsampler's slot tables, the
contiguous projection and the reused depth messages (``prev``, ``prev_lazy``:
``legacy_edge_path``; their outputs are checked equal to the new ones) and once as the node runs
now (``new``, ``lazy``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CAMERA_HZ = 30.0
LIDAR_HZ = 10.0
N_POINTS = 131_072
ROTATION = [0.5, -0.5, 0.5, 0.5]  # REP 103 LiDAR -> camera optical
CASES = (('1920x1080 bgr8', 1080, 1920, 'bgr8'), ('1920x1080 yuyv', 1080, 1920, 'yuyv'),
         ('640x480 rgb8', 480, 640, 'rgb8'))
#: (label, height, width, encoding): the node's default edge-aware upsampling, torch vs new.
EDGE_AWARE_CASES = (('1080p bgr8 edge', 1080, 1920, 'bgr8'), ('480p rgb8 edge', 480, 640, 'rgb8'))


def _image_pixels(height: int, width: int, encoding: str, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx ^ yy) & 255)], axis=2)
    rgb = (rgb + rng.integers(0, 16, rgb.shape)).clip(0, 255).astype(np.uint8)
    if encoding == 'bgr8':
        return np.ascontiguousarray(rgb[:, :, ::-1])
    if encoding == 'yuyv':
        import cv2

        yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)  # 4:4:4 -> packed 4:2:2 by hand
        packed = np.empty((height, width, 2), np.uint8)
        packed[:, :, 0] = yuv[:, :, 0]
        packed[:, 0::2, 1] = yuv[:, 0::2, 1]
        packed[:, 1::2, 1] = yuv[:, 0::2, 2]
        return packed
    return rgb


def _cloud(rng: np.random.Generator) -> np.ndarray:
    """128 rings x 1024 azimuths over 360 degrees; about a quarter in front.

    A scene, not noise (the edge-aware upsampler's work grows with the depth edges): ground
    1.8 m below the sensor, a wall at 30 m, two boxes at 6 and 12 m, 2 cm range noise.
    """
    ring = np.repeat(np.linspace(-0.39, 0.26, 128), 1024)
    azimuth = np.tile(np.linspace(-np.pi, np.pi, 1024, endpoint=False), 128)
    below = np.minimum(ring, -1e-3)
    distance = np.where(ring < -0.06, np.minimum(1.8 / np.sin(-below), 30.0), 30.0)
    for centre, half_width, top, box_m in ((0.3, 0.15, 0.1, 6.0), (-0.4, 0.1, 0.05, 12.0)):
        box = (np.abs(azimuth - centre) < half_width) & (ring < top)
        distance = np.where(box, np.minimum(distance, box_m), distance)
    distance = distance + rng.normal(0.0, 0.02, N_POINTS)
    return np.stack([distance * np.cos(ring) * np.cos(azimuth),
                     distance * np.cos(ring) * np.sin(azimuth),
                     distance * np.sin(ring)], axis=1).astype(np.float32)


def _camera(height: int, width: int) -> Any:
    from g2mono_ros.fusion.camera import CameraModel

    f = 0.8 * width
    return CameraModel(width=width, height=height,
                       K=np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]]),
                       D=np.zeros(5), distortion_model='plumb_bob')


class _TimedForward:
    """Wraps the engine's network call and adds up its time (to subtract the model)."""

    def __init__(self, forward: Callable[..., Any]) -> None:
        self.forward = forward
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def __call__(self, *inputs: Any) -> Any:
        start, start_cpu = time.perf_counter(), time.process_time()
        out = self.forward(*inputs)
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - start_cpu
        return out


def old_infer(engine: Any, rgb: np.ndarray, sparse_net: np.ndarray) -> np.ndarray:
    """``DepthEngine.infer`` as it was: float resize of the full image, torch upsampling."""
    import torch
    import torch.nn.functional as F

    from g2mono_ros.models.engine import resize_sparse_depth

    height, width = rgb.shape[:2]
    h, w = engine.network_input_size(height, width)
    sparse_in = resize_sparse_depth(sparse_net, (h, w))
    with torch.inference_mode():
        rgb_t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).float()
        rgb_t = F.interpolate(rgb_t, size=(h, w), mode='bilinear', align_corners=False,
                              antialias=True)
        rgb_t = rgb_t.clamp_(0.0, 255.0) / 255.0
        depth = engine.infer_tensors(rgb_t, torch.from_numpy(sparse_in)[None, None])
        depth = F.interpolate(depth, size=(height, width), mode='bilinear', align_corners=False)
        return depth[0, 0].numpy().copy()


def old_depth_to_image(depth_m: np.ndarray, header: Any) -> Any:
    """The checked encoder with its finiteness pass (as the old node called it)."""
    from g2mono_ros.ros.codecs import depth_to_image

    return depth_to_image(depth_m, header, '32FC1')


def _case_inputs(engine: Any, height: int, width: int, encoding: str,
                 rng: np.random.Generator) -> tuple[Any, Any, Any, Any, np.ndarray, Any]:
    """(header, image message, cloud message, camera model, LiDAR -> camera (4, 4), network
    input size) of one case: real rclpy messages."""
    from std_msgs.msg import Header

    from g2mono_ros.fusion.transforms import transform_from_translation_quaternion
    from g2mono_ros.ros import codecs

    header = Header(frame_id='camera_optical')
    image_msg = codecs.numpy_to_image(_image_pixels(height, width, encoding, rng), encoding,
                                      header)
    cloud_msg = codecs.xyz_to_pointcloud2(_cloud(rng), Header(frame_id='lidar'))
    T = transform_from_translation_quaternion(np.zeros(3), np.asarray(ROTATION))
    return (header, image_msg, cloud_msg, _camera(height, width), T,
            engine.network_input_size(height, width))


def run_case(engine: Any, height: int, width: int, encoding: str, frames: int,
             rng: np.random.Generator, block: int = 1) -> dict[str, list[float]]:
    """Per-message callback seconds and per-pair non-model seconds, old and new; the paths
    take turns of ``block`` frames."""
    from g2mono_ros.fusion.pipeline import PairInputs, process_pair
    from g2mono_ros.fusion.projection import project_points_to_depth
    from g2mono_ros.fusion.sparse import SparseProjector
    from g2mono_ros.ros import codecs

    header, image_msg, cloud_msg, camera, T, net_hw = _case_inputs(engine, height, width,
                                                                   encoding, rng)
    import legacy_edge_path

    from g2mono_ros.models import upsample_host

    projector, legacy_projector = SparseProjector(), legacy_edge_path.SparseProjector()
    depth_encoder, sparse_encoder = codecs.DepthImageEncoder(), codecs.DepthImageEncoder()
    timed = _TimedForward(engine._forward)
    engine._forward = timed
    out: dict[str, list[float]] = {key: [] for key in (
        'old_image_cb', 'old_cloud_cb', 'new_image_cb', 'new_cloud_cb', 'old_pair', 'new_pair',
        'old_pair_cpu', 'new_pair_cpu', 'lazy_pair', 'lazy_pair_cpu', 'prev_pair',
        'prev_pair_cpu', 'prev_lazy_pair', 'prev_lazy_pair_cpu')}

    def old_callbacks() -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        rgb = codecs.rgb_from_image_reference(image_msg)
        t1 = time.perf_counter()
        xyz, _ = codecs.pointcloud2_to_xyz(cloud_msg)
        t2 = time.perf_counter()
        out['old_image_cb'].append(t1 - t0)
        out['old_cloud_cb'].append(t2 - t1)
        return rgb, xyz

    def new_callbacks() -> None:
        t0 = time.perf_counter()
        codecs.check_image(image_msg)
        t1 = time.perf_counter()
        codecs.check_pointcloud2(cloud_msg)
        t2 = time.perf_counter()
        out['new_image_cb'].append(t1 - t0)
        out['new_cloud_cb'].append(t2 - t1)

    def old_pair() -> None:
        timed.seconds = timed.cpu_seconds = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        rgb, xyz = old_callbacks()
        sparse_net, _ = project_points_to_depth(xyz, T, camera, out_hw=net_hw)
        depth = old_infer(engine, rgb, sparse_net)
        sparse_full, _ = project_points_to_depth(xyz, T, camera)
        old_depth_to_image(depth, header)
        old_depth_to_image(sparse_full, header)
        out['old_pair'].append(time.perf_counter() - t0 - timed.seconds)
        out['old_pair_cpu'].append(time.process_time() - c0 - timed.cpu_seconds)

    def new_pair(key: str = 'new_pair', sparse: bool = True, legacy: bool = False) -> Any:
        new_callbacks()
        timed.seconds = timed.cpu_seconds = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        # As the node's worker: with edge-aware upsampling the camera-size image is the guide.
        rgb, guide = codecs.rgb_for_network(image_msg, net_hw,
                                            camera_size=engine.config.upsample != 'bilinear')
        xyz, _ = codecs.pointcloud2_to_xyz(cloud_msg)
        work = process_pair(engine, PairInputs(rgb, xyz, camera, guide=guide), T, min_range=0.5,
                            max_range=100.0, want_sparse=sparse, want_colorized=False,
                            projector=legacy_projector if legacy else projector,
                            out=None if legacy else depth_encoder.target((height, width)))
        if legacy:  # fresh messages, as the node made them
            codecs.depth_to_image(work.depth_m, header, '32FC1', clean=True)
            if sparse:
                codecs.depth_to_image(work.sparse_m, header, '32FC1', clean=True,
                                      pixels=work.sparse_pixels)
        else:  # the node's encoders: messages refilled frame after frame
            depth_encoder.encode(work.depth_m, header, positive=work.depth_positive)
            if sparse:
                sparse_encoder.encode(work.sparse_m, header, pixels=work.sparse_pixels)
        out[key].append(time.perf_counter() - t0 - timed.seconds)
        out[f'{key}_cpu'].append(time.process_time() - c0 - timed.cpu_seconds)
        return work

    def prev_pair(key: str = 'prev_pair', sparse: bool = True) -> Any:
        """The path before this issue's edge-aware work (``legacy_edge_path``)."""
        def legacy_upsampler(*args: Any, out: Any = None, **kwargs: Any) -> np.ndarray:
            return legacy_edge_path.edge_aware_upsample_host(*args, **kwargs)  # out: None

        host_upsampler = upsample_host.edge_aware_upsample_host
        upsample_host.edge_aware_upsample_host = legacy_upsampler
        try:
            return new_pair(key, sparse, legacy=True)
        finally:
            upsample_host.edge_aware_upsample_host = host_upsampler

    def torch_upsampling_pair() -> None:
        import torch

        from g2mono_ros.models import upsample

        def torch_upsampler(depth: np.ndarray, guide_lr: np.ndarray, guide_hr: np.ndarray, *,
                            out: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
            tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in (depth, guide_lr,
                                                                           guide_hr)]
            up = upsample.edge_aware_upsample(
                tensors[0][None, None], tensors[1].permute(2, 0, 1)[None],
                tensors[2].permute(2, 0, 1)[None], **kwargs)[0, 0].numpy()
            if out is None:
                return up
            np.copyto(out, up)
            return out

        host_path, upsample._host_path = upsample._host_path, lambda *tensors: False
        host_upsampler = upsample_host.edge_aware_upsample_host
        upsample_host.edge_aware_upsample_host = torch_upsampler
        try:
            new_pair('old_pair')
        finally:
            upsample._host_path = host_path
            upsample_host.edge_aware_upsample_host = host_upsampler

    first = old_pair if engine.config.upsample == 'bilinear' else torch_upsampling_pair
    if first is torch_upsampling_pair:  # same callbacks in both: the new ones
        out['old_image_cb'], out['old_cloud_cb'] = out['new_image_cb'], out['new_cloud_cb']
    edge = first is torch_upsampling_pair
    try:
        first()  # warm-up of every path, not recorded
        if edge:
            before, after = prev_pair(), new_pair()
            for name in ('depth_m', 'sparse_m'):  # the same result, or the figures mean little
                # Compared before the next frame refills them; the new depth is its message's
                # buffer: NaN where the old one has 0.
                if not np.array_equal(getattr(before, name),
                                      np.nan_to_num(getattr(after, name), nan=0.0)):
                    msg = f'the previous and the new path differ in {name}'
                    raise AssertionError(msg)
        new_pair()
        for values in out.values():
            values.clear()
        paths: list[Callable[[], Any]] = [first, *([prev_pair] if edge else []), new_pair,
                                          lambda: new_pair('lazy_pair', sparse=False)]
        if edge:
            paths.append(lambda: prev_pair('prev_lazy_pair', sparse=False))
        # Interleaved so that load drift hits every path alike: in turns of ``block`` frames
        # per path. A path's own reused buffers (projection maps, messages, tables) then stay
        # as warm as in the node, which runs one path with only the network between frames;
        # with ``block`` 1 every frame first reads past the other paths' buffers.
        for start in range(0, frames, block):
            for path in paths:
                for _ in range(min(block, frames - start)):
                    path()
    finally:
        engine._forward = timed.forward
    return out


class _StageClock:
    """Adds up the wall time of wrapped calls per stage name, for one frame at a time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._open: set[str] = set()

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if stage in self._open:  # nested in a call of the same stage: counted there
                return function(*args, **kwargs)
            self._open.add(stage)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._open.discard(stage)
                self.add(stage, time.perf_counter() - start)
        return timed

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


#: The new path's stages, in the worker's order (``infer`` = the rest of ``DepthEngine.infer``
#: without the network's forward pass, the network input build and the upsampling).
STAGES = ('image', 'cloud', 'project', 'net_inputs', 'infer', 'upsample',
          'depth_msg', 'sparse_msg', 'total')


def run_breakdown(engine: Any, height: int, width: int, encoding: str, frames: int,
                  rng: np.random.Generator) -> dict[str, list[float]]:
    """The new path (``run_case``'s ``new_pair``, sparse_depth subscribed) split into stages.

    Each stage is timed where the node runs it; the engine's internals through wrappers on
    the instance (removed at the end). Returns stage -> per-frame seconds.
    """
    from g2mono_ros.fusion.pipeline import PairInputs, process_pair
    from g2mono_ros.fusion.sparse import SparseProjector
    from g2mono_ros.ros import codecs

    header, image_msg, cloud_msg, camera, T, net_hw = _case_inputs(engine, height, width,
                                                                   encoding, rng)
    projector = SparseProjector()
    depth_encoder, sparse_encoder = codecs.DepthImageEncoder(), codecs.DepthImageEncoder()
    clock = _StageClock()
    names = {'_forward': 'model', '_network_inputs': 'net_inputs',
             '_host_network_inputs': 'net_inputs', '_upsample_on_host': 'upsample',
             '_to_camera_size': 'upsample'}
    wrapped = tuple(name for name in names if hasattr(engine, name))
    saved = {attribute: engine.__dict__.get(attribute) for attribute in wrapped}
    for attribute in wrapped:
        setattr(engine, attribute, clock.wrap(names[attribute], getattr(engine, attribute)))
    from g2mono_ros.models import upsample_host

    host_upsample = upsample_host.edge_aware_upsample_host
    upsample_host.edge_aware_upsample_host = clock.wrap('upsample', host_upsample)
    project = projector.project
    projector.project = clock.wrap('project', project)  # type: ignore[method-assign]
    out: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def frame() -> None:
        clock.seconds = {}
        t0 = time.perf_counter()
        rgb, guide = codecs.rgb_for_network(image_msg, net_hw,
                                            camera_size=engine.config.upsample != 'bilinear')
        t1 = time.perf_counter()
        xyz, _ = codecs.pointcloud2_to_xyz(cloud_msg)
        t3 = time.perf_counter()
        work = process_pair(engine, PairInputs(rgb, xyz, camera, guide=guide), T, min_range=0.5,
                            max_range=100.0, want_sparse=True, want_colorized=False,
                            projector=projector, out=depth_encoder.target((height, width)))
        t4 = time.perf_counter()
        depth_encoder.encode(work.depth_m, header, positive=work.depth_positive)
        t5 = time.perf_counter()
        sparse_encoder.encode(work.sparse_m, header, pixels=work.sparse_pixels)
        t6 = time.perf_counter()
        s = clock.seconds
        model = s.get('model', 0.0)
        parts = {'image': t1 - t0, 'cloud': t3 - t1,
                 'project': s.get('project', 0.0), 'net_inputs': s.get('net_inputs', 0.0),
                 'upsample': s.get('upsample', 0.0), 'depth_msg': t5 - t4,
                 'sparse_msg': t6 - t5, 'total': t6 - t0 - model}
        parts['infer'] = work.timings_s['model'] - model - parts['net_inputs'] - parts['upsample']
        for stage, seconds in parts.items():
            out[stage].append(seconds)

    try:
        frame()  # warm-up, not recorded
        for values in out.values():
            values.clear()
        for _ in range(frames):
            frame()
    finally:
        upsample_host.edge_aware_upsample_host = host_upsample
        for attribute, value in saved.items():  # instance attributes back, class methods bare
            if value is None:
                del engine.__dict__[attribute]
            else:
                setattr(engine, attribute, value)
    return out


def report(weights: str, frames: int, seed: int = 0, *, edge_only: bool = False,
           block: int = 10) -> int:
    """Run every case and print the table; 0 when the new path meets every target.

    ``weights``: a checkpoint; its forward pass is subtracted, but edge-aware upsampling needs
    an output that looks like depth (a random network's is noise: edges everywhere).
    """
    import os

    from cpu_info import cpu_model
    from g2mono_ros.config import EngineConfig
    from g2mono_ros.models.checkpoint import load_checkpoint
    from g2mono_ros.models.engine import DepthEngine

    loaded = load_checkpoint(weights)

    def make_engine(upsample: str) -> Any:
        return DepthEngine(EngineConfig(weights=weights, device='cpu', input_height=320,
                                        max_depth=80.0, upsample=upsample), model=loaded)

    rng = np.random.default_rng(seed)
    cpu = cpu_model()
    print(f'per-frame path, old vs new, same run: {cpu}; {os.cpu_count()} CPUs; load average '
          f'{os.getloadavg()[0]:.1f}; {frames} frames per case and path (paths interleaved in '
          f'turns of {block} frames); network '
          f'{loaded.variant} ({Path(weights).name}) at input height 320 (its forward pass is '
          'subtracted)')
    print(f'{"case":<16}{"path":<10}{"image cb ms":>12}{"cloud cb ms":>12}{"cb busy %":>10}'
          f'{"non-model p50":>14}{"p95 ms":>8}{"CPU p50":>9}{"p95 ms":>8}')
    ok = True
    # Bilinear upsampling in both paths: the old path had nothing else. Then the default
    # edge-aware upsampling, the torch upsampler against the node's path now.
    runs = [(make_engine('bilinear'), CASES, 'old'),
            (make_engine('edge_aware'), EDGE_AWARE_CASES, 'torch')][1 if edge_only else 0:]
    for engine, cases, old_name in runs:
        for label, height, width, encoding in cases:
            t = run_case(engine, height, width, encoding, frames, rng, block)
            target_ms = 15.0 if height >= 1080 else 10.0
            paths = ('old', 'new', 'lazy') if old_name == 'old' else (
                'old', 'prev', 'new', 'prev_lazy', 'lazy')
            for path in paths:
                cb = 'old' if path == 'old' else 'new'
                image_ms = float(np.median(t[f'{cb}_image_cb'])) * 1e3
                cloud_ms = float(np.median(t[f'{cb}_cloud_cb'])) * 1e3
                busy = (CAMERA_HZ * image_ms + LIDAR_HZ * cloud_ms) / 10.0  # ms per s -> %
                pair = np.asarray(t[f'{path}_pair']) * 1e3
                p50, p95 = float(np.percentile(pair, 50)), float(np.percentile(pair, 95))
                cpu = np.asarray(t[f'{path}_pair_cpu']) * 1e3
                c50, c95 = float(np.percentile(cpu, 50)), float(np.percentile(cpu, 95))
                name = old_name if path == 'old' else path
                print(f'{label:<16}{name:<10}{image_ms:>12.3f}{cloud_ms:>12.3f}{busy:>10.2f}'
                      f'{p50:>14.2f}{p95:>8.2f}{c50:>9.2f}{c95:>8.2f}')
                if path in ('new', 'lazy'):
                    ok = ok and busy < 10.0 and p95 < target_ms
            print(f'{"":<16}targets: callback thread < 10 % busy; non-model p95 < '
                  f'{target_ms:g} ms')
    print('cb busy % = (30 Hz x image callback + 10 Hz x cloud callback) time per second. '
          'non-model = decode, resize, projection(s), up-sampling, depth message(s); '
          'publish_sparse on (a subscriber); lazy = the new path while nothing subscribes to '
          'sparse_depth (the default publish_sparse: false likewise); prev, prev_lazy = the '
          'edge-aware path before its last speed-up (benchmarks/legacy_edge_path.py: previous '
          'projection and host upsampler, a fresh message per frame), same outputs (checked). '
          'Wall ms, then CPU ms of '
          'the process (all its threads; on a busy machine wall time also holds the waits for '
          'a core).')
    return 0 if ok else 1


def report_breakdown(weights: str, frames: int, seed: int = 0, *,
                     edge_only: bool = False) -> None:
    """Print the new path's stages (p50 and p95 ms) for every case, bilinear and edge-aware."""
    import os

    from cpu_info import cpu_model
    from g2mono_ros.config import EngineConfig
    from g2mono_ros.models.checkpoint import load_checkpoint
    from g2mono_ros.models.engine import DepthEngine

    loaded = load_checkpoint(weights)
    rng = np.random.default_rng(seed)
    print(f'per-frame path, new, by stage: {cpu_model()}; {os.cpu_count()} CPUs; load average '
          f'{os.getloadavg()[0]:.1f}; {frames} frames per case; sparse_depth subscribed; '
          'p50 / p95 ms (total = everything but the forward pass)')
    print(f'{"case":<17}' + ''.join(f'{stage:>12}' for stage in STAGES))
    for upsample, cases in (('bilinear', CASES), ('edge_aware', EDGE_AWARE_CASES))[
            1 if edge_only else 0:]:
        engine = DepthEngine(EngineConfig(weights=weights, device='cpu', input_height=320,
                                          max_depth=80.0, upsample=upsample), model=loaded)
        for label, height, width, encoding in cases:
            t = run_breakdown(engine, height, width, encoding, frames, rng)
            cells = []
            for stage in STAGES:
                ms = np.asarray(t[stage]) * 1e3
                cells.append(f'{np.percentile(ms, 50):.2f}/{np.percentile(ms, 95):.2f}')
            print(f'{label:<17}' + ''.join(f'{cell:>12}' for cell in cells))
    print('image: decode and area resize to the network size (edge-aware: and the camera-size '
          'guide, a view for 8-bit RGB/BGR); cloud: PointCloud2 decode; project: one '
          'projection, both maps; net_inputs: normalisation and masks; infer: the rest of '
          'DepthEngine.infer; upsample: to the camera size; *_msg: message encoding.')

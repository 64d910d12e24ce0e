"""The procedural 3D scene and its analytic, vectorised ray caster (numpy only, no ROS).

World frame is REP 103 (x forward, y left, z up, metres); the ground is the plane z = 0. Objects
are yawed boxes (slab test), vertical capped cylinders, spheres; each carries a solid texture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from g2mono_ros.synth.textures import TEXTURE_KINDS, TextureKind, photo_albedo, texture_mix

__all__ = ['Material', 'RayHits', 'Scene', 'make_scene']

_EPS = 1e-6
# Rays are cast in blocks so that the (rays, objects) candidate matrix stays a few MB.
_BLOCK = 65536
_SUN = np.array([0.45, 0.3, 0.84]) / np.linalg.norm([0.45, 0.3, 0.84])
_SKY_HORIZON = np.array([0.80, 0.86, 0.93])
_SKY_ZENITH = np.array([0.35, 0.52, 0.82])


@dataclass(frozen=True)
class Material:
    """Surface appearance: two colours blended by a solid texture, and LiDAR reflectivity.

    Attributes:
        color_a, color_b: RGB in [0, 1].
        texture: pattern name (``checker``, ``stripes``, ``noise``, ``plain``, ``photo``).
        scale_m: pattern period in metres.
        reflectivity: LiDAR return strength in [0, 1].
        photo: which photograph a ``photo`` texture shows (``textures.PHOTO_NAMES``, modulo).
    """

    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    texture: TextureKind
    scale_m: float
    reflectivity: float
    photo: int = 0


class RayHits(NamedTuple):
    """Nearest hit of each ray; rays without a hit have ``range_m = inf`` and ``object_id = -1``.

    Attributes:
        range_m: (N,) float64 distance along the unit ray, metres.
        object_id: (N,) int64 index into ``Scene.materials`` order of objects (0 = ground).
        normal: (N,) x 3 float64 unit surface normal in the world frame, facing the ray origin.
        local_point: (N, 3) float64 hit point in the object's own frame (for textures).
    """

    range_m: np.ndarray
    object_id: np.ndarray
    normal: np.ndarray
    local_point: np.ndarray


def _rotate_z(vec: np.ndarray, c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Rotate (..., 3) vectors by -yaw about z (world -> box frame); all arguments broadcast."""
    x, y, z = vec[..., 0], vec[..., 1], vec[..., 2]
    xr = c * x + s * y
    yr = -s * x + c * y
    return np.stack(np.broadcast_arrays(xr, yr, z), axis=-1)


def _box_range(origin: np.ndarray, dirs: np.ndarray, center: np.ndarray, half: np.ndarray,
               yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slab test of rays against yawed boxes; arguments broadcast against each other.

    Returns (range (...,), local origin (..., 3), local direction (..., 3)); range is inf on miss.
    """
    c, s = np.cos(yaw), np.sin(yaw)
    rel = origin - center
    o_loc = _rotate_z(rel, c, s)
    d_loc = _rotate_z(dirs, c, s)
    d_safe = np.where(np.abs(d_loc) < 1e-12, 1e-12, d_loc)
    # Per-axis slabs as separate arrays: numpy reductions over a length-3 last axis are slow.
    t_near = np.full(d_loc.shape[:-1], -np.inf)
    t_far = np.full(d_loc.shape[:-1], np.inf)
    for axis in range(3):
        inv = 1.0 / d_safe[..., axis]
        t1 = (-half[..., axis] - o_loc[..., axis]) * inv
        t2 = (half[..., axis] - o_loc[..., axis]) * inv
        t_near = np.maximum(t_near, np.minimum(t1, t2))
        t_far = np.minimum(t_far, np.maximum(t1, t2))
    hit = (t_far >= t_near) & (t_near > _EPS)
    return np.where(hit, t_near, np.inf), o_loc, d_loc


def _cylinder_range(origin: np.ndarray, dirs: np.ndarray, base: np.ndarray, radius: np.ndarray,
                    height: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rays against vertical cylinders standing on ``base`` (x, y, z0) with a top cap.

    Returns (range (...,), is_cap (...,) bool); range is inf on miss.
    """
    rel = origin - base
    a = dirs[..., 0] ** 2 + dirs[..., 1] ** 2
    b = 2.0 * (rel[..., 0] * dirs[..., 0] + rel[..., 1] * dirs[..., 1])
    c = rel[..., 0] ** 2 + rel[..., 1] ** 2 - radius ** 2
    disc = b * b - 4.0 * a * c
    with np.errstate(invalid='ignore', divide='ignore'):
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
        z_side = rel[..., 2] + t_side * dirs[..., 2]
        side_ok = (disc >= 0) & (a > 1e-12) & (t_side > _EPS) & (z_side >= 0) & (z_side <= height)
        t_cap = (height - rel[..., 2]) / dirs[..., 2]
        cap_x = rel[..., 0] + t_cap * dirs[..., 0]
        cap_y = rel[..., 1] + t_cap * dirs[..., 1]
        cap_ok = (t_cap > _EPS) & (cap_x ** 2 + cap_y ** 2 <= radius ** 2)
    t_side = np.where(side_ok, t_side, np.inf)
    t_cap = np.where(cap_ok, t_cap, np.inf)
    return np.minimum(t_side, t_cap), t_cap < t_side


def _sphere_range(origin: np.ndarray, dirs: np.ndarray, center: np.ndarray,
                  radius: np.ndarray) -> np.ndarray:
    """Unit rays against spheres; range (...,) is inf on miss."""
    rel = origin - center
    b = (rel * dirs).sum(axis=-1)
    c = (rel * rel).sum(axis=-1) - radius ** 2
    disc = b * b - c
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    return np.where((disc >= 0) & (t > _EPS), t, np.inf)


class Scene:
    """A static scene: ground plane, yawed boxes, vertical cylinders, spheres.

    Object ids: 0 = ground, then boxes, cylinders, spheres in that order; ``materials[id]``.

    Args:
        materials: one Material per object id.
        boxes: (M, 7) float64 rows ``[cx, cy, cz, half_x, half_y, half_z, yaw_rad]``.
        cylinders: (K, 5) float64 rows ``[x, y, z0, radius, height]``.
        spheres: (S, 4) float64 rows ``[cx, cy, cz, radius]``.
        sun_direction: (3,) direction towards the sun (normalised here; z > 0).
        cast_shadows: False for closed rooms (their ceiling would shadow every point).
    """

    def __init__(self, materials: list[Material], boxes: np.ndarray, cylinders: np.ndarray,
                 spheres: np.ndarray, *, sun_direction: np.ndarray = _SUN,
                 cast_shadows: bool = True) -> None:
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
        self.cylinders = np.asarray(cylinders, dtype=np.float64).reshape(-1, 5)
        self.spheres = np.asarray(spheres, dtype=np.float64).reshape(-1, 4)
        self.materials = list(materials)
        self._first_cyl = 1 + len(self.boxes)
        self._first_sph = self._first_cyl + len(self.cylinders)
        expected = self._first_sph + len(self.spheres)
        if len(self.materials) != expected:
            msg = f'Scene needs {expected} materials (ground + objects); got {len(self.materials)}'
            raise ValueError(msg)
        self._salt = np.arange(expected) * 7919
        sun = np.asarray(sun_direction, dtype=np.float64).reshape(3)
        self.sun_direction = sun / np.linalg.norm(sun)
        self.cast_shadows = bool(cast_shadows)

    @property
    def num_objects(self) -> int:
        return len(self.materials)

    def cast(self, origin: np.ndarray, dirs: np.ndarray) -> RayHits:
        """Nearest hit of unit rays from one origin.

        Args:
            origin: (3,) float64 ray origin, world frame, metres.
            dirs: (N, 3) float64 unit directions, world frame.

        Returns:
            RayHits for the N rays.
        """
        origin = np.asarray(origin, dtype=np.float64).reshape(3)
        dirs = np.asarray(dirs, dtype=np.float64).reshape(-1, 3)
        parts = [self._cast_block(origin, dirs[i:i + _BLOCK]) for i in range(0, len(dirs), _BLOCK)]
        if not parts:
            empty = np.zeros((0, 3))
            return RayHits(np.zeros(0), np.zeros(0, dtype=np.int64), empty, empty)
        return RayHits(*(np.concatenate(field) for field in zip(*parts)))

    def _bounding_spheres(self) -> tuple[np.ndarray, np.ndarray]:
        """(centres (M, 3), radii (M,)) of every object after the ground, in id order."""
        b, cy, sp = self.boxes, self.cylinders, self.spheres
        centres = np.concatenate([
            b[:, :3],
            np.stack([cy[:, 0], cy[:, 1], cy[:, 2] + 0.5 * cy[:, 4]], axis=1),
            sp[:, :3]]) if self.num_objects > 1 else np.zeros((0, 3))
        radii = np.concatenate([np.linalg.norm(b[:, 3:6], axis=1),
                                np.hypot(cy[:, 3], 0.5 * cy[:, 4]), sp[:, 3]])
        return centres, radii

    def _cast_block(self, origin: np.ndarray, dirs: np.ndarray) -> RayHits:
        with np.errstate(divide='ignore'):
            t_ground = np.where(dirs[:, 2] < -1e-12, -origin[2] / dirs[:, 2], np.inf)
        best = np.where(t_ground > _EPS, t_ground, np.inf)
        best_id = np.where(np.isfinite(best), 0, -1).astype(np.int64)
        # All rays share one origin: a ray can only hit an object whose bounding sphere it
        # enters, i.e. whose angular radius seen from the origin covers the ray (one matmul).
        centres, radii = self._bounding_spheres()
        rel = centres - origin
        dist = np.linalg.norm(rel, axis=1)
        inside = dist <= radii
        cos_limit = np.sqrt(np.clip(1.0 - (radii / np.maximum(dist, 1e-9)) ** 2, 0.0, 1.0))
        cosine = dirs @ (rel / np.maximum(dist, 1e-9)[:, None]).T
        candidate = (cosine >= cos_limit - 1e-9) | inside
        for k in range(len(radii)):
            rows = np.flatnonzero(candidate[:, k])
            if rows.size == 0:
                continue
            t = self._object_range(k + 1, origin, dirs[rows])
            closer = t < best[rows]
            best[rows[closer]] = t[closer]
            best_id[rows[closer]] = k + 1
        normal, local = self._surface(origin, dirs, best, best_id)
        return RayHits(best, best_id, normal, local)

    def _object_range(self, obj: int, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Range (N,) of unit rays to object ``obj`` (>= 1), inf on miss."""
        if obj < self._first_cyl:
            b = self.boxes[obj - 1]
            return _box_range(origin, dirs, b[:3], b[3:6], b[6])[0]
        if obj < self._first_sph:
            cy = self.cylinders[obj - self._first_cyl]
            return _cylinder_range(origin, dirs, cy[:3], cy[3], cy[4])[0]
        sp = self.spheres[obj - self._first_sph]
        return _sphere_range(origin, dirs, sp[:3], sp[3])

    def occluded(self, points: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Whether anything lies along ``direction`` from each point (shadow rays).

        Args:
            points: (N, 3) float64 ray origins, world frame (lifted off their surface already).
            direction: (3,) unit direction shared by all rays, pointing up (the ground cannot
                occlude).

        Returns:
            (N,) bool.
        """
        blocked = np.zeros(len(points), dtype=bool)
        centres, radii = self._bounding_spheres()
        # Parallel rays reach a bounding sphere when it is ahead and its centre lies within one
        # radius of the ray's line: a disc test in the plane across the rays. Points sorted by
        # one in-plane axis make each object's candidates a contiguous slice.
        helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        axis_u = np.cross(direction, helper)
        axis_u /= np.linalg.norm(axis_u)
        axis_v = np.cross(direction, axis_u)
        u, v = points @ axis_u, points @ axis_v
        order = np.argsort(u, kind='stable')
        u_sorted = u[order]
        for k in range(len(radii)):
            cu, cv, r = centres[k] @ axis_u, centres[k] @ axis_v, radii[k]
            lo = np.searchsorted(u_sorted, cu - r, side='left')
            hi = np.searchsorted(u_sorted, cu + r, side='right')
            idx = order[lo:hi]
            if idx.size == 0:
                continue
            near = ((u[idx] - cu) ** 2 + (v[idx] - cv) ** 2 <= r * r + 1e-9)
            near &= (centres[k] - points[idx]) @ direction > -r
            rows = idx[near & ~blocked[idx]]
            if rows.size:
                dirs = np.broadcast_to(direction, (rows.size, 3))
                t = self._object_range(k + 1, points[rows], dirs)
                blocked[rows[np.isfinite(t)]] = True
        return blocked

    def _surface(self, origin: np.ndarray, dirs: np.ndarray, rng: np.ndarray,
                 ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normals and object-local points of the winning hits (recomputed per ray, O(N))."""
        n = len(dirs)
        normal = np.zeros((n, 3))
        local = np.zeros((n, 3))
        hit = ids >= 0
        points = origin + np.where(hit, rng, 0.0)[:, None] * dirs
        ground = ids == 0
        normal[ground] = (0.0, 0.0, 1.0)
        local[ground] = points[ground]
        sel = (ids >= 1) & (ids < self._first_cyl)
        if sel.any():
            b = self.boxes[ids[sel] - 1]
            t, o_loc, d_loc = _box_range(origin, dirs[sel], b[:, :3], b[:, 3:6], b[:, 6])
            p_loc = o_loc + t[:, None] * d_loc
            # The face hit is the one whose slab coordinate sits on the half-size.
            axis = np.argmax(np.abs(p_loc) / b[:, 3:6], axis=1)
            sign = np.sign(p_loc[np.arange(len(axis)), axis])
            n_loc = np.zeros_like(p_loc)
            n_loc[np.arange(len(axis)), axis] = sign
            c, s = np.cos(b[:, 6]), np.sin(b[:, 6])
            normal[sel] = np.stack([c * n_loc[:, 0] - s * n_loc[:, 1],
                                    s * n_loc[:, 0] + c * n_loc[:, 1], n_loc[:, 2]], axis=1)
            local[sel] = p_loc + b[:, 3:6]
        sel = (ids >= self._first_cyl) & (ids < self._first_sph)
        if sel.any():
            cy = self.cylinders[ids[sel] - self._first_cyl]
            _, is_cap = _cylinder_range(origin, dirs[sel], cy[:, :3], cy[:, 3], cy[:, 4])
            rel = points[sel] - cy[:, :3]
            side = np.stack([rel[:, 0], rel[:, 1], np.zeros(len(rel))], axis=1) / cy[:, 3:4]
            normal[sel] = np.where(is_cap[:, None], np.array([0.0, 0.0, 1.0]), side)
            local[sel] = rel
        sel = ids >= self._first_sph
        if sel.any():
            sp = self.spheres[ids[sel] - self._first_sph]
            rel = points[sel] - sp[:, :3]
            normal[sel] = rel / sp[:, 3:4]
            local[sel] = rel
        facing = (normal * dirs).sum(axis=1) > 0
        normal[facing] *= -1.0
        return normal, local

    def _albedo(self, hits: RayHits) -> np.ndarray:
        """(N, 3) surface colour in [0, 1] at each hit (zeros where nothing was hit)."""
        albedo = np.zeros((len(hits.range_m), 3))
        for obj in np.unique(hits.object_id[hits.object_id >= 0]):
            sel = hits.object_id == obj
            mat = self.materials[obj]
            if mat.texture == 'photo':
                # The photo's own colours, tinted by the material's colour a little.
                photo = photo_albedo(hits.local_point[sel], hits.normal[sel], mat.scale_m,
                                     mat.photo)
                albedo[sel] = photo * (0.6 + 0.4 * np.asarray(mat.color_a) / max(mat.color_a))
                continue
            mix = texture_mix(mat.texture, hits.local_point[sel], mat.scale_m, int(self._salt[obj]))
            albedo[sel] = (np.outer(1.0 - mix, mat.color_a) + np.outer(mix, mat.color_b))
        return albedo

    def shade(self, origin: np.ndarray, dirs: np.ndarray, hits: RayHits, *,
              shadows: bool = True) -> np.ndarray:
        """Camera colour of each ray: Lambert sun (with cast shadows) + sky ambient, distance
        haze, sky gradient.

        Args:
            origin: (3,) the rays' common origin, world frame.
            dirs: (N, 3) unit ray directions, world frame.
            hits: the rays' RayHits.
            shadows: cast a shadow ray per lit surface point (about 1.5x the cost).

        Returns:
            (N, 3) float64 RGB in [0, 1].
        """
        up = np.clip(dirs[:, 2], 0.0, 1.0)[:, None]
        sky = (1.0 - up) * _SKY_HORIZON + up * _SKY_ZENITH
        visible = np.isfinite(hits.range_m)
        albedo = self._albedo(hits)
        sun = np.clip(hits.normal @ self.sun_direction, 0.0, None)
        if shadows and self.cast_shadows:
            lit_rows = np.flatnonzero(visible & (sun > 0))
            points = origin + hits.range_m[lit_rows, None] * dirs[lit_rows]
            points += 1e-4 * hits.normal[lit_rows]
            sun[lit_rows[self.occluded(points, self.sun_direction)]] = 0.0
        sun = sun[:, None]
        ambient = 0.30 + 0.15 * hits.normal[:, 2:3]
        lit = albedo * (ambient + 0.75 * sun)
        haze = 1.0 - np.exp(-np.where(visible, hits.range_m, 0.0) / 120.0)[:, None]
        lit = (1.0 - haze) * lit + haze * _SKY_HORIZON
        return np.clip(np.where(visible[:, None], lit, sky), 0.0, 1.0)

    def reflectance(self, dirs: np.ndarray, hits: RayHits) -> np.ndarray:
        """LiDAR intensity (N,) float64 in [0, 255]: reflectivity x texture brightness x cos."""
        albedo = self._albedo(hits)
        refl = np.array([m.reflectivity for m in self.materials])[np.maximum(hits.object_id, 0)]
        cos = np.abs((hits.normal * dirs).sum(axis=1))
        brightness = 0.5 + 0.5 * albedo.mean(axis=1)
        return np.clip(255.0 * refl * brightness * (0.2 + 0.8 * cos), 0.0, 255.0)


def _random_material(rng: np.random.Generator, *, scale: tuple[float, float],
                     textures: tuple[TextureKind, ...] = TEXTURE_KINDS[:3]) -> Material:
    base = rng.uniform(0.15, 0.9, size=3)
    other = np.clip(base * rng.uniform(0.25, 0.6) + rng.uniform(0.0, 0.2, size=3), 0.0, 1.0)
    return Material(tuple(base), tuple(other), textures[rng.integers(len(textures))],
                    float(rng.uniform(*scale)), float(rng.uniform(0.1, 0.9)))


def _clearance(xy: np.ndarray, path_xy: np.ndarray) -> np.ndarray:
    """Distance (M,) from each point to the nearest sample of the camera path."""
    return np.sqrt(((xy[:, None, :] - path_xy[None, :, :]) ** 2).sum(axis=-1)).min(axis=1)


def make_scene(rng: np.random.Generator, path_xy: np.ndarray, *, corridor_m: float = 1.8,
               num_boxes: int = 14, num_poles: int = 10, num_spheres: int = 8) -> Scene:
    """Build a random scene around a closed camera path, keeping a free corridor along it.

    Args:
        rng: the sequence's generator (the only source of randomness).
        path_xy: (P, 2) samples of the camera path on the ground, metres.
        corridor_m: no object comes closer than this (plus its own radius) to the path.
        num_boxes, num_poles, num_spheres: object counts (walls come on top of the boxes).

    Returns:
        The Scene.
    """
    lo = path_xy.min(axis=0) - 6.0
    hi = path_xy.max(axis=0) + 6.0
    materials = [Material((0.42, 0.40, 0.36), (0.22, 0.24, 0.20),
                          ('checker', 'noise')[rng.integers(2)], float(rng.uniform(0.8, 1.6)), 0.3)]
    boxes: list[list[float]] = []
    # Walls: each side of the bounding rectangle in 2-3 segments with gaps, different heights.
    for side in range(4):
        axis = side % 2
        fixed = (lo if side < 2 else hi)[1 - axis] - (1.0 if side < 2 else -1.0) * 2.0
        span_lo, span_hi = lo[axis] - 2.0, hi[axis] + 2.0
        cuts = np.sort(rng.uniform(span_lo, span_hi, size=rng.integers(1, 3)))
        edges = np.concatenate([[span_lo], cuts, [span_hi]])
        for start, stop in zip(edges[:-1], edges[1:]):
            gap = rng.uniform(0.0, 2.5)
            if stop - start - gap < 2.0:
                continue
            mid, half_len = 0.5 * (start + stop), 0.5 * (stop - start - gap)
            height = rng.uniform(3.0, 8.0)
            center = [mid, fixed] if axis == 0 else [fixed, mid]
            halves = [half_len, 0.3] if axis == 0 else [0.3, half_len]
            boxes.append([*center, 0.5 * height, *halves, 0.5 * height, 0.0])
            materials.append(_random_material(rng, scale=(0.4, 1.5),
                                              textures=('checker', 'stripes')))

    def place(radius: float) -> np.ndarray | None:
        for _ in range(200):
            xy = rng.uniform(lo, hi)
            if _clearance(xy[None], path_xy)[0] > corridor_m + radius:
                return xy
        return None

    for _ in range(num_boxes):
        half = rng.uniform([0.25, 0.25, 0.25], [1.6, 1.6, 1.3])
        xy = place(float(np.hypot(half[0], half[1])))
        if xy is None:
            continue
        boxes.append([xy[0], xy[1], half[2], *half, rng.uniform(-np.pi, np.pi)])
        materials.append(_random_material(rng, scale=(0.15, 0.6)))
    cylinders: list[list[float]] = []
    for _ in range(num_poles):
        radius = rng.uniform(0.06, 0.35)
        xy = place(radius)
        if xy is None:
            continue
        cylinders.append([xy[0], xy[1], 0.0, radius, rng.uniform(2.0, 6.0)])
        materials.append(_random_material(rng, scale=(0.1, 0.4)))
    spheres: list[list[float]] = []
    for _ in range(num_spheres):
        radius = rng.uniform(0.25, 1.2)
        xy = place(radius)
        if xy is None:
            continue
        lift = rng.uniform(0.0, 1.5) if rng.random() < 0.3 else 0.0
        spheres.append([xy[0], xy[1], radius + lift, radius])
        materials.append(_random_material(rng, scale=(0.1, 0.5)))
    # Materials were appended in creation order (walls, boxes, poles, spheres) = id order.
    elevation, azimuth = rng.uniform(0.6, 1.2), rng.uniform(-np.pi, np.pi)
    sun = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                    np.sin(elevation)])
    return Scene(materials, np.array(boxes), np.array(cylinders), np.array(spheres),
                 sun_direction=sun)

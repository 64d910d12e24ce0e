"""Indoor rooms for the synthetic generator: walls, ceiling, tables on thin legs, shelves, chairs.

Depths of 0.5-10 m, the regime in which a fixed 80 m normalisation squeezed the old weights; the
same primitives (yawed boxes, cylinders, spheres) and ray caster as the outdoor scenes.
"""

from __future__ import annotations

import numpy as np

from g2mono_ros.synth.scene import Material, Scene, _clearance, _random_material
from g2mono_ros.synth.trajectory import LoopTrajectory

__all__ = ['make_room_scene', 'room_trajectory']


def room_trajectory(rng: np.random.Generator, *, speed_mps: float = 0.8) -> LoopTrajectory:
    """A small loop (1-2.5 m by 0.6-1.5 m semi-axes) at hand-held or robot height."""
    return LoopTrajectory(float(rng.uniform(1.0, 2.5)), float(rng.uniform(0.6, 1.5)),
                          float(rng.uniform(-np.pi, np.pi)), speed_mps=speed_mps,
                          height_m=float(rng.uniform(0.9, 1.6)))


def _flat_material(rng: np.random.Generator, *, dark: bool = False) -> Material:
    """Painted / wooden surfaces: mostly plain or fine noise, occasionally very dark."""
    material = _random_material(rng, scale=(0.05, 0.4), textures=('plain', 'noise', 'stripes'))
    if dark:
        scale = rng.uniform(0.05, 0.2)
        return Material(tuple(c * scale for c in material.color_a),
                        tuple(c * scale for c in material.color_b), material.texture,
                        material.scale_m, float(rng.uniform(0.02, 0.1)))
    return material


def make_room_scene(rng: np.random.Generator, path_xy: np.ndarray, *,
                    corridor_m: float = 0.45, num_tables: int = 3, num_shelves: int = 3,
                    num_chairs: int = 4, num_clutter: int = 6) -> Scene:
    """Build a closed room around a camera path with furniture off the path.

    Args:
        rng: the sequence's generator.
        path_xy: (P, 2) camera path on the floor, metres.
        corridor_m: furniture keeps this clearance (plus its own radius) from the path.
        num_tables, num_shelves, num_chairs, num_clutter: furniture counts (some may not fit).

    Returns:
        The Scene (floor = the ground plane, object id 0); no sky is visible, no cast shadows.
    """
    lo = path_xy.min(axis=0) - rng.uniform(0.8, 3.5, size=2)
    hi = path_xy.max(axis=0) + rng.uniform(0.8, 3.5, size=2)
    height = float(rng.uniform(2.4, 3.3))
    materials = [Material(tuple(rng.uniform(0.3, 0.7, 3)), tuple(rng.uniform(0.1, 0.4, 3)),
                          ('checker', 'stripes', 'noise')[rng.integers(3)],
                          float(rng.uniform(0.2, 0.8)), 0.4)]
    boxes: list[list[float]] = []
    cylinders: list[list[float]] = []
    spheres: list[list[float]] = []
    box_mats: list[Material] = []
    cyl_mats: list[Material] = []
    sph_mats: list[Material] = []
    wall_mat = _flat_material(rng)
    centre = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo)
    thick = 0.1
    # Four walls overlapping at the corners (no cracks to the sky) and a ceiling slab.
    for axis in (0, 1):
        for sign in (-1.0, 1.0):
            c = centre.copy()
            c[axis] += sign * (half[axis] + thick)
            extent = [half[0] + 2 * thick, half[1] + 2 * thick]
            extent[axis] = thick
            boxes.append([c[0], c[1], 0.5 * height, extent[0], extent[1], 0.5 * height + thick, 0.0])
            box_mats.append(wall_mat if rng.random() < 0.6 else _flat_material(rng))
    boxes.append([centre[0], centre[1], height + thick, half[0] + 3 * thick, half[1] + 3 * thick,
                  thick, 0.0])
    box_mats.append(_flat_material(rng))

    def place(radius: float, wall_side: bool = False) -> tuple[np.ndarray, float] | None:
        for _ in range(100):
            if wall_side:  # against a wall, facing the room
                axis, sign = int(rng.integers(2)), float(rng.choice([-1.0, 1.0]))
                xy = rng.uniform(lo + radius, hi - radius)
                xy[axis] = centre[axis] + sign * (half[axis] - radius)
                yaw = 0.0 if axis == 0 else 0.5 * np.pi
            else:
                xy = rng.uniform(lo + radius, hi - radius)
                yaw = float(rng.uniform(-np.pi, np.pi))
            if _clearance(xy[None], path_xy)[0] > corridor_m + radius:
                return xy, yaw
        return None

    def add_box(xy: np.ndarray, yaw: float, offset: tuple[float, float, float],
                half_size: tuple[float, float, float], material: Material) -> None:
        c, s = np.cos(yaw), np.sin(yaw)
        x = xy[0] + c * offset[0] - s * offset[1]
        y = xy[1] + s * offset[0] + c * offset[1]
        boxes.append([x, y, offset[2], *half_size, yaw])
        box_mats.append(material)

    def add_legs(xy: np.ndarray, yaw: float, hx: float, hy: float, top: float, radius: float,
                 material: Material) -> None:
        c, s = np.cos(yaw), np.sin(yaw)
        for dx in (-hx + radius, hx - radius):
            for dy in (-hy + radius, hy - radius):
                cylinders.append([xy[0] + c * dx - s * dy, xy[1] + s * dx + c * dy, 0.0, radius, top])
                cyl_mats.append(material)

    for _ in range(num_tables):
        hx, hy = rng.uniform(0.35, 0.9), rng.uniform(0.3, 0.55)
        spot = place(float(np.hypot(hx, hy)))
        if spot is None:
            continue
        xy, yaw = spot
        top = float(rng.uniform(0.65, 0.8))
        mat = _flat_material(rng, dark=rng.random() < 0.2)
        add_box(xy, yaw, (0.0, 0.0, top), (hx, hy, 0.02), mat)
        add_legs(xy, yaw, hx, hy, top - 0.02, float(rng.uniform(0.015, 0.04)), mat)
        if rng.random() < 0.6:  # something on the table
            spheres.append([xy[0], xy[1], top + 0.12, float(rng.uniform(0.05, 0.12))])
            sph_mats.append(_random_material(rng, scale=(0.02, 0.1)))
    for _ in range(num_shelves):
        hx, depth = rng.uniform(0.4, 0.9), rng.uniform(0.15, 0.25)
        spot = place(float(hx), wall_side=True)
        if spot is None:
            continue
        xy, yaw = spot
        tall = float(rng.uniform(1.2, 2.2))
        mat = _flat_material(rng, dark=rng.random() < 0.25)
        for side in (-1.0, 1.0):
            add_box(xy, yaw, (side * (hx - 0.01), 0.0, 0.5 * tall), (0.01, depth, 0.5 * tall), mat)
        for level in np.linspace(0.05, tall, int(rng.integers(3, 6))):
            add_box(xy, yaw, (0.0, 0.0, float(level)), (hx, depth, 0.012), mat)
        for _ in range(int(rng.integers(0, 5))):  # books / boxes on the shelves
            level = float(rng.choice(np.linspace(0.05, tall, 3)[:-1]))
            size = rng.uniform([0.04, 0.06, 0.08], [0.2, depth * 0.9, 0.15])
            add_box(xy, yaw, (float(rng.uniform(-hx + size[0], hx - size[0])), 0.0,
                              level + 0.012 + size[2]), tuple(size), _random_material(rng, scale=(0.02, 0.1)))
    for _ in range(num_chairs):
        hs = float(rng.uniform(0.2, 0.26))
        spot = place(hs * 1.5)
        if spot is None:
            continue
        xy, yaw = spot
        seat = float(rng.uniform(0.42, 0.5))
        mat = _flat_material(rng, dark=rng.random() < 0.3)
        add_box(xy, yaw, (0.0, 0.0, seat), (hs, hs, 0.025), mat)
        add_legs(xy, yaw, hs, hs, seat - 0.025, float(rng.uniform(0.012, 0.025)), mat)
        add_box(xy, yaw, (-hs + 0.02, 0.0, seat + 0.25), (0.02, hs, 0.22), mat)
    for _ in range(num_clutter):
        kind = rng.random()
        if kind < 0.4:  # cabinet / box on the floor
            size = rng.uniform([0.15, 0.15, 0.1], [0.6, 0.4, 0.6])
            spot = place(float(np.hypot(size[0], size[1])))
            if spot is not None:
                add_box(spot[0], spot[1], (0.0, 0.0, float(size[2])), tuple(size),
                        _flat_material(rng, dark=rng.random() < 0.3))
        elif kind < 0.7:  # floor lamp / coat stand: a thin pole
            spot = place(0.05)
            if spot is not None:
                cylinders.append([spot[0][0], spot[0][1], 0.0, float(rng.uniform(0.01, 0.03)),
                                  float(rng.uniform(1.2, 1.9))])
                cyl_mats.append(_flat_material(rng))
        else:  # ball / pot
            radius = float(rng.uniform(0.1, 0.3))
            spot = place(radius)
            if spot is not None:
                spheres.append([spot[0][0], spot[0][1], radius, radius])
                sph_mats.append(_random_material(rng, scale=(0.05, 0.2)))
    # A ceiling lamp: light from high above, no cast shadows (the ceiling would shadow all).
    light = np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), 1.0])
    return Scene(materials + box_mats + cyl_mats + sph_mats, np.array(boxes), np.array(cylinders),
                 np.array(spheres), sun_direction=light, cast_shadows=False)

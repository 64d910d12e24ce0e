"""Ray casting against each primitive (hand-computed ranges), culling vs brute force, textures,
and the procedural layout's free corridor."""

from __future__ import annotations

import numpy as np
import pytest

from g2mono_ros.synth.scene import Material, Scene, make_scene
from g2mono_ros.synth.textures import texture_mix
from g2mono_ros.synth.trajectory import LoopTrajectory

PLAIN = Material((0.5, 0.5, 0.5), (0.1, 0.1, 0.1), 'checker', 1.0, 0.5)


def _scene(boxes=(), cylinders=(), spheres=()) -> Scene:
    count = 1 + len(boxes) + len(cylinders) + len(spheres)
    return Scene([PLAIN] * count, np.array(boxes), np.array(cylinders), np.array(spheres))


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return (v / np.linalg.norm(v))[None]


def test_ground_plane_range_and_normal():
    hits = _scene().cast([0.0, 0.0, 2.0], _unit([1.0, 0.0, -1.0]))
    assert hits.range_m[0] == pytest.approx(2.0 * np.sqrt(2.0))
    assert hits.object_id[0] == 0
    assert np.allclose(hits.normal[0], [0.0, 0.0, 1.0])


def test_sky_has_no_hit():
    hits = _scene().cast([0.0, 0.0, 2.0], _unit([1.0, 0.0, 0.2]))
    assert np.isinf(hits.range_m[0]) and hits.object_id[0] == -1


def test_sphere_range_and_normal():
    hits = _scene(spheres=[[10.0, 0.0, 1.0, 1.0]]).cast([0.0, 0.0, 1.0], _unit([1.0, 0.0, 0.0]))
    assert hits.range_m[0] == pytest.approx(9.0)
    assert hits.object_id[0] == 1
    assert np.allclose(hits.normal[0], [-1.0, 0.0, 0.0])


def test_yawed_box_slab():
    """A cube yawed 45 degrees shows its vertical edge at centre - half * sqrt(2)."""
    scene = _scene(boxes=[[5.0, 0.0, 1.0, 1.0, 1.0, 1.0, np.pi / 4]])
    hits = scene.cast([0.0, 0.0, 1.0], _unit([1.0, 0.0, 0.0]))
    assert hits.range_m[0] == pytest.approx(5.0 - np.sqrt(2.0))
    assert hits.object_id[0] == 1
    # Off the edge, the ray meets a face whose normal is yawed by -135 or +135 degrees.
    off = scene.cast([0.0, 0.5, 1.0], _unit([1.0, 0.0, 0.0]))
    assert np.allclose(off.normal[0], [-np.sqrt(0.5), np.sqrt(0.5), 0.0])


def test_cylinder_side_and_cap():
    scene = _scene(cylinders=[[0.0, 5.0, 0.0, 0.5, 3.0]])
    side = scene.cast([0.0, 0.0, 1.0], _unit([0.0, 1.0, 0.0]))
    assert side.range_m[0] == pytest.approx(4.5)
    assert np.allclose(side.normal[0], [0.0, -1.0, 0.0])
    cap = scene.cast([0.1, 5.0, 10.0], _unit([0.0, 0.0, -1.0]))
    assert cap.range_m[0] == pytest.approx(7.0)
    assert np.allclose(cap.normal[0], [0.0, 0.0, 1.0])
    over = scene.cast([0.0, 0.0, 5.0], _unit([0.0, 1.0, 0.0]))
    assert np.isinf(over.range_m[0])


def test_nearest_object_wins():
    scene = _scene(spheres=[[10.0, 0.0, 1.0, 1.0], [5.0, 0.0, 1.0, 0.5]])
    hits = scene.cast([0.0, 0.0, 1.0], _unit([1.0, 0.0, 0.0]))
    assert hits.object_id[0] == 2 and hits.range_m[0] == pytest.approx(4.5)


def test_culled_cast_equals_brute_force():
    rng = np.random.default_rng(0)
    path = LoopTrajectory.random(rng).ground_samples()
    scene = make_scene(rng, path)
    origin = np.array([path[0, 0], path[0, 1], 1.6])
    dirs = rng.normal(size=(5000, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    hits = scene.cast(origin, dirs)
    brute = np.full(len(dirs), np.inf)
    with np.errstate(divide='ignore'):
        brute = np.where(dirs[:, 2] < 0, -origin[2] / dirs[:, 2], np.inf)
    for obj in range(1, scene.num_objects):
        brute = np.minimum(brute, scene._object_range(obj, origin, dirs))
    assert np.array_equal(np.isinf(hits.range_m), np.isinf(brute))
    finite = np.isfinite(brute)
    assert np.allclose(hits.range_m[finite], brute[finite], rtol=0, atol=1e-9)
    assert (hits.object_id > 0).sum() > 500, 'the rays should meet many objects'


def test_layout_keeps_the_path_free():
    rng = np.random.default_rng(5)
    path = LoopTrajectory.random(rng).ground_samples()
    scene = make_scene(rng, path, corridor_m=1.8)
    inner = scene.boxes[scene.boxes[:, 5] <= 1.3]  # not the walls (taller than any box)
    for centres, radius in ((inner[:, :2], np.hypot(inner[:, 3], inner[:, 4])),
                            (scene.cylinders[:, :2], scene.cylinders[:, 3]),
                            (scene.spheres[:, :2], scene.spheres[:, 3])):
        gap = np.sqrt(((centres[:, None] - path[None]) ** 2).sum(-1)).min(axis=1) - radius
        assert np.all(gap > 1.8)
    assert len(scene.cylinders) >= 5 and len(scene.spheres) >= 4 and len(inner) >= 8


def test_textures():
    points = np.array([[0.5, 0.5, 0.5], [1.5, 0.5, 0.5], [1.5, 1.5, 0.5]])
    assert texture_mix('checker', points, 1.0, 0).tolist() == [0.0, 1.0, 0.0]
    stripes = texture_mix('stripes', np.array([[0.2, 0, 0], [1.2, 0, 0]]), 1.0, 0)
    assert stripes.tolist() == [0.0, 1.0]
    cloud = np.random.default_rng(1).uniform(-5, 5, size=(500, 3))
    a, b = texture_mix('noise', cloud, 0.5, 3), texture_mix('noise', cloud, 0.5, 4)
    assert np.array_equal(a, texture_mix('noise', cloud, 0.5, 3))
    assert not np.array_equal(a, b)
    assert 0.0 <= a.min() and a.max() <= 1.0 and a.std() > 0.05
    assert np.all(texture_mix('plain', cloud, 1.0, 0) == 0.0)


def test_scene_rejects_wrong_material_count():
    with pytest.raises(ValueError, match=r'Scene needs 2 materials \(ground \+ objects\); got 1'):
        Scene([PLAIN], np.zeros((0, 7)), np.zeros((0, 5)), np.array([[0, 0, 1, 1.0]]))


def test_shadow_rays_are_blocked_only_under_objects():
    scene = _scene(spheres=[[0.0, 0.0, 3.0, 1.0]], boxes=[[10.0, 0.0, 2.5, 0.5, 0.5, 0.5, 0.3]])
    up = np.array([0.0, 0.0, 1.0])
    ground = np.array([[0.0, 0.0, 1e-4], [0.9, 0.0, 1e-4], [1.1, 0.0, 1e-4],
                       [10.0, 0.2, 1e-4], [10.0, 0.9, 1e-4]])
    assert scene.occluded(ground, up).tolist() == [True, True, False, True, False]


def test_shadow_culling_equals_brute_force():
    rng = np.random.default_rng(3)
    path = LoopTrajectory.random(rng).ground_samples()
    scene = make_scene(rng, path)
    points = np.column_stack([rng.uniform(-20, 20, 4000), rng.uniform(-15, 15, 4000),
                              np.full(4000, 1e-4)])
    sun = scene.sun_direction
    brute = np.zeros(len(points), dtype=bool)
    for obj in range(1, scene.num_objects):
        brute |= np.isfinite(scene._object_range(obj, points, np.broadcast_to(sun, points.shape)))
    assert np.array_equal(scene.occluded(points, sun), brute)
    assert 50 < brute.sum() < len(points) - 50

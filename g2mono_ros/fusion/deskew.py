"""Per-point LiDAR times: the common PointCloud2 time-field layouts, their detection, and the
conversion of a field's values to absolute integer-nanosecond stamps (ROS-free, vectorised).

Spinning LiDAR drivers publish each point's firing time in a field whose name, type, unit and
reference differ by vendor; ``motion.compensate_points`` then deskews with these stamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

import numpy as np

from g2mono_ros.errors import ConfigError, MessageError

__all__ = [
    'TIME_FIELDS',
    'TIME_LAYOUTS',
    'TIME_UNITS',
    'TimeLayout',
    'detect_time_field',
    'point_stamps_ns',
]

TimeUnit = Literal['s', 'ms', 'us', 'ns']
#: Unit -> nanoseconds per unit; ``auto`` picks the one whose times fall beside the header stamp.
TIME_UNITS: dict[str, float] = {'s': 1e9, 'ms': 1e6, 'us': 1e3, 'ns': 1.0}


class TimeLayout(NamedTuple):
    """How one driver writes per-point time.

    Attributes:
        name: the driver family.
        field: PointCloud2 field name.
        dtype: the field's numpy type as the driver writes it.
        unit: ``s`` | ``ms`` | ``us`` | ``ns``.
        reference: ``relative`` (offset from the header stamp) | ``absolute`` (since the epoch,
            or the sim-time origin).
    """

    name: str
    field: str
    dtype: str
    unit: TimeUnit
    reference: Literal['relative', 'absolute']


#: The layouts of common drivers, in detection order (a cloud with several time fields uses the
#: first found). Livox's PointCloud2 ``timestamp`` and Hesai's share a name but not a unit:
#: ``point_stamps_ns`` tells them apart by which reading lands beside the header stamp.
TIME_LAYOUTS: tuple[TimeLayout, ...] = (
    TimeLayout('autoware', 'time_stamp', 'u4', 'ns', 'relative'),
    TimeLayout('ouster', 't', 'u4', 'ns', 'relative'),
    TimeLayout('velodyne', 'time', 'f4', 's', 'relative'),
    TimeLayout('hesai', 'timestamp', 'f8', 's', 'absolute'),
    TimeLayout('livox', 'timestamp', 'f8', 'ns', 'absolute'),
    TimeLayout('livox_offset', 'offset_time', 'u4', 'ns', 'relative'),
)
TIME_FIELDS: tuple[str, ...] = tuple(dict.fromkeys(layout.field for layout in TIME_LAYOUTS))

#: Per-point times must land within this of the header stamp (a sweep lasts ~0.1 s; drivers
#: stamp its start, middle or end).
_PLAUSIBLE_NS = 1_000_000_000


def detect_time_field(fields: Mapping[str, object], requested: str = 'auto') -> str | None:
    """Which field carries per-point time.

    Args:
        fields: the cloud's field names (e.g. ``codecs.pointcloud2_fields(msg)``).
        requested: ``auto`` (the first of ``TIME_FIELDS`` present), ``none`` (no per-point
            time: scan-level compensation), or a field name that must be present.

    Returns:
        The field name, or None (``none``, or ``auto`` and no known field).

    Raises:
        MessageError: a named field is missing from the cloud.
    """
    if requested == 'none':
        return None
    if requested == 'auto':
        return next((name for name in TIME_FIELDS if name in fields), None)
    if requested not in fields:
        msg = (f"PointCloud2 has no point time field {requested!r} (parameter "
               f"'point_time_field'); it has {', '.join(fields) or 'no fields'}")
        raise MessageError(msg)
    return requested


def _candidates(field: str, unit: str) -> list[tuple[float, bool]]:
    """(ns per unit, relative?) readings to try, the field's known layouts first."""
    known = [(TIME_UNITS[layout.unit], layout.reference == 'relative')
             for layout in TIME_LAYOUTS if layout.field == field]
    units = list(TIME_UNITS) if unit == 'auto' else [unit]
    generic = [(TIME_UNITS[u], rel) for rel in (True, False) for u in units]
    if unit != 'auto':
        known = [c for c in known if c[0] == TIME_UNITS[unit]]
    return list(dict.fromkeys(known + generic))


def point_stamps_ns(values: np.ndarray, header_stamp_ns: int, *, field: str = '',
                    unit: str = 'auto') -> np.ndarray:
    """Absolute per-point stamps from a time field's values.

    With ``unit='auto'`` the field's known layouts are tried first (``TIME_LAYOUTS``), then
    every unit relative to the header stamp, then absolute; the first reading that puts every
    point within 1 s of the header stamp wins. An explicit unit still chooses relative or
    absolute that way.

    Args:
        values: (N,) numeric field values (any dtype; float64 keeps ns precision for absolute
            seconds).
        header_stamp_ns: the cloud's header stamp, integer nanoseconds.
        field: the field's name (selects the known layouts first); '' = none known.
        unit: ``auto`` | ``s`` | ``ms`` | ``us`` | ``ns``.

    Returns:
        (N,) int64 absolute stamps, nanoseconds.

    Raises:
        ConfigError: ``unit`` not one of the allowed values.
        MessageError: no reading puts the times within 1 s of the header stamp, or a value
            is not finite.
    """
    if unit != 'auto' and unit not in TIME_UNITS:
        msg = (f"parameter 'point_time_unit' must be one of auto, {', '.join(TIME_UNITS)};"
               f' got {unit!r}')
        raise ConfigError(msg)
    vals = np.asarray(values).reshape(-1)
    header = int(header_stamp_ns)
    if vals.size == 0:
        return np.zeros(0, dtype=np.int64)
    if np.issubdtype(vals.dtype, np.integer):
        lo, hi = int(vals.min()), int(vals.max())
    else:
        if not np.isfinite(vals).all():
            msg = f'point time field {field!r} has non-finite values'
            raise MessageError(msg)
        lo, hi = float(vals.min()), float(vals.max())
    for scale, relative in _candidates(field, unit):
        base = header if relative else 0
        if (abs(base + lo * scale - header) <= _PLAUSIBLE_NS
                and abs(base + hi * scale - header) <= _PLAUSIBLE_NS):
            if np.issubdtype(vals.dtype, np.integer) and scale == 1.0:
                return vals.astype(np.int64) + base  # exact, no float round trip
            if relative:
                return base + np.round(vals.astype(np.float64) * scale).astype(np.int64)
            # Absolute: subtract the header first so float64 keeps sub-microsecond precision.
            offset = vals.astype(np.float64) * scale - header
            return header + np.round(offset).astype(np.int64)
    msg = (f'point time field {field!r} (range {lo:g} .. {hi:g}, unit {unit}) gives no times '
           f'within 1 s of the header stamp {header * 1e-9:.3f} s in any unit; set '
           "'point_time_unit', or 'point_time_field: none' for scan-level compensation")
    raise MessageError(msg)

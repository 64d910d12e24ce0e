"""The evaluation report: terminal table, summary.json, per-frame CSV, Markdown and PNG plots.

Everything is written into a temporary folder beside the target and renamed into place at the
end, so a crash never leaves a half-written report that looks like a result.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from g2mono_ros.errors import ConfigError
from g2mono_ros.evaluation.evaluator import EvaluationOptions
from g2mono_ros.evaluation.metrics import METRIC_NAMES
from g2mono_ros.evaluation.scoring import METHODS, EvaluationResult

__all__ = ['build_summary', 'format_table', 'write_report']

_METHOD_LABELS = {
    'model': 'model (G2 network)',
    'nearest': 'nearest-point fill',
    'morphological': 'morphological (IP-Basic)',
}
# Header, unit and print format of each metric column.
_COLUMNS = {
    'rmse': ('RMSE', 'm', '{:.3f}'),
    'mae': ('MAE', 'm', '{:.3f}'),
    'irmse': ('iRMSE', '1/km', '{:.2f}'),
    'imae': ('iMAE', '1/km', '{:.2f}'),
    'absrel': ('AbsRel', '', '{:.4f}'),
    'delta1': ('d<1.25', '', '{:.4f}'),
    'delta2': ('d<1.25^2', '', '{:.4f}'),
    'delta3': ('d<1.25^3', '', '{:.4f}'),
}


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def build_summary(result: EvaluationResult, options: EvaluationOptions) -> dict[str, Any]:
    """The ``summary.json`` document (NaN as None).

    ``methods[name]`` holds the metrics by name (frame means, KITTI convention), ``pooled``
    (every pixel weighted equally) and ``by_range``; the model also has ``latency_ms`` and
    ``drops``.
    """
    methods: dict[str, Any] = {}
    for method in METHODS:
        methods[method] = result.book.method_summary(method)
    methods['model']['latency_ms'] = {**result.latency_summary_ms(), 'kind': result.latency_kind}
    methods['model']['drops'] = dict(result.drops)
    summary = {
        'bag': result.bag,
        'mode': result.mode,
        'weights': result.weights,
        'ground_truth': result.ground_truth_description(options),
        'ground_truth_source': result.ground_truth,
        'metric_units': {name: _COLUMNS[name][1] or 'ratio' for name in METRIC_NAMES},
        'aggregation': 'metrics: mean over frames of per-frame metrics (KITTI convention); '
                       'pooled and by_range: every scored pixel weighted equally',
        'range_bins_m': [None if math.isinf(e) else e for e in options.range_bins_m],
        'counts': dict(result.counts),
        'drops': dict(result.drops),
        'latency_ms': {**result.latency_summary_ms(), 'kind': result.latency_kind},
        'node_diagnostics': dict(result.node_diagnostics),
        'pairing': dict(result.pairing),
        'wall_s': result.wall_s,
        'notes': list(result.notes),
        'methods': methods,
    }
    return _clean(summary)


def _fmt(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return _COLUMNS[name][2].format(value)


def format_table(summary: dict[str, Any]) -> str:
    """A fixed-width table of the methods' metrics, then latency and drops lines."""
    headers = ['method'] + [_COLUMNS[n][0] + (f' [{_COLUMNS[n][1]}]' if _COLUMNS[n][1] else '')
                            for n in METRIC_NAMES] + ['frames']
    rows = []
    for method in METHODS:
        entry = summary['methods'][method]
        rows.append([_METHOD_LABELS[method]] + [_fmt(n, entry.get(n)) for n in METRIC_NAMES]
                    + [str(entry.get('frames', 0))])
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ['  '.join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append('  '.join('-' * w for w in widths))
    for row in rows:
        lines.append('  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    latency = summary['latency_ms']
    if latency.get('count'):
        lines.append(f"latency p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms over "
                     f"{latency['count']} frames ({latency['kind']})")
    drops = summary['drops']
    # Scans the synchroniser never paired are not lost frames: list them apart.
    frame_drops = {k: v for k, v in drops.items() if v and not k.startswith('sync_scan_')}
    scan_drops = {k[len('sync_scan_'):]: v for k, v in drops.items()
                  if v and k.startswith('sync_scan_')}
    dropped = ', '.join(f'{k} {v}' for k, v in sorted(frame_drops.items())) or 'none'
    counts = summary['counts']
    line = (f"frames scored {counts.get('scored_frames', 0)} of {counts.get('images', 0)}"
            f' images; drops: {dropped}')
    if scan_drops:
        line += '; unused scans: ' + ', '.join(f'{k} {v}' for k, v in sorted(scan_drops.items()))
    lines.append(line)
    if summary.get('pairing'):
        lines.append(pairing_line(summary['pairing']))
    return '\n'.join(lines)


def pairing_line(pairing: dict[str, Any]) -> str:
    """'pairing: 88 of 90 images got depth (97.8 %); pair gap p50 .. ms, p95 .. ms (source)'."""
    def ms(key: str) -> str:
        value = pairing.get(key)
        return '-' if value is None or not math.isfinite(value) else f'{value:.1f} ms'

    fraction = pairing.get('depth_fraction')
    share = '-' if fraction is None or not math.isfinite(fraction) else f'{100 * fraction:.1f} %'
    return (f"pairing: {pairing.get('images_with_depth', 0)} of {pairing.get('images', 0)} images"
            f" got depth ({share}); pair gap |scan - image| p50 {ms('gap_ms_p50')}, p95 "
            f"{ms('gap_ms_p95')}, max {ms('gap_ms_max')} ({pairing.get('gap_source', '')})")


def _write_csv(path: Path, result: EvaluationResult) -> None:
    metric_columns = [f'{m}_{n}' for m in METHODS for n in (*METRIC_NAMES, 'count')]
    with path.open('w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(['frame', 'image_stamp_ns', 'scan_stamp_ns', 'cloud_points',
                         'input_pixels', 'target_pixels', 'latency_ms', *metric_columns])
        for rec in result.book.frames:
            values = [rec.metrics[m][n] for m in METHODS for n in (*METRIC_NAMES, 'count')]
            writer.writerow([rec.index, rec.image_stamp_ns, rec.scan_stamp_ns, rec.cloud_points,
                             rec.input_pixels, rec.target_pixels, _csv_number(rec.latency_ms),
                             *(_csv_number(v) for v in values)])


def _csv_number(value: float) -> str:
    return '' if value is None or not math.isfinite(value) else f'{value:.6g}'


def _markdown(summary: dict[str, Any], plots: list[str], node_log: bool) -> str:
    lines = [
        '# g2mono_ros evaluation',
        '',
        f"- bag: `{summary['bag']}`",
        f"- mode: {summary['mode']}",
        f"- weights: `{summary['weights']}`",
        f"- ground truth: {summary['ground_truth']}",
        f"- aggregation: {summary['aggregation']}",
        '',
        '## Metrics',
        '',
        '| method | ' + ' | '.join(
            _COLUMNS[n][0] + (f' ({_COLUMNS[n][1]})' if _COLUMNS[n][1] else '')
            for n in METRIC_NAMES) + ' | frames | pixels |',
        '|---|' + '---:|' * (len(METRIC_NAMES) + 2),
    ]
    for method in METHODS:
        entry = summary['methods'][method]
        lines.append(f'| {_METHOD_LABELS[method]} | '
                     + ' | '.join(_fmt(n, entry.get(n)) for n in METRIC_NAMES)
                     + f" | {entry.get('frames', 0)} | {entry.get('pixels', 0)} |")
    lines += ['', '## Per range bin (RMSE m / MAE m / AbsRel, pooled)', '']
    labels = list(summary['methods']['model']['by_range'])
    lines.append('| method | ' + ' | '.join(labels) + ' |')
    lines.append('|---|' + '---:|' * len(labels))
    for method in METHODS:
        cells = []
        for label in labels:
            entry = summary['methods'][method]['by_range'][label]
            if not entry.get('count'):
                cells.append('-')
            else:
                cells.append(f"{entry['rmse']:.2f} / {entry['mae']:.2f} / {entry['absrel']:.3f}"
                             f" (n={int(entry['count'])})")
        lines.append(f'| {_METHOD_LABELS[method]} | ' + ' | '.join(cells) + ' |')
    latency = summary['latency_ms']
    lines += ['', '## Latency and drops', '']
    if latency.get('count'):
        lines.append(f"- latency p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms, "
                     f"mean {latency['mean']:.1f} ms over {latency['count']} frames: "
                     f"{latency['kind']}")
    else:
        lines.append('- latency: no frame scored')
    lines.append(f"- counts: {', '.join(f'{k} {v}' for k, v in summary['counts'].items())}")
    drops = ', '.join(f'{k} {v}' for k, v in sorted(summary['drops'].items())) or 'none'
    lines.append(f'- drops: {drops}')
    if summary.get('pairing'):
        lines.append(f"- {pairing_line(summary['pairing'])}")
    if summary['node_diagnostics']:
        lines.append('- node diagnostics (last): ' + ', '.join(
            f'{k}={v}' for k, v in summary['node_diagnostics'].items()))
    for note in summary['notes']:
        lines.append(f'- note: {note}')
    if plots:
        lines += ['', '## Plots', '']
        lines += [f'![{name}]({name})' for name in plots]
    lines += ['', 'Files: `summary.json` (all figures), `frames.csv` (one row per scored frame)'
              + (', `depth_node.log` (the live node\'s output).' if node_log else '.'), '']
    return '\n'.join(lines)


def _plot_error_vs_range(path: Path, summary: dict[str, Any]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    labels = list(summary['methods']['model']['by_range'])
    x = np.arange(len(labels))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method in METHODS:
        bins = summary['methods'][method]['by_range']
        for ax, key in zip(axes, ('mae', 'rmse')):
            values = [bins[lab][key] if bins[lab].get(key) is not None else np.nan
                      for lab in labels]
            ax.plot(x, values, marker='o', label=_METHOD_LABELS[method])
    for ax, title in zip(axes, ('MAE (m) by ground-truth range', 'RMSE (m) by ground-truth range')):
        values = np.concatenate([line.get_ydata() for line in ax.get_lines()]).astype(float)
        values = values[np.isfinite(values)]
        if values.size and values.min() > 0 and values.max() / values.min() > 20:
            ax.set_yscale('log')  # far bins' errors would flatten the near ones
        ax.set_xticks(x, labels)
        ax.set_xlabel('ground-truth depth')
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _dilate_for_display(depth: np.ndarray) -> np.ndarray:
    """Grow sparse pixels to 3x3 so single LiDAR points are visible in a small figure."""
    import cv2

    return cv2.dilate(depth.astype(np.float32), np.ones((3, 3), np.uint8))


def _plot_panels(path: Path, sample: Any, max_depth: float, baseline_max_depth: float) -> None:
    """A 2x3 figure: RGB, LiDAR input, ground truth / prediction, its error, the IP-Basic
    baseline (same colour scale for every depth panel)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    from g2mono_ros.evaluation.baselines import morphological_fill
    from g2mono_ros.visualize import colorize_depth

    valid = sample.target_m > 0
    error = np.where(valid, np.abs(sample.pred_m - sample.target_m), 0.0)
    error_limit = float(np.percentile(error[valid], 95)) if valid.any() else 1.0
    target = _dilate_for_display(sample.target_m) if valid.mean() < 0.2 else sample.target_m
    baseline = morphological_fill(sample.sparse_m, baseline_max_depth)
    panels = [
        ('RGB', sample.rgb, None),
        ('LiDAR input (sparse)', colorize_depth(_dilate_for_display(sample.sparse_m), max_depth),
         None),
        ('ground truth', colorize_depth(target, max_depth), None),
        ('prediction (model)', colorize_depth(sample.pred_m, max_depth), None),
        ('|error| of the model (m)', np.ma.masked_where(~valid, error), max(error_limit, 1e-3)),
        ('morphological baseline', colorize_depth(baseline, max_depth), None),
    ]
    height, width = sample.rgb.shape[:2]
    fig, axes = plt.subplots(2, 3, figsize=(13, 0.8 + 2 * 4.3 * height / width))
    for ax, (title, image, vmax) in zip(axes.ravel(), panels):
        if vmax is None:
            ax.imshow(image, interpolation='nearest')
        else:
            shown = ax.imshow(image, cmap='magma', vmin=0.0, vmax=vmax, interpolation='nearest')
            fig.colorbar(shown, ax=ax, fraction=0.035)
        ax.set_title(title, fontsize=9)
        ax.axis('off')
    fig.suptitle(f'frame {sample.index} (depth colours 0-{max_depth:.0f} m)', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _colour_scale(sample: Any) -> float:
    """Metres at the top of the depth colour map: a little above the far ground truth."""
    from g2mono_ros.visualize import depth_colour_scale

    return depth_colour_scale(sample.target_m)


def _install(tmp: Path, target: Path) -> None:
    """Move the finished report into place, replacing an earlier report (never other files)."""
    if target.exists():
        if not (target / 'summary.json').is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            msg = (f'report folder {str(target)!r} exists and is not an earlier g2mono report;'
                   ' choose another --report folder')
            raise ConfigError(msg)
        old = target.with_name(f'.{target.name}.old-{os.getpid()}')
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)


def write_report(result: EvaluationResult, options: EvaluationOptions, report_dir: str | Path,
                 *, max_depth: float | None = None) -> tuple[Path, dict[str, Any]]:
    """Write the report folder; return its path and the summary.

    Args:
        result: the evaluation.
        options: the options it ran with.
        report_dir: target folder; replaced if it holds an earlier report.
        max_depth: colour scale of the depth panels (default: a little above the sample's
            far ground truth).

    Raises:
        ConfigError: ``report_dir`` exists and is not a g2mono report.
    """
    target = Path(report_dir).expanduser().resolve()
    if target.exists() and not (target / 'summary.json').is_file():
        msg = (f'report folder {str(target)!r} exists and is not an earlier g2mono report;'
               ' choose another --report folder')
        raise ConfigError(msg)
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkdir (not mkdtemp, which makes it 0700) so the report gets the usual permissions.
    tmp = target.with_name(f'.{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}')
    tmp.mkdir()
    try:
        summary = build_summary(result, options)
        (tmp / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
        _write_csv(tmp / 'frames.csv', result)
        plots: list[str] = []
        if result.book.frames:
            _plot_error_vs_range(tmp / 'error_vs_range.png', summary)
            plots.append('error_vs_range.png')
            for sample in result.book.samples:
                name = f'panels_frame{sample.index:04d}.png'
                _plot_panels(tmp / name, sample, max_depth or _colour_scale(sample),
                             options.projection.max_range)
                plots.append(name)
        if result.node_log:
            (tmp / 'depth_node.log').write_text(result.node_log)
        (tmp / 'report.md').write_text(_markdown(summary, plots, bool(result.node_log)))
        _install(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target, summary

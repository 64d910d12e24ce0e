"""``g2mono demo``: generate, replay through the live node, evaluate, report; weights named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from g2mono_ros.cli import main as cli_main
from g2mono_ros.evaluation import demo

pytestmark = pytest.mark.timeout(240)

SMALL = ['--frames', '6', '--width', '128', '--height', '64', '--beams', '16', '--no-progress']


@pytest.mark.dds
def test_demo_live_end_to_end(tiny_weights: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'demo'
    status = cli_main(['demo', '--weights', str(tiny_weights), '--out', str(out), *SMALL])
    text = capsys.readouterr().out
    assert status == 0
    assert f'weights used: {tiny_weights} (given with --weights)' in text
    assert 'through the depth_node process' in text and 'network input 64 x aspect-kept' in text
    assert f"report: {out / 'report'}" in text
    summary = json.loads((out / 'report' / 'summary.json').read_text())
    assert summary['mode'] == 'live' and summary['counts']['images'] == 6
    assert summary['counts']['scored_frames'] >= 1
    assert summary['ground_truth'] == 'depth images on /ground_truth/depth'
    # every image of the 30 Hz / 10 Hz sequence gets depth from the node (it keeps up here)
    pairing = summary['pairing']
    assert pairing['images'] == 6 and pairing['images_with_depth'] >= 1
    assert pairing['gap_source'].startswith("the node's processed pairs")
    assert f"pairing: {pairing['images_with_depth']} of 6 images got depth" in text
    assert (out / 'synthetic_bag' / 'metadata.yaml').is_file()
    log = (out / 'report' / 'depth_node.log').read_text()
    # The ready line names the backend that runs and its precision.
    assert re.search(r'depth node ready: .* on cpu \((onnxruntime|torch[a-z_+]*), fp32\)', log)


def test_demo_uses_shipped_weights_and_says_so(tiny_weights: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo, 'shipped_weights', lambda: tiny_weights)
    out = tmp_path / 'demo'
    args = ['demo', '--out', str(out), '--mode', 'offline', *SMALL]
    assert cli_main(args) == 0
    assert cli_main(args) == 0  # a second run replaces its own bag and report
    text = capsys.readouterr().out
    assert f'weights used: {tiny_weights} (the shipped demo weights)' in text
    assert 'running the node pipeline offline' in text


@pytest.mark.parametrize('shipped', [None, 'missing.pt'])
def test_demo_without_weights_names_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str],
                                               shipped: str | None) -> None:
    found = None if shipped is None else tmp_path / shipped
    monkeypatch.setattr(demo, 'shipped_weights', lambda: found)
    assert cli_main(['demo', '--out', str(tmp_path / 'd'), *SMALL]) == 2
    err = capsys.readouterr().err
    assert 'pass a checkpoint with --weights PATH' in err
    assert (found is None) == ('expected' not in err)


def test_demo_refuses_to_overwrite_a_foreign_folder(tiny_weights: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / 'd' / 'synthetic_bag'
    foreign.mkdir(parents=True)
    (foreign / 'data.txt').write_text('not ours')
    args = ['demo', '--weights', str(tiny_weights), '--out', str(tmp_path / 'd'), *SMALL]
    assert cli_main(args) == 2
    assert 'is not a g2mono synthetic bag' in capsys.readouterr().err
    assert (foreign / 'data.txt').read_text() == 'not ours'

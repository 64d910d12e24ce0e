"""DistributedDataParallel smoke run: two CPU processes over gloo end with identical weights."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train_trainer import tiny_config  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, config_dict: dict, out_dir: str) -> None:
    import os

    os.environ.update({'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port),
                       'WORLD_SIZE': str(world_size), 'RANK': str(rank), 'LOCAL_RANK': str(rank)})
    torch.set_num_threads(1)
    import torch.distributed as dist

    from g2mono_ros.training.config import config_from_mapping
    from g2mono_ros.training.trainer import train

    result = train(config_from_mapping(config_dict))
    torch.save({'step': result.step, 'state': result.model.state_dict(),
                'val': result.val_metrics}, Path(out_dir) / f'rank{rank}.pt')
    dist.destroy_process_group()


def test_two_process_gloo_run_keeps_ranks_identical(tmp_path):
    # 8 frames, batch 2 per rank, 2 ranks -> 2 steps per epoch, 2 epochs.
    config = tiny_config(tmp_path)
    config['train_data']['frames_per_sequence'] = 4
    mp.spawn(_worker, args=(2, _free_port(), config, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / 'rank0.pt', weights_only=True)
    r1 = torch.load(tmp_path / 'rank1.pt', weights_only=True)
    assert r0['step'] == r1['step'] == 4
    for key, value in r0['state'].items():
        assert torch.equal(value, r1['state'][key]), key
    # Validation was sharded over both ranks and merged: both see the same numbers.
    assert r0['val']['rmse'] == r1['val']['rmse'] and r0['val']['count'] > 0
    # Training changed the weights (a run that did nothing would also be "identical").
    torch.manual_seed(5)
    from g2mono_ros.models import create_model

    fresh = create_model('seed_small', widths=config['model']['kwargs']['widths']).state_dict()
    assert not all(torch.equal(fresh[k], r0['state'][k]) for k in fresh if 'alpha' not in k)
    assert (tmp_path / 'run' / 'model.pt').is_file()

"""The training loop: AdamW + per-iteration cosine, AMP, clipping, exact resume, DDP, validation.

``train(config)`` runs one process's share; under ``torchrun`` (``WORLD_SIZE`` > 1) it joins a
process group (gloo on CPU, nccl on CUDA) and wraps the network in DistributedDataParallel.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from g2mono_ros.errors import CheckpointError, ConfigError, G2MonoError
from g2mono_ros.training.config import TrainConfig, config_to_dict
from g2mono_ros.training.datasets import (
    EpochSampler,
    TrainingDataset,
    build_source,
    collate_samples,
    describe_source,
    shard_indices,
)
from g2mono_ros.training.losses import g2_loss

__all__ = [
    'STATE_FORMAT',
    'CosineWithWarmup',
    'TrainResult',
    'load_training_state',
    'init_output_layer',
    'train',
    'train_step',
]

#: marker of a training-state file (``state_<step>.pt``).
STATE_FORMAT = 'g2mono_ros.train_state/1'


class CosineWithWarmup:
    """LR factor per iteration: linear warm-up, then cosine from 1 to ``min_ratio``.

    A plain object (not a lambda) so ``LambdaLR.state_dict()`` records its numbers.
    """

    def __init__(self, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0) -> None:
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = int(warmup_steps)
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainResult:
    """What a finished run leaves: the (unwrapped) network and where files went."""

    model: nn.Module
    step: int
    weights_path: Path | None
    val_metrics: dict[str, float] = field(default_factory=dict)
    last_loss: float = math.nan


# --------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class _Dist:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_kind: str) -> _Dist:
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return _Dist(0, 1, 0)
    if not dist.is_initialized():
        dist.init_process_group(backend='nccl' if device_kind == 'cuda' else 'gloo')
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get('LOCAL_RANK', '0')))


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == 'cuda' or (name == 'auto' and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            msg = "parameter 'run.device' is 'cuda' but CUDA is not available"
            raise ConfigError(msg)
        torch.cuda.set_device(local_rank)
        return torch.device('cuda', local_rank)
    return torch.device('cpu')


# --------------------------------------------------------------------------- RNG state


def _rng_state() -> dict[str, Any]:
    """Every global RNG as tensors / plain numbers (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        'torch': torch.get_rng_state(),
        'numpy_keys': torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        'numpy_pos': int(pos), 'numpy_has_gauss': int(has_gauss), 'numpy_cached': float(cached),
        'python': torch.tensor(py_state, dtype=torch.int64), 'python_version': int(py_version),
        'python_gauss': None if py_gauss is None else float(py_gauss),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state['torch'])
    np.random.set_state(('MT19937', state['numpy_keys'].numpy().astype(np.uint32),
                         int(state['numpy_pos']), int(state['numpy_has_gauss']),
                         float(state['numpy_cached'])))
    random.setstate((int(state['python_version']), tuple(int(v) for v in state['python'].tolist()),
                     state['python_gauss']))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


# --------------------------------------------------------------------------- state files


def load_training_state(path: str | Path, map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    """Read a ``state_<step>.pt`` file safely (``weights_only=True``).

    Raises:
        CheckpointError: missing, unreadable or not a training-state file.
    """
    path = Path(path)
    if not path.is_file():
        msg = f'training state {str(path)!r} does not exist'
        raise CheckpointError(msg)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for bad/unsafe pickles
        msg = f'cannot load training state {str(path)!r}: {exc}'
        raise CheckpointError(msg) from exc
    if not isinstance(state, Mapping) or state.get('format') != STATE_FORMAT:
        msg = (f'{str(path)!r} is not a training-state file (expected format {STATE_FORMAT!r}; '
               'pass a state_<step>.pt from the run directory, not final weights)')
        raise CheckpointError(msg)
    return dict(state)


def _prune_states(directory: Path, keep: int) -> None:
    states = sorted(directory.glob('state_*.pt'))
    for old in states[:-keep]:
        old.unlink(missing_ok=True)


# --------------------------------------------------------------------------- building


def _build_model(config: TrainConfig) -> tuple[nn.Module, dict[str, Any]]:
    from g2mono_ros.models.checkpoint import load_checkpoint, load_state_dict_strict
    from g2mono_ros.models import create_model, default_model_kwargs

    kwargs = default_model_kwargs(config.model.variant)
    kwargs.update(config.model.kwargs)
    model = create_model(config.model.variant, **kwargs)
    multiple = getattr(model, 'input_multiple', 64)
    for name in ('input_height', 'input_width'):
        if getattr(config, name) % multiple:
            msg = f'parameter {name!r} must be a multiple of {multiple} for this network; got {getattr(config, name)}'
            raise ConfigError(msg)
    if config.model.init_weights:
        loaded = load_checkpoint(config.model.init_weights, variant=config.model.variant)
        load_state_dict_strict(model, loaded.model.state_dict(),
                               source=f'init_weights {config.model.init_weights!r}')
    elif config.model.output_init:
        init_output_layer(model, config.model.output_bias)
    return model, kwargs


def init_output_layer(model: nn.Module, bias: float, weight_scale: float = 0.1) -> nn.Conv2d:
    """Start the output layer (the last Conv2d to one channel) small and positive.

    Returns:
        the layer changed.

    Raises:
        ConfigError: the network has no single-channel output convolution.
    """
    heads = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.out_channels == 1]
    if not heads:
        msg = 'model.output_init: the network has no single-channel output convolution'
        raise ConfigError(msg)
    head = heads[-1]
    with torch.no_grad():
        head.weight.mul_(weight_scale)
        if head.bias is not None:
            head.bias.fill_(bias)
    return head


def _grad_scaler() -> Any:
    # torch.amp.GradScaler appeared in torch 2.3; older releases (Humble-era installs) have the
    # CUDA-only class.
    if hasattr(torch.amp, 'GradScaler'):
        return torch.amp.GradScaler('cuda')
    return torch.cuda.amp.GradScaler()


@contextlib.contextmanager
def _autocast(device: torch.device, amp: str) -> Iterator[None]:
    if device.type == 'cuda' and amp != 'none':
        dtype = torch.bfloat16 if amp == 'bf16' else torch.float16
        with torch.autocast('cuda', dtype=dtype):
            yield
    else:
        yield


def _to_device(batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _forward(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    raw = batch['input']
    return model(batch['rgb'], raw, (raw > 0).to(raw.dtype))


def train_step(net: nn.Module, batch: Mapping[str, Tensor], optimizer: torch.optim.Optimizer,
               scaler: Any = None, *, amp: str = 'none',
               grad_clip: float = 0.0, grad_weight: float = 0.5,
               dense_weight: float = 0.0,
               loss_scale: str = 'global') -> tuple[list[float], float | None]:
    """One optimiser step on ``batch`` (``rgb``, ``input``, ``target`` on the net's device).

    ``loss_scale='per_image'`` divides prediction, target and input by the median of each
    image's input points before the loss (``OptimConfig.loss_scale``).

    Returns:
        ([total, abs, rel, grad, dense] loss values before the step, gradient norm or None).
    """
    device = batch['rgb'].device
    with _autocast(device, amp):
        pred = _forward(net, batch)
    target, raw = batch['target'], batch['input']
    pred = pred.float()
    if loss_scale == 'per_image':
        from g2mono_ros.models.prefill import sparse_median

        scale = sparse_median(raw, (raw > 0).to(raw.dtype)).detach()
        pred, target, raw = pred / scale, target / scale, raw / scale
    terms = g2_loss(pred, target, raw, grad_weight, dense_weight)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(terms.total).backward()
        scaler.unscale_(optimizer)
    else:
        terms.total.backward()
    params = [p for group in optimizer.param_groups for p in group['params']]
    grad_norm = float(nn.utils.clip_grad_norm_(params, grad_clip)) if grad_clip > 0 else None
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return [float(t.detach()) for t in terms], grad_norm


# --------------------------------------------------------------------------- validation


def _validate(model: nn.Module, dataset: TrainingDataset, device: torch.device, dist_info: _Dist,
              amp: str, max_depth: float, *, baselines: bool) -> dict[str, float]:
    from g2mono_ros.evaluation.metrics import MetricSums

    sums = {'model': MetricSums()}
    if baselines:
        from g2mono_ros.evaluation.baselines import morphological_fill, nearest_fill

        sums['nearest_fill'] = MetricSums()
        sums['morphological_fill'] = MetricSums()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for index in shard_indices(len(dataset), dist_info.rank, dist_info.world_size):
            item = collate_samples([dataset[index]])
            batch = _to_device(item, device)
            with _autocast(device, amp):
                pred = _forward(model, batch)
            pred_m = pred.float()[0, 0].cpu().numpy() * max_depth
            gt_m = item['target'][0, 0].numpy() * max_depth
            sums['model'].add(pred_m, gt_m)
            if baselines:
                sparse_m = item['input'][0, 0].numpy() * max_depth
                sums['nearest_fill'].add(nearest_fill(sparse_m), gt_m)
                sums['morphological_fill'].add(morphological_fill(sparse_m, max_depth), gt_m)
    model.train(was_training)
    if dist_info.world_size > 1:
        gathered: list[Any] = [None] * dist_info.world_size
        dist.all_gather_object(gathered, sums)
        sums = gathered[0]
        for other in gathered[1:]:
            for key, value in other.items():
                sums[key].merge(value)
    metrics: dict[str, float] = {}
    for name, acc in sums.items():
        prefix = '' if name == 'model' else f'{name}/'
        metrics.update({f'{prefix}{k}': v for k, v in acc.finalize().items()})
    return metrics


# --------------------------------------------------------------------------- the loop


def _log(dist_info: _Dist, text: str) -> None:
    if dist_info.is_main:
        print(f'[g2mono train] {text}', flush=True)


def train(config: TrainConfig, *, resume: str | Path | None = None,
          writer_factory: Any = None) -> TrainResult:
    """Run (or resume) a training run described by ``config``.

    Datasets are opened (and checked) before the network is built. Training-state files go to
    ``run.output_dir/state_<step>.pt`` every ``run.checkpoint_every`` steps and at the end; the
    final weights go to ``run.output_dir/model.pt`` in the package's checkpoint format.

    Args:
        config: the validated run configuration.
        resume: a ``state_<step>.pt`` to continue from exactly.
        writer_factory: ``log_dir -> SummaryWriter``-like (default: TensorBoard's).

    Raises:
        DatasetError: a dataset is missing or malformed.
        ConfigError: an option does not fit the network or the machine.
        CheckpointError: ``resume`` / ``init_weights`` cannot be loaded.
    """
    device_kind = 'cuda' if config.run.device == 'cuda' or (
        config.run.device == 'auto' and torch.cuda.is_available()) else 'cpu'
    dist_info = _init_distributed(device_kind)
    device = _resolve_device(config.run.device, dist_info.local_rank)
    if config.run.num_threads:
        torch.set_num_threads(config.run.num_threads)
    out_hw = (config.input_height, config.input_width)

    train_source = build_source(config.train_data, out_hw, config.model.max_depth)
    val_source = (build_source(config.val_data, out_hw, config.model.max_depth)
                  if config.val_data is not None else None)
    train_set = TrainingDataset(train_source, config, train=True)
    val_set = (TrainingDataset(val_source, config, train=False,
                               simulate_val=config.run.val_input == 'simulated')
               if val_source is not None else None)
    steps_per_epoch = EpochSampler.batches_per_epoch(len(train_set), config.optim.batch_size,
                                                     dist_info.world_size)
    if steps_per_epoch < 1:
        msg = (f'the training set has {len(train_set)} frames, fewer than one batch of '
               f'{config.optim.batch_size} x {dist_info.world_size} processes')
        raise ConfigError(msg)
    _log(dist_info, f'train: {describe_source(train_source)}; '
         f'val: {describe_source(val_source) if val_source else "none"}')

    if device.type != 'cuda' and config.optim.amp != 'none':
        _log(dist_info, f'optim.amp={config.optim.amp} applies on CUDA only; training in fp32')
    torch.manual_seed(config.seed)
    model, model_kwargs = _build_model(config)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr,
                                  weight_decay=config.optim.weight_decay)
    total_steps = steps_per_epoch * config.optim.epochs
    schedule = CosineWithWarmup(total_steps, config.optim.warmup_steps,
                                config.optim.min_lr / config.optim.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    use_scaler = device.type == 'cuda' and config.optim.amp == 'fp16'
    scaler = _grad_scaler() if use_scaler else None
    step = 0
    if resume is not None:
        state = load_training_state(resume, map_location=device)
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        if scaler is not None and state.get('scaler'):
            scaler.load_state_dict(state['scaler'])
        step = int(state['step'])
        _set_rng_state(state['rng'])
        _log(dist_info, f'resumed from {resume} at step {step}')
    net: nn.Module = model
    if dist_info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None)

    out_dir = Path(config.run.output_dir)
    writer = None
    if dist_info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if writer_factory is None:
            from torch.utils.tensorboard import SummaryWriter
            writer_factory = SummaryWriter
        writer = writer_factory(str(out_dir / 'tensorboard'))

    def save_weights(name: str) -> Path:
        from g2mono_ros.models.checkpoint import save_checkpoint

        return save_checkpoint(
            out_dir / name, model, variant=config.model.variant, model_kwargs=model_kwargs,
            max_depth=config.model.max_depth, input_height=config.input_height,
            input_width=config.input_width,
            extra={'step': step, 'seed': config.seed, 'trainer': 'g2mono_ros.training',
                   'val_metrics': {k: v for k, v in val_metrics.items() if math.isfinite(v)},
                   'train_config': config_to_dict(config)})

    def save_state() -> None:
        if not dist_info.is_main:
            return
        # Loadable weights beside every state file: a run stopped at any time leaves a model.
        save_weights('latest.pt')
        payload = {
            'format': STATE_FORMAT, 'step': step, 'model': model.state_dict(),
            'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
            'scaler': scaler.state_dict() if scaler is not None else {},
            'rng': _rng_state(), 'config': config_to_dict(config),
        }
        path = out_dir / f'state_{step:08d}.pt'
        torch.save(payload, path.with_suffix('.tmp'))
        path.with_suffix('.tmp').replace(path)
        _prune_states(out_dir, config.run.keep_checkpoints)

    stop_step = min(total_steps, config.optim.max_steps) if config.optim.max_steps else total_steps
    val_metrics: dict[str, float] = {}
    last_loss = math.nan
    progress = None
    if dist_info.is_main and config.run.progress:
        from tqdm import tqdm
        progress = tqdm(total=stop_step, initial=step, desc='train', unit='step',
                        mininterval=2.0, dynamic_ncols=True)
    first_validation = True
    started = time.monotonic()
    while step < stop_step:
        epoch, start_batch = divmod(step, steps_per_epoch)
        sampler = EpochSampler(len(train_set), batch_size=config.optim.batch_size,
                               seed=config.seed, epoch=epoch, rank=dist_info.rank,
                               world_size=dist_info.world_size, start_batch=start_batch)
        loader = DataLoader(train_set, batch_size=config.optim.batch_size, sampler=sampler,
                            num_workers=config.run.num_workers, collate_fn=collate_samples,
                            drop_last=True, pin_memory=device.type == 'cuda')
        for batch in loader:
            batch = _to_device(batch, device)
            logged, grad_norm = train_step(net, batch, optimizer, scaler, amp=config.optim.amp,
                                           grad_clip=config.optim.grad_clip,
                                           grad_weight=config.optim.grad_weight,
                                           dense_weight=config.optim.dense_weight,
                                           loss_scale=config.optim.loss_scale)
            scheduler.step()
            step += 1
            last_loss = logged[0]
            if not math.isfinite(last_loss):
                msg = f'the loss became {last_loss} at step {step}; lower optim.lr or check the data'
                raise G2MonoError(msg)
            if writer is not None and step % config.run.log_every == 0:
                for name, value in zip(('total', 'abs', 'rel', 'grad', 'dense'), logged):
                    writer.add_scalar(f'loss/{name}', value, step)
                writer.add_scalar('lr', scheduler.get_last_lr()[0], step)
                if grad_norm is not None:
                    writer.add_scalar('grad_norm', grad_norm, step)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f'{last_loss:.4f}', epoch=epoch)
            epoch_done = step % steps_per_epoch == 0
            if (epoch_done and val_set is not None
                    and (step // steps_per_epoch) % config.run.validate_every_epochs == 0):
                val_metrics = _validate(model, val_set, device, dist_info, config.optim.amp,
                                        config.model.max_depth, baselines=first_validation)
                first_validation = False
                if writer is not None:
                    for key, value in val_metrics.items():
                        if math.isfinite(value) and 'count' not in key:
                            writer.add_scalar(f'val/{key}', value, step)
                line = ', '.join(
                    f'{name}rmse {val_metrics[name + "rmse"]:.3f} mae {val_metrics[name + "mae"]:.3f}'
                    for name in ('', 'nearest_fill/', 'morphological_fill/')
                    if name + 'rmse' in val_metrics)
                _log(dist_info, f'step {step} epoch {epoch + 1} ({time.monotonic() - started:.0f} s): '
                     f'val {line}')
            if config.run.checkpoint_every and step % config.run.checkpoint_every == 0:
                save_state()
            if step >= stop_step:
                break
    if progress is not None:
        progress.close()
    save_state()
    weights_path = None
    if dist_info.is_main:
        weights_path = save_weights('model.pt')
        _log(dist_info, f'done at step {step}; weights: {weights_path}')
    if writer is not None:
        writer.close()
    if dist_info.world_size > 1:
        dist.barrier()
    return TrainResult(model, step, weights_path, val_metrics, last_loss)

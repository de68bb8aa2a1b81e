"""Optimizers from `config.optim`."""

import optax

from gensynth import errors


def make_optimizer(cfg, total_steps):
  """Adam(W) with linear warmup, cosine decay and global-norm clipping."""
  if cfg.lr <= 0:
    raise errors.ConfigError(f'config.optim.lr={cfg.lr} must be positive.')
  warmup = min(cfg.get('warmup_steps', 0), max(total_steps - 1, 0))
  if cfg.get('schedule', 'cosine') == 'cosine':
    lr = optax.warmup_cosine_decay_schedule(
        0.0, cfg.lr, warmup, max(total_steps, warmup + 1),
        end_value=cfg.lr * cfg.get('final_lr_fraction', 0.0))
  else:
    lr = optax.join_schedules(
        [optax.linear_schedule(0.0, cfg.lr, max(warmup, 1)),
         optax.constant_schedule(cfg.lr)], [warmup])
  opt = optax.adamw(lr, b1=cfg.get('b1', 0.9), b2=cfg.get('b2', 0.999),
                    weight_decay=cfg.get('weight_decay', 0.0))
  if cfg.get('grad_clip', 0.0):
    opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)
  return opt

"""Classifier evaluation: top-1 accuracy and cross-entropy over a split."""

import functools

import jax
import numpy as np

from gensynth import data as data_lib
from gensynth.steps import classifier as classifier_steps
from gensynth.train import sharding


def evaluate_accuracy(mesh, params, apply_fn, source, *, batch_size,
                      value_range, eval_fn=None):
  """Top-1 accuracy and mean cross-entropy over a whole split."""
  if eval_fn is None:
    eval_fn = make_eval_fn(mesh, apply_fn)
  totals = None
  for batch in data_lib.eval_batches(source, batch_size=batch_size,
                                     value_range=value_range):
    p, n = jax.process_index(), jax.process_count()
    rows = batch_size // n
    local = jax.tree.map(lambda x: x[p * rows:(p + 1) * rows], batch)
    out = eval_fn(params, sharding.shard_batch(
        local, sharding.data_sharded(mesh)))
    totals = out if totals is None else jax.tree.map(np.add, totals, out)
  totals = jax.device_get(totals)
  n = float(totals['count'])
  return {'accuracy': float(totals['correct']) / n,
          'xent': float(totals['xent']) / n, 'num_examples': int(n)}


def make_eval_fn(mesh, apply_fn):
  return jax.jit(functools.partial(classifier_steps.eval_step,
                                   apply_fn=apply_fn),
                 in_shardings=(sharding.replicated(mesh),
                               sharding.data_sharded(mesh)),
                 out_shardings=sharding.replicated(mesh))

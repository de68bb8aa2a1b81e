"""train_and_evaluate for the feature classifier, and loading it back."""

import functools
import json
import os

import jax
import numpy as np

from gensynth import data as data_lib
from gensynth.configs import common as config_lib
from gensynth.models import classifier as classifier_model
from gensynth.steps import classifier as classifier_steps
from gensynth.train import checkpoint as ckpt_lib
from gensynth.train import loop
from gensynth.train import optim
from gensynth.train import sharding


def build(config, mesh, image_shape, num_classes):
  model = classifier_model.from_config(config.model, num_classes)
  tx = optim.make_optimizer(config.optim, config.num_steps)
  init = jax.jit(functools.partial(classifier_steps.create_state, model=model,
                                   tx=tx, image_shape=image_shape),
                 out_shardings=sharding.replicated(mesh))
  return model, init(jax.random.key(config.seed))


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


def _validate(config):
  for name in ('batch_size', 'num_steps', 'log_every', 'checkpoint_every'):
    if config[name] <= 0:
      raise ValueError(f'config.{name}={config[name]} must be positive.')


def train_and_evaluate(config, workdir):
  """Trains the classifier; returns (and writes) final test accuracy."""
  _validate(config)
  mesh = loop.prepare(config, workdir,
                      ('config.eval.batch_size', config.eval.batch_size))
  train_src, test_src, batches = loop.load_data(config, config.batch_size)
  _, state = build(config, mesh, train_src.image_shape, train_src.num_classes)
  ckpt, state, start, reporter = loop.resume(config, workdir, state, train_src)
  train_step = loop.jit_train_step(
      functools.partial(classifier_steps.train_step,
                        label_smoothing=config.loss.label_smoothing,
                        max_shift=config.data.augment_shift), mesh)
  eval_fn = make_eval_fn(mesh, state.apply_fn)

  def periodic_eval(step, state):
    reporter.scalars(step, evaluate_accuracy(
        mesh, state.params, state.apply_fn, test_src,
        batch_size=config.eval.batch_size,
        value_range=config.data.value_range, eval_fn=eval_fn), prefix='test')

  state, step, preempted, stats = loop.run(
      state, train_step=train_step, batches=batches, start=start,
      num_steps=config.num_steps,
      key=jax.random.fold_in(jax.random.key(config.seed), 1), mesh=mesh,
      ckpt=ckpt, reporter=reporter, log_every=config.log_every,
      checkpoint_every=config.checkpoint_every,
      hooks=[(config.get('eval_every'), periodic_eval)])
  if preempted:
    reporter.close()
    return {'preempted': True, 'step': step}
  final = evaluate_accuracy(mesh, state.params, state.apply_fn, test_src,
                            batch_size=config.eval.batch_size,
                            value_range=config.data.value_range,
                            eval_fn=eval_fn)
  final.update(stats)
  reporter.scalars(step, final, prefix='final')
  reporter.close()
  loop.write_json(os.path.join(workdir, 'final_metrics.json'), final)
  ckpt.close()
  return final


class FeatureExtractorError(FileNotFoundError):
  """The classifier workdir for generative metrics is missing or unusable."""


def load(workdir, *, step=None):
  """Rebuilds a trained classifier from its workdir.

  Returns:
    (config, model, params).
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise FeatureExtractorError(
        f'no classifier at {workdir!r} ({path} missing). Train one with '
        'python -m launch.train --config=gensynth/configs/classifier_mnist.py '
        f'--workdir={workdir} (or pass the workdir of one you trained).')
  with open(path) as f:
    config = json.load(f)
  if config.get('trainer') != 'classifier' or not loop.load_info(workdir):
    raise FeatureExtractorError(f'{workdir!r} holds a {config.get("trainer")!r}'
                                ' run, not a classifier.')
  config = config_lib.upgrade(config)
  info = loop.load_info(workdir)
  mesh = sharding.make_mesh()
  model, state = build(config, mesh, tuple(info['image_shape']),
                       info['num_classes'])
  ckpt = ckpt_lib.Checkpointer(workdir, save_every=1)
  if ckpt.latest_step() is None:
    raise FeatureExtractorError(
        f'the classifier in {workdir!r} has no checkpoint; its training did '
        'not save one. Re-run launch.train on that workdir.')
  state = ckpt.restore_or_init(state, step=step)
  ckpt.close()
  return config, model, state.params


class ClassifierFeatures:
  """A trained classifier as the feature extractor of generative metrics.

  Call it on images [N, H, W, C] in [0, 1] (NumPy, any N) for features
  [N, feature_dim]; `features_and_logits` also returns the class logits.
  Images are converted to the classifier's value range and run jitted in
  fixed-size batches (one compile).
  """

  def __init__(self, workdir, *, batch_size=500, step=None):
    config, model, params = load(workdir, step=step)
    info = loop.load_info(workdir)
    self.workdir = workdir
    self.image_shape = tuple(info['image_shape'])
    self.num_classes = info['num_classes']
    self.batch_size = batch_size
    self._value_range = config.data.value_range
    self._params = params
    self._fn = jax.jit(lambda p, x: model.apply(
        {'params': p}, x, method='features_and_logits'))

  def features_and_logits(self, images):
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:] != self.image_shape:
      raise ValueError(
          f'the feature classifier in {self.workdir!r} takes images '
          f'[N, {", ".join(map(str, self.image_shape))}], got shape '
          f'{images.shape}; evaluate with a classifier trained on this data.')
    if self._value_range == 'minus_one_one':
      images = images * 2.0 - 1.0
    feats, logits = [], []
    b = self.batch_size
    for start in range(0, len(images), b):
      x = images[start:start + b]
      pad = b - len(x)
      if pad:
        x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
      f, l = jax.device_get(self._fn(self._params, x))
      feats.append(f[:b - pad])
      logits.append(l[:b - pad])
    return np.concatenate(feats), np.concatenate(logits)

  def __call__(self, images):
    return self.features_and_logits(images)[0]

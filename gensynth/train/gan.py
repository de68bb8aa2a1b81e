"""train_and_evaluate for the (conditional) GAN, and checkpoint evaluation."""

import functools
import os

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from gensynth import data as data_lib
from gensynth.metrics import generative
from gensynth.models import gan as gan_model
from gensynth.steps import gan as gan_steps
from gensynth.train import checkpoint as ckpt_lib
from gensynth.train import classifier as classifier_lib
from gensynth.train import loop
from gensynth.train import optim
from gensynth.train import sharding


def _validate(config):
  for name in ('batch_size', 'num_steps', 'log_every', 'checkpoint_every'):
    if config[name] <= 0:
      raise ValueError(f'config.{name}={config[name]} must be positive.')
  if config.loss.d_steps <= 0 or config.loss.r1_every <= 0:
    raise ValueError(f'config.loss.d_steps={config.loss.d_steps} and '
                     f'r1_every={config.loss.r1_every} must be positive.')
  if config.loss.get('shared_fakes', False) and config.loss.d_steps != 1:
    raise ValueError(f'config.loss.shared_fakes=True needs '
                     f'config.loss.d_steps=1 (got {config.loss.d_steps}).')
  if not 0.0 <= config.ema.decay < 1.0:
    raise ValueError(f'config.ema.decay={config.ema.decay} must be in [0, 1).')
  if config.data.value_range != 'minus_one_one':
    raise ValueError("the generator ends in tanh: config.data.value_range "
                     "must be 'minus_one_one'.")


def num_classes_of(config, num_classes):
  return num_classes if config.model.conditional else 0


def step_kwargs(config, num_classes):
  return dict(latent_dim=config.model.latent_dim,
              num_classes=num_classes_of(config, num_classes),
              loss=config.loss.kind, d_steps=config.loss.d_steps,
              gp_weight=config.loss.gp_weight,
              r1_weight=config.loss.r1_weight, r1_every=config.loss.r1_every,
              shared_fakes=config.loss.get('shared_fakes', False),
              ema_decay=config.ema.decay, ema_start=config.ema.start,
              skip_nonfinite=config.get('skip_nonfinite', False))


def make_train_step(config, num_classes, mesh):
  """The jitted GAN step for `config`. With lazy R1, two variants (R1 on and
  off) chosen on the host by step number: a `lax.cond` on the device would
  put R1's weight-gradient convolutions in a conditional branch, where
  XLA:CPU runs them ~20x slower (steps.gan.train_step's r1_now)."""
  kw = step_kwargs(config, num_classes)
  if not kw['r1_weight']:
    return loop.jit_train_step(functools.partial(gan_steps.train_step, **kw),
                               mesh)
  every = kw['r1_every']
  return loop.ScheduledStep(
      {now: loop.jit_train_step(functools.partial(
          gan_steps.train_step, r1_now=now, **kw), mesh)
       for now in (True, False)}, lambda step: step % every == 0)


def build(config, mesh, image_shape, num_classes):
  """Generator, discriminator and an initial replicated GANState."""
  gen, disc = gan_model.from_config(config.model, image_shape, num_classes)
  g_tx = optim.make_optimizer(config.g_optim, config.num_steps)
  d_tx = optim.make_optimizer(config.d_optim, config.num_steps)
  init = jax.jit(functools.partial(
      gan_steps.create_state, generator=gen, discriminator=disc, g_tx=g_tx,
      d_tx=d_tx, latent_dim=config.model.latent_dim, image_shape=image_shape),
                 out_shardings=sharding.replicated(mesh))
  return gen, disc, init(jax.random.key(config.seed))


def check_labels(labels, num_classes):
  """Host-side check of requested class ids (never a silent clamp in XLA)."""
  labels = np.asarray(labels)
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    bad = labels[(labels < 0) | (labels >= num_classes)][0]
    raise ValueError(f'class id {int(bad)} out of range: the model was trained '
                     f'on {num_classes} classes, ids 0..{num_classes - 1}.')
  return labels.astype(np.int32)


class Sampler:
  """Jitted, data-parallel generation in fixed-size batches (one compile)."""

  def __init__(self, config, mesh, state, num_classes, *, batch_size):
    sharding.check_batch_size(batch_size, mesh, 'sampling batch size')
    self.num_classes = num_classes_of(config, num_classes)
    self.batch_size = batch_size
    repl, data_sh = sharding.replicated(mesh), sharding.data_sharded(mesh)
    self._fn = jax.jit(
        functools.partial(gan_steps.sample, g_apply=state.g_apply,
                          num=batch_size,
                          latent_dim=config.model.latent_dim),
        in_shardings=(repl, repl, data_sh if self.num_classes else None),
        out_shardings=data_sh)

  def __call__(self, params, key, num, labels=None):
    """`num` images in [-1, 1] (NumPy on every process) from N(0, I) latents.

    Batch i uses latents drawn from fold_in(key, i), so a given (key, num)
    gives the same images on any device count.
    """
    if self.num_classes:
      if labels is None:
        raise ValueError('a class-conditional generator needs labels.')
      labels = check_labels(labels, self.num_classes)
      if labels.shape != (num,):
        raise ValueError(f'labels shape {labels.shape}, expected ({num},).')
    out = []
    b = self.batch_size
    for i, start in enumerate(range(0, num, b)):
      y = None
      if self.num_classes:
        y = labels[start:start + b]
        y = np.concatenate([y, np.zeros(b - len(y), np.int32)])
      x = self._fn(params, jax.random.fold_in(key, i), y)
      out.append(np.asarray(multihost_utils.process_allgather(x, tiled=True)))
    return np.concatenate(out)[:num]


def _to_unit(x):
  return (np.asarray(x) + 1.0) / 2.0


def generative_metrics(config, sampler, params, train_src, test_src,
                       extractor, *, num_samples, key):
  """FID, KID, precision/recall (and class accuracy) of generated images,
  each next to its real-vs-real floor (train split vs test split)."""
  n = min(num_samples, len(test_src))
  if n < num_samples:
    logging.warning('test split has %d images: using %d samples, not %d.',
                    len(test_src), n, num_samples)
  test = data_lib.preprocess(test_src.images[:n])
  pick = np.random.default_rng(0).choice(len(train_src), min(
      n, len(train_src)), replace=False)
  train = data_lib.preprocess(train_src.images[np.sort(pick)])
  # A conditional G samples classes as often as the training data has them.
  requested = generative.labels_like(
      train_src.labels, n, sampler.num_classes) if sampler.num_classes else None
  fake = _to_unit(sampler(params, key, n, requested))
  f_test, l_test = extractor.features_and_logits(test)
  f_train = extractor(train)
  f_fake, l_fake = extractor.features_and_logits(fake)
  kid_opts = dict(num_subsets=config.eval.kid_subsets,
                  subset_size=config.eval.kid_subset_size)
  out = {'num_samples': n, 'fid': generative.fid(f_fake, f_test),
         'fid_floor': generative.fid(f_train, f_test)}
  out['fid_over_floor'] = out['fid'] / max(out['fid_floor'], 1e-12)
  out['kid'], out['kid_std'] = generative.kid(f_fake, f_test, **kid_opts)
  out['kid_floor'], _ = generative.kid(f_train, f_test, **kid_opts)
  pr = generative.precision_recall(f_test, f_fake, k=config.eval.pr_k)
  pr_floor = generative.precision_recall(f_test, f_train, k=config.eval.pr_k)
  out.update(pr, precision_floor=pr_floor['precision'],
             recall_floor=pr_floor['recall'])
  out['classifier_test_accuracy'] = float(
      np.mean(l_test.argmax(-1) == test_src.labels[:n]))
  if sampler.num_classes:
    acc = generative.class_accuracy(l_fake, requested, sampler.num_classes)
    out['class_accuracy'] = acc['accuracy']
    out['samples_per_class'] = np.bincount(
        requested, minlength=sampler.num_classes).tolist()
    out['class_accuracy_min'] = min(a for a in acc['per_class']
                                   if a is not None)
    out['class_accuracy_per_class'] = acc['per_class']
  return out


def sample_grid(sampler, params, key, *, num_classes, per_row=10, rows=8):
  """[N, H, W, C] in [0, 1]: one row per class if conditional, else a block."""
  if num_classes:
    labels = np.repeat(np.arange(num_classes), per_row)
    return _to_unit(sampler(params, key, len(labels), labels)), per_row
  return _to_unit(sampler(params, key, per_row * rows)), per_row


def train_and_evaluate(config, workdir):
  """Trains a GAN as `config` says, checkpointing and reporting in `workdir`.

  Restarted with the same config and workdir it resumes from the newest valid
  checkpoint and ends with the parameters an uninterrupted run would have.
  With config.eval.classifier set, ends with FID/KID/precision/recall.
  """
  _validate(config)
  mesh = loop.prepare(config, workdir)
  extractor = None
  if config.eval.classifier:  # Fail now, not after training, if it is missing.
    extractor = classifier_lib.ClassifierFeatures(
        os.path.expanduser(config.eval.classifier),
        batch_size=config.eval.batch_size)
  train_src, test_src, batches = loop.load_data(
      config, config.batch_size * config.loss.d_steps)
  image_shape, classes = train_src.image_shape, train_src.num_classes
  _, _, state = build(config, mesh, image_shape, classes)
  ckpt, state, start, reporter = loop.resume(config, workdir, state, train_src)
  train_step = make_train_step(config, classes, mesh)
  root = jax.random.key(config.seed)
  train_key, eval_key, sample_key = (jax.random.fold_in(root, i)
                                     for i in (1, 2, 3))
  grid_n = 10 * (num_classes_of(config, classes) or 8)
  sampler = Sampler(config, mesh, state, classes, batch_size=_fit(
      config.eval.batch_size, mesh))
  grid_sampler = Sampler(config, mesh, state, classes,
                         batch_size=_fit(grid_n, mesh))

  def write_images(step, state):
    grid, ncols = sample_grid(grid_sampler, state.ema_params, sample_key,
                              num_classes=num_classes_of(config, classes))
    reporter.images(step, 'samples', grid, ncols=ncols)

  state, step, preempted, final = loop.run(
      state, train_step=train_step, batches=batches, start=start,
      num_steps=config.num_steps, key=train_key, mesh=mesh, ckpt=ckpt,
      reporter=reporter, log_every=config.log_every,
      checkpoint_every=config.checkpoint_every,
      hooks=[(config.get('image_every'), write_images)])
  if preempted:
    reporter.close()
    return {'preempted': True, 'step': step}
  write_images(step, state)
  if extractor is not None:
    metrics = generative_metrics(config, sampler, state.ema_params, train_src,
                                 test_src, extractor,
                                 num_samples=config.eval.num_samples,
                                 key=eval_key)
    final.update(metrics)
  reporter.scalars(step, {k: v for k, v in final.items()
                          if np.isscalar(v)}, prefix='final')
  reporter.close()
  loop.write_json(os.path.join(workdir, 'final_metrics.json'), final)
  ckpt.close()
  return final


def _fit(n, mesh):
  """`n` rounded up to a multiple of the device count."""
  d = mesh.devices.size
  return -(-n // d) * d


def restore(config, workdir, *, step=None):
  """(mesh, GANState, train split, test split) of a trained run."""
  mesh, state, _ = load_generator(config, workdir, step=step)
  return (mesh, state, data_lib.load_split(config.data, 'train'),
          data_lib.load_split(config.data, 'test'))


def evaluate(config, workdir, *, classifier, num_samples=None, batch_size=None,
             seed=0, step=None):
  """Generative metrics of the newest (or the given) checkpoint's EMA G."""
  extractor = classifier_lib.ClassifierFeatures(
      os.path.expanduser(classifier),
      batch_size=batch_size or config.eval.batch_size)
  mesh, state, train_src, test_src = restore(config, workdir, step=step)
  sampler = Sampler(config, mesh, state, train_src.num_classes,
                    batch_size=_fit(batch_size or config.eval.batch_size,
                                    mesh))
  out = generative_metrics(config, sampler, state.ema_params, train_src,
                           test_src, extractor,
                           num_samples=num_samples or config.eval.num_samples,
                           key=jax.random.key(seed))
  out['step'] = int(state.step)
  return out


def load_generator(config, workdir, *, step=None):
  """(mesh, GANState, info) of a trained run, without loading its data
  when the run wrote info.json."""
  info = loop.load_info(workdir)
  if not info:
    src = data_lib.load_split(config.data, 'train')
    info = {'image_shape': src.image_shape, 'num_classes': src.num_classes}
  mesh = sharding.make_mesh()
  _, _, state = build(config, mesh, tuple(info['image_shape']),
                      info['num_classes'])
  state = ckpt_lib.restore_trained(workdir, state, step=step)
  return mesh, state, info

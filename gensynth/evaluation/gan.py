"""GAN evaluation: batched sampling, and FID/KID/precision/recall (and class
accuracy) of generated images, each next to its real-vs-real floor."""

import functools
import os

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from gensynth import data as data_lib
from gensynth import errors
from gensynth.evaluation import features as features_lib
from gensynth.evaluation import runs
from gensynth.metrics import generative
from gensynth.steps import gan as gan_steps
from gensynth.train import sharding
from gensynth.train import state as state_lib


def check_labels(labels, num_classes):
  """Host-side check of requested class ids (never a silent clamp in XLA)."""
  labels = np.asarray(labels)
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    bad = labels[(labels < 0) | (labels >= num_classes)][0]
    raise errors.InputError(
        f'class id {int(bad)} out of range: the model was trained '
        f'on {num_classes} classes, ids 0..{num_classes - 1}.')
  return labels.astype(np.int32)


def check_conditions(conds, spec, num):
  """Host-side check of vector conditions [num, D] or token ids [num, L]."""
  kind = spec['kind']
  if kind == 'vector':
    from gensynth.data import conditions  # pylint: disable=g-import-not-at-top
    conds = conditions.check_vectors(conds, spec['dim'])
  else:
    conds = np.asarray(conds)
    if conds.ndim != 2 or conds.shape[1] != spec['max_len'] or \
        conds.dtype.kind not in 'iu':
      raise errors.InputError(
          f'text conditions must be token ids [N, {spec["max_len"]}] '
          f'(gensynth.data.conditions.Vocabulary.encode), got '
          f'{conds.dtype} {conds.shape}.')
    if conds.min() < 0 or conds.max() > len(spec['words']):
      raise errors.InputError('token ids out of the vocabulary\'s range.')
    conds = conds.astype(np.int32)
  if len(conds) != num:
    raise errors.InputError(f'{len(conds)} conditions for {num} samples.')
  return conds


def check_candidates(candidates, select='logit', conditional=True):
  """candidates: how many samples D chooses from per image (1: none);
  select: what ranks them (steps.gan.SELECTIONS), only with candidates > 1
  and, unless 'logit', only for a conditional D."""
  if not isinstance(candidates, (int, np.integer)) or candidates < 1:
    raise errors.InputError(
        f'candidates={candidates!r}: expected an integer >= 1 (the samples '
        'the discriminator picks the best of, per image; 1: no selection).')
  gan_steps.check_selection(select, conditional)
  if select != 'logit' and candidates == 1:
    raise errors.InputError(
        f'select={select!r} ranks candidates; with candidates=1 there is '
        'nothing to rank. Pass candidates > 1 or leave select at logit.')


class Sampler:
  """Jitted, data-parallel generation in fixed-size batches (one compile)."""

  def __init__(self, config, mesh, state, num_classes, *, batch_size,
               spec=None, latent_scale=1.0, candidates=1, select='logit'):
    sharding.check_batch_size(batch_size, mesh, 'sampling batch size')
    if not latent_scale >= 0:
      raise errors.InputError(f'latent_scale={latent_scale}: expected a '
                              'number >= 0 (1 samples the model as trained).')
    self.spec = state_lib.cond_spec(config, spec)
    self.num_classes = state_lib.gan_classes(config, num_classes, spec)
    self.batch_size = batch_size
    repl, data_sh = sharding.replicated(mesh), sharding.data_sharded(mesh)
    conditional = self.num_classes or self.spec is not None
    check_candidates(candidates, select, bool(conditional))
    lab_sh = data_sh if conditional else None
    if candidates == 1:
      self._fn = jax.jit(
          functools.partial(gan_steps.sample, g_apply=state.g_apply,
                            num=batch_size,
                            latent_dim=config.model.latent_dim,
                            latent_scale=latent_scale),
          in_shardings=(repl, repl, lab_sh), out_shardings=data_sh)
    else:  # best of `candidates` per image by D (steps.gan.sample_best_of)
      d_vars = gan_steps.discriminator_variables(state)
      fn = jax.jit(
          functools.partial(gan_steps.sample_best_of, g_apply=state.g_apply,
                            d_apply=state.d_apply, num=batch_size,
                            latent_dim=config.model.latent_dim,
                            candidates=candidates, latent_scale=latent_scale,
                            group=config.model.get('d_mbstd_group') or 1,
                            select=select),
          in_shardings=(repl, repl, repl, lab_sh), out_shardings=data_sh)
      self._fn = lambda params, key, y: fn(params, d_vars, key, y)

  def __call__(self, params, key, num, labels=None):
    """`num` images in [-1, 1] (NumPy on every process) from N(0, I) latents.

    `labels`: class ids [num] for a class-conditional G, vectors [num, D] or
    token ids [num, L] for a vector- or text-conditional one. Batch i uses
    latents drawn from fold_in(key, i), so a given (key, num) gives the same
    images on any device count.
    """
    if self.num_classes or self.spec is not None:
      if labels is None:
        raise errors.InputError('a conditional generator needs conditions.')
      if self.spec is not None:
        labels = check_conditions(labels, self.spec, num)
      else:
        labels = check_labels(labels, self.num_classes)
      if labels.shape[0] != num:
        raise errors.InputError(
            f'labels shape {labels.shape}, expected ({num},).')
    out = []
    b = self.batch_size
    for i, start in enumerate(range(0, num, b)):
      y = None
      if labels is not None:
        y = labels[start:start + b]
        y = np.concatenate([y, np.zeros((b - len(y),) + y.shape[1:],
                                        y.dtype)])
      x = self._fn(params, jax.random.fold_in(key, i), y)
      out.append(np.asarray(multihost_utils.process_allgather(x, tiled=True)))
    return np.concatenate(out)[:num]


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
  # A conditional G samples classes as often as the training data has them;
  # a vector- or text-conditional one draws from the test conditions.
  requested = generative.labels_like(
      train_src.labels, n, sampler.num_classes) if sampler.num_classes else None
  fake = _unit(sampler(params, key, n, requested if sampler.spec is None
                       else test_src.conditions[:n]))
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


def sample_grid(sampler, params, key, *, num_classes, per_row=10, rows=8,
                conditions=None):
  """[N, H, W, C] in [0, 1]: one row per class if class-conditional, one row
  per condition in `conditions` (vectors or token ids), else a block."""
  if conditions is not None:
    conds = np.repeat(np.asarray(conditions)[:rows], per_row, axis=0)
    return _unit(sampler(params, key, len(conds), conds)), per_row
  if num_classes:
    labels = np.repeat(np.arange(num_classes), per_row)
    return _unit(sampler(params, key, len(labels), labels)), per_row
  return _unit(sampler(params, key, per_row * rows)), per_row


def evaluate(config, workdir, *, classifier, num_samples=None, batch_size=None,
             seed=0, step=None, latent_scale=1.0, candidates=1,
             select='logit'):
  """Generative metrics of the newest (or the given) checkpoint's EMA G,
  its latents scaled by `latent_scale` (steps.gan.sample), each image the
  best of `candidates` by D (steps.gan.sample_best_of; 1: plain samples),
  ranked by `select` (steps.gan.best_of)."""
  extractor = features_lib.ClassifierFeatures(
      os.path.expanduser(classifier),
      batch_size=batch_size or config.eval.batch_size)
  mesh, state, info = runs.load_gan(config, workdir, step=step)
  train_src, test_src = runs.load_splits(config, info)
  sampler = Sampler(config, mesh, state, train_src.num_classes,
                    batch_size=sharding.round_up(
                        batch_size or config.eval.batch_size, mesh),
                    spec=info['condition'], latent_scale=latent_scale,
                    candidates=candidates, select=select)
  out = generative_metrics(config, sampler, state.ema_params, train_src,
                           test_src, extractor,
                           num_samples=num_samples or config.eval.num_samples,
                           key=jax.random.key(seed))
  out['step'] = int(state.step)
  if latent_scale != 1.0:
    out['latent_scale'] = latent_scale
  if candidates != 1:
    out['candidates'] = candidates
    out['select'] = select
  return out




def _unit(x):
  return data_lib.to_unit(x, 'minus_one_one')

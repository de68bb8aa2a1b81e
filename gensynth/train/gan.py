"""train_and_evaluate for the (conditional) GAN."""

import functools
import os

import jax
import numpy as np

from gensynth import errors
from gensynth.configs import common
from gensynth.evaluation import features as features_lib
from gensynth.evaluation import gan as gan_eval
from gensynth.steps import gan as gan_steps
from gensynth.train import loop
from gensynth.train import sharding
from gensynth.train import state as state_lib
from gensynth.train import workdir as workdir_lib


def _validate(config):
  for name in ('batch_size', 'num_steps', 'log_every', 'checkpoint_every'):
    if config[name] <= 0:
      raise errors.ConfigError(
          f'config.{name}={config[name]} must be positive.')
  if config.loss.d_steps <= 0 or config.loss.r1_every <= 0:
    raise errors.ConfigError(
        f'config.loss.d_steps={config.loss.d_steps} and '
        f'r1_every={config.loss.r1_every} must be positive.')
  if config.loss.shared_fakes and config.loss.d_steps != 1:
    raise errors.ConfigError(
        f'config.loss.shared_fakes=True needs '
        f'config.loss.d_steps=1 (got {config.loss.d_steps}).')
  common.require_non_negative(config, 'loss.mismatch_weight',
                              'loss.mode_seeking_weight',
                              'loss.contrastive_weight')
  if config.loss.mode_seeking_weight and config.batch_size % 2:
    raise errors.ConfigError(
        f'config.loss.mode_seeking_weight={config.loss.mode_seeking_weight} '
        'pairs the fakes in two halves: config.batch_size must be even (got '
        f'{config.batch_size}).')
  for name in ('mismatch_weight', 'contrastive_weight'):
    if config.loss[name] and not config.model.conditional:
      raise errors.ConfigError(
          f'config.loss.{name}={config.loss[name]} needs a '
          'conditional GAN (config.model.conditional=True).')
  if not 0.0 <= config.ema.decay < 1.0:
    raise errors.ConfigError(
        f'config.ema.decay={config.ema.decay} must be in [0, 1).')
  if config.data.value_range != 'minus_one_one':
    raise errors.ConfigError(
        "the generator ends in tanh: config.data.value_range "
        "must be 'minus_one_one'.")


def step_kwargs(config, num_classes, spec=None):
  return dict(latent_dim=config.model.latent_dim,
              num_classes=state_lib.gan_classes(config, num_classes, spec),
              cond_from_data=state_lib.cond_spec(config, spec) is not None,
              loss=config.loss.kind, d_steps=config.loss.d_steps,
              gp_weight=config.loss.gp_weight,
              r1_weight=config.loss.r1_weight, r1_every=config.loss.r1_every,
              shared_fakes=config.loss.shared_fakes,
              mismatch_weight=config.loss.mismatch_weight,
              mode_seeking_weight=config.loss.mode_seeking_weight,
              contrastive_weight=config.loss.contrastive_weight,
              ema_decay=config.ema.decay, ema_start=config.ema.start,
              skip_nonfinite=config.skip_nonfinite)


def make_step_for(config, num_classes, mesh, spec=None):
  """`step_for(step)`: the jitted GAN step to run at `step`.

  With lazy R1 there are two (R1 on and off), chosen on the host by step
  number: a `lax.cond` on the device would put R1's weight-gradient
  convolutions in a conditional branch, which XLA:CPU runs far slower
  (`launch.benchmark --bench=gan_throughput` with the r1 variant). Each
  compiles once.
  """
  kw = step_kwargs(config, num_classes, spec)
  if not kw['r1_weight']:
    step = loop.jit_train_step(functools.partial(gan_steps.train_step, **kw),
                               mesh)
    return lambda _: step
  every = kw['r1_every']
  variants = {now: loop.jit_train_step(functools.partial(
      gan_steps.train_step, r1_now=now, **kw), mesh) for now in (True, False)}
  return lambda step: variants[step % every == 0]


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
    extractor = features_lib.ClassifierFeatures(
        os.path.expanduser(config.eval.classifier),
        batch_size=config.eval.batch_size)
  train_src, test_src, batches = loop.load_data(
      config, config.batch_size * config.loss.d_steps)
  image_shape, classes = train_src.image_shape, train_src.num_classes
  spec = train_src.condition_spec
  _, _, state = state_lib.gan(config, mesh, image_shape, classes, spec)
  ckpt, state, start, reporter = loop.resume(config, workdir, state, train_src)
  step_for = make_step_for(config, classes, mesh, spec)
  # Vector/text models: grid rows follow the first test conditions.
  grid_conds = (test_src.conditions[:8]
                if state_lib.cond_spec(config, spec) is not None else None)
  root = jax.random.key(config.seed)
  train_key, eval_key, sample_key = (jax.random.fold_in(root, i)
                                     for i in (1, 2, 3))
  grid_n = 10 * (state_lib.gan_classes(config, classes, spec) or 8)
  sampler = gan_eval.Sampler(config, mesh, state, classes,
                             batch_size=sharding.round_up(
                                 config.eval.batch_size, mesh), spec=spec)
  grid_sampler = gan_eval.Sampler(config, mesh, state, classes,
                                  batch_size=sharding.round_up(grid_n, mesh),
                                  spec=spec)

  def write_images(step, state):
    grid, ncols = gan_eval.sample_grid(
        grid_sampler, state.ema_params, sample_key,
        num_classes=state_lib.gan_classes(config, classes, spec),
        conditions=grid_conds)
    reporter.images(step, 'samples', grid, ncols=ncols)

  state, step, preempted, final = loop.run(
      state, step_for=step_for, batches=batches, start=start,
      num_steps=config.num_steps, key=train_key, mesh=mesh, ckpt=ckpt,
      reporter=reporter, log_every=config.log_every,
      checkpoint_every=config.checkpoint_every,
      hooks=[(config.image_every, write_images)])
  if preempted:
    reporter.close()
    return {'preempted': True, 'step': step}
  write_images(step, state)
  if extractor is not None:
    metrics = gan_eval.generative_metrics(
        config, sampler, state.ema_params, train_src, test_src, extractor,
        num_samples=config.eval.num_samples, key=eval_key)
    final.update(metrics)
  reporter.scalars(step, {k: v for k, v in final.items()
                          if np.isscalar(v)}, prefix='final')
  reporter.close()
  workdir_lib.write_json(os.path.join(workdir, 'final_metrics.json'), final)
  ckpt.close()
  return final

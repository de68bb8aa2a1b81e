"""train_and_evaluate for the (C)VAE."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from gensynth import data as data_lib
from gensynth import errors
from gensynth.evaluation import vae as vae_eval
from gensynth.steps import vae as vae_steps
from gensynth.train import diagnostics
from gensynth.train import loop
from gensynth.train import state as state_lib
from gensynth.train import workdir as workdir_lib


def _validate(config):
  for name in ('batch_size', 'num_steps', 'log_every', 'checkpoint_every'):
    if config[name] <= 0:
      raise errors.ConfigError(
          f'config.{name}={config[name]} must be positive.')
  micro = config.micro_batches
  if micro <= 0 or config.batch_size % micro:
    raise errors.ConfigError(
        f'config.batch_size={config.batch_size} must be a '
        f'multiple of config.micro_batches={micro} (a positive '
        'count of equal micro-batches).')
  rate = config.loss.cond_dropout
  if not 0.0 <= rate < 1.0:
    raise errors.ConfigError(
        f'config.loss.cond_dropout={rate}: expected a probability in '
        '[0, 1) (the share of examples trained without their condition).')
  if rate and not (config.model.conditional and
                   config.data.condition in ('vector', 'text')):
    raise errors.ConfigError(
        f'config.loss.cond_dropout={rate} needs a vector or text condition '
        '(config.model.conditional=True, config.data.condition=vector or '
        f'text; got conditional={config.model.conditional}, '
        f'condition={config.data.condition!r}).')
  if config.model.latent_dim <= 0:
    raise errors.ConfigError(
        f'config.model.latent_dim={config.model.latent_dim} must '
        'be positive.')
  if config.model.likelihood == 'bernoulli' and config.data.value_range != \
      'zero_one':
    raise errors.ConfigError(
        'a bernoulli likelihood needs config.data.value_range='
        "'zero_one'.")


def step_kwargs(config):
  return dict(likelihood=config.model.likelihood, beta=config.loss.beta,
              objective=config.loss.objective,
              num_samples=config.loss.num_samples,
              conditional=config.model.conditional,
              gaussian_scale=config.loss.gaussian_scale,
              cond_dropout=config.loss.cond_dropout,
              micro_batches=config.micro_batches)


def train_and_evaluate(config, workdir):
  """Trains a VAE as `config` says, checkpointing and reporting in `workdir`.

  Restarted with the same config and workdir, it resumes from the newest valid
  checkpoint and ends with the parameters an uninterrupted run would have.

  Returns:
    dict of final metrics (also written to workdir/final_metrics.json).
  """
  _validate(config)
  mesh = loop.prepare(config, workdir)
  train_src, test_src, batches = loop.load_data(
      config, config.batch_size,
      dynamic_binarize=config.data.binarize)
  image_shape = train_src.image_shape
  spec = state_lib.cond_spec(config, train_src.condition_spec)
  _, state = state_lib.vae(config, mesh, image_shape, train_src.num_classes,
                           config.num_steps, spec)
  ckpt, state, start, reporter = loop.resume(config, workdir, state, train_src)
  train_step = loop.jit_train_step(
      functools.partial(vae_steps.train_step, **step_kwargs(config),
                        skip_nonfinite=config.skip_nonfinite), mesh)
  root = jax.random.key(config.seed)
  train_key, eval_key, sample_key = (jax.random.fold_in(root, i)
                                     for i in (1, 2, 3))
  num_show = min(64, len(test_src))
  show_batch = next(data_lib.eval_batches(
      test_src.subset(slice(0, num_show)), batch_size=num_show,
      value_range=config.data.value_range))
  cond = config.model.conditional
  show_cond = vae_steps.conditions_of(show_batch, cond)
  recon_fn = jax.jit(functools.partial(
      vae_steps.reconstruct, apply_fn=state.apply_fn,
      likelihood=config.model.likelihood))
  sample_fn = jax.jit(functools.partial(
      vae_steps.sample, apply_fn=state.apply_fn, num=num_show,
      latent_dim=config.model.latent_dim, likelihood=config.model.likelihood,
      image_shape=image_shape, autoregressive=bool(config.model.ar_channels)))
  # Samples: one per class in turn, or the shown test images' conditions.
  sample_labels = (show_cond if spec is not None else
                   jnp.arange(num_show) % train_src.num_classes if cond
                   else None)

  def write_images(step, params):
    vr = config.data.value_range
    rec = recon_fn(params, x=show_batch['image'], labels=show_cond)
    pairs = np.stack([data_lib.to_unit(show_batch['image'], vr),
                      data_lib.to_unit(rec, vr)], 1)
    reporter.images(step, 'reconstructions', pairs.reshape(
        (-1,) + pairs.shape[2:])[:num_show], ncols=16)
    reporter.images(step, 'samples', data_lib.to_unit(sample_fn(
        params, key=jax.random.fold_in(sample_key, 0), labels=sample_labels),
                                                      vr))

  periodic_eval_fn = vae_eval.make_eval_fn(
      config, mesh, state.apply_fn, num_samples=config.eval.train_samples,
      chunk_size=config.eval.train_samples) if config.eval_every else None

  def periodic_eval(step, state):
    reporter.scalars(step, vae_eval.evaluate_bounds(
        config, mesh, state, test_src, eval_key,
        num_samples=config.eval.train_samples,
        chunk_size=config.eval.train_samples,
        batch_size=config.eval.batch_size,
        max_examples=config.eval.train_examples,
        eval_fn=periodic_eval_fn), prefix='test')

  state, step, preempted, stats = loop.run(
      state, step_for=lambda _: train_step, batches=batches, start=start,
      num_steps=config.num_steps, key=train_key, mesh=mesh, ckpt=ckpt,
      reporter=reporter, log_every=config.log_every,
      checkpoint_every=config.checkpoint_every,
      hooks=[(config.image_every,
              lambda step, state: write_images(step, state.params)),
             (config.eval_every, periodic_eval)])
  if preempted:
    reporter.close()
    return {'preempted': True, 'step': step}
  write_images(step, state.params)
  final = vae_eval.evaluate_bounds(config, mesh, state, test_src, eval_key,
                          num_samples=config.eval.final_samples,
                          chunk_size=config.eval.chunk_size,
                          batch_size=config.eval.batch_size,
                          max_examples=config.eval.final_examples)
  final.update(stats, periodic_eval_compiles=(
      diagnostics.compile_count(periodic_eval_fn) if periodic_eval_fn else 0))
  reporter.scalars(step, final, prefix='final')
  reporter.close()
  workdir_lib.write_json(os.path.join(workdir, 'final_metrics.json'), final)
  ckpt.close()
  return final

"""train_and_evaluate for the (C)VAE, and checkpoint evaluation."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from gensynth import data as data_lib
from gensynth.models import vae as vae_model
from gensynth.steps import vae as vae_steps
from gensynth.train import checkpoint as ckpt_lib
from gensynth.train import loop
from gensynth.train import optim
from gensynth.train import sharding


def _validate(config):
  for name in ('batch_size', 'num_steps', 'log_every', 'checkpoint_every'):
    if config[name] <= 0:
      raise ValueError(f'config.{name}={config[name]} must be positive.')
  micro = config.get('micro_batches', 1)
  if micro <= 0 or config.batch_size % micro:
    raise ValueError(f'config.batch_size={config.batch_size} must be a '
                     f'multiple of config.micro_batches={micro} (a positive '
                     'count of equal micro-batches).')
  if config.model.latent_dim <= 0:
    raise ValueError(f'config.model.latent_dim={config.model.latent_dim} must '
                     'be positive.')
  if config.model.likelihood == 'bernoulli' and config.data.value_range != \
      'zero_one':
    raise ValueError('a bernoulli likelihood needs config.data.value_range='
                     "'zero_one'.")


def step_kwargs(config):
  return dict(likelihood=config.model.likelihood, beta=config.loss.beta,
              objective=config.loss.objective,
              num_samples=config.loss.num_samples,
              conditional=config.model.conditional,
              gaussian_scale=config.loss.gaussian_scale,
              micro_batches=config.get('micro_batches', 1))


def _nll_units(config, image_shape):
  """Scale from nats per image to the reported units."""
  if config.model.likelihood == 'logistic':
    return 'bits_per_dim', 1.0 / (np.prod(image_shape) * np.log(2))
  return 'nats', 1.0


def build(config, mesh, image_shape, num_classes, total_steps):
  """Model, optimizer and an initial replicated TrainState."""
  model = vae_model.from_config(config.model, image_shape, num_classes)
  tx = optim.make_optimizer(config.optim, total_steps)
  init = jax.jit(functools.partial(vae_steps.create_state, model=model, tx=tx,
                                   image_shape=image_shape),
                 out_shardings=sharding.replicated(mesh))
  state = init(jax.random.key(config.seed))
  return model, state


def make_eval_fn(config, mesh, apply_fn, *, num_samples, chunk_size):
  step = functools.partial(
      vae_steps.eval_step, apply_fn=apply_fn,
      likelihood=config.model.likelihood, num_samples=num_samples,
      chunk_size=chunk_size, conditional=config.model.conditional,
      gaussian_scale=config.loss.gaussian_scale)
  return jax.jit(step, in_shardings=(sharding.replicated(mesh),
                                     sharding.data_sharded(mesh),
                                     sharding.replicated(mesh)),
                 out_shardings=sharding.replicated(mesh))


def evaluate_bounds(config, mesh, state, test, key, *, num_samples, chunk_size,
                    batch_size, max_examples=None, eval_fn=None):
  """Test -ELBO and IWAE NLL (per image, and in reported units) over a split.

  Pass `eval_fn` (from make_eval_fn) when evaluating repeatedly, so that the
  compiled function is reused instead of rebuilt and recompiled each call.
  """
  sharding.check_batch_size(batch_size, mesh, 'eval batch size')
  if eval_fn is None:
    eval_fn = make_eval_fn(config, mesh, state.apply_fn,
                           num_samples=num_samples, chunk_size=chunk_size)
  binarize = config.data.get('binarize', False)
  if max_examples:
    test = data_lib.ArraySource(test.images[:max_examples],
                                test.labels[:max_examples], test.num_classes)
  batches = data_lib.eval_batches(
      test, batch_size=batch_size, value_range=config.data.value_range,
      binarize_seed=config.data.test_binarize_seed if binarize else None)
  totals = None
  for i, batch in enumerate(batches):
    local = _process_rows(batch)
    out = eval_fn(state.params, sharding.shard_batch(
        local, sharding.data_sharded(mesh)), jax.random.fold_in(key, i))
    totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
  totals = jax.device_get(totals)
  unit, scale = _nll_units(config, test.image_shape)
  n = float(totals['count'])
  return {'num_examples': int(n), 'iwae_samples': num_samples,
          'neg_elbo_nats': float(totals['neg_elbo']) / n,
          'nll_nats': float(totals['nll']) / n,
          f'neg_elbo_{unit}': float(totals['neg_elbo']) / n * scale,
          f'nll_{unit}': float(totals['nll']) / n * scale}


def _process_rows(batch):
  """This process's rows of a global batch (all rows with one process)."""
  p, n = jax.process_index(), jax.process_count()
  rows = len(batch['image']) // n
  return jax.tree.map(lambda x: x[p * rows:(p + 1) * rows], batch)


def _to_unit(x, value_range):
  return (x + 1) / 2 if value_range == 'minus_one_one' else x


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
      dynamic_binarize=config.data.get('binarize', False))
  image_shape = train_src.image_shape
  model, state = build(config, mesh, image_shape, train_src.num_classes,
                       config.num_steps)
  ckpt, state, start, reporter = loop.resume(config, workdir, state, train_src)
  train_step = loop.jit_train_step(
      functools.partial(vae_steps.train_step, **step_kwargs(config),
                        skip_nonfinite=config.get('skip_nonfinite', False)),
      mesh)
  root = jax.random.key(config.seed)
  train_key, eval_key, sample_key = (jax.random.fold_in(root, i)
                                     for i in (1, 2, 3))
  num_show = min(64, len(test_src))
  show_batch = next(data_lib.eval_batches(
      data_lib.ArraySource(test_src.images[:num_show],
                           test_src.labels[:num_show], test_src.num_classes),
      batch_size=num_show, value_range=config.data.value_range))
  cond = config.model.conditional
  recon_fn = jax.jit(functools.partial(
      vae_steps.reconstruct, apply_fn=state.apply_fn,
      likelihood=config.model.likelihood))
  sample_fn = jax.jit(functools.partial(
      vae_steps.sample, apply_fn=state.apply_fn, num=num_show,
      latent_dim=config.model.latent_dim, likelihood=config.model.likelihood,
      image_shape=image_shape, autoregressive=bool(config.model.ar_channels)))
  sample_labels = jnp.arange(num_show) % train_src.num_classes if cond else None

  def write_images(step, params):
    vr = config.data.value_range
    rec = recon_fn(params, x=show_batch['image'],
                   labels=show_batch['label'] if cond else None)
    pairs = np.stack([_to_unit(show_batch['image'], vr),
                      _to_unit(np.asarray(rec), vr)], 1)
    reporter.images(step, 'reconstructions', pairs.reshape(
        (-1,) + pairs.shape[2:])[:num_show], ncols=16)
    reporter.images(step, 'samples', _to_unit(np.asarray(sample_fn(
        params, key=jax.random.fold_in(sample_key, 0), labels=sample_labels)),
                                              vr))

  periodic_eval_fn = make_eval_fn(
      config, mesh, state.apply_fn, num_samples=config.eval.train_samples,
      chunk_size=config.eval.train_samples) if config.get('eval_every') else None

  def periodic_eval(step, state):
    reporter.scalars(step, evaluate_bounds(
        config, mesh, state, test_src, eval_key,
        num_samples=config.eval.train_samples,
        chunk_size=config.eval.train_samples,
        batch_size=config.eval.batch_size,
        max_examples=config.eval.train_examples,
        eval_fn=periodic_eval_fn), prefix='test')

  state, step, preempted, stats = loop.run(
      state, train_step=train_step, batches=batches, start=start,
      num_steps=config.num_steps, key=train_key, mesh=mesh, ckpt=ckpt,
      reporter=reporter, log_every=config.log_every,
      checkpoint_every=config.checkpoint_every,
      hooks=[(config.get('image_every'),
              lambda step, state: write_images(step, state.params)),
             (config.get('eval_every'), periodic_eval)])
  if preempted:
    reporter.close()
    return {'preempted': True, 'step': step}
  write_images(step, state.params)
  final = evaluate_bounds(config, mesh, state, test_src, eval_key,
                          num_samples=config.eval.final_samples,
                          chunk_size=config.eval.chunk_size,
                          batch_size=config.eval.batch_size,
                          max_examples=config.eval.get('final_examples'))
  final.update(stats, periodic_eval_compiles=(
      loop.compile_count(periodic_eval_fn) if periodic_eval_fn else 0))
  reporter.scalars(step, final, prefix='final')
  reporter.close()
  loop.write_json(os.path.join(workdir, 'final_metrics.json'), final)
  ckpt.close()
  return final


def evaluate(config, workdir, *, num_samples, chunk_size, batch_size=None,
             max_examples=None, seed=0, step=None):
  """Test -ELBO and IWAE NLL of the newest (or the given) checkpoint."""
  mesh = sharding.make_mesh()
  test_src = data_lib.load_split(config.data, 'test')
  _, state = build(config, mesh, test_src.image_shape, test_src.num_classes,
                   config.num_steps)
  state = ckpt_lib.restore_trained(workdir, state, step=step)
  out = evaluate_bounds(config, mesh, state, test_src, jax.random.key(seed),
                        num_samples=num_samples, chunk_size=chunk_size,
                        batch_size=batch_size or config.eval.batch_size,
                        max_examples=max_examples)
  out['step'] = int(state.step)
  return out


def load_model(config, workdir, *, step=None):
  """(TrainState, info) of a trained run, without loading its data when the
  run wrote info.json."""
  info = loop.load_info(workdir)
  if not info:
    src = data_lib.load_split(config.data, 'train')
    info = {'image_shape': src.image_shape, 'num_classes': src.num_classes}
  mesh = sharding.make_mesh()
  _, state = build(config, mesh, tuple(info['image_shape']),
                   info['num_classes'], config.num_steps)
  state = ckpt_lib.restore_trained(workdir, state, step=step)
  return state, info

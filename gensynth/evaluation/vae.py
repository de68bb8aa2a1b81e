"""VAE evaluation: test -ELBO and IWAE NLL bounds over a split."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gensynth import data as data_lib
from gensynth.evaluation import runs
from gensynth.steps import vae as vae_steps
from gensynth.train import sharding


def _nll_units(config, image_shape):
  """Scale from nats per image to the reported units."""
  if config.model.likelihood == 'logistic':
    return 'bits_per_dim', 1.0 / (np.prod(image_shape) * np.log(2))
  return 'nats', 1.0


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
  binarize = config.data.binarize
  if max_examples:
    test = test.subset(slice(0, max_examples))
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


def evaluate(config, workdir, *, num_samples, chunk_size, batch_size=None,
             max_examples=None, seed=0, step=None):
  """Test -ELBO and IWAE NLL of the newest (or the given) checkpoint."""
  mesh = sharding.make_mesh()
  state, info = runs.load_vae(config, workdir, step=step)
  test_src, = runs.load_splits(config, info, ('test',))
  out = evaluate_bounds(config, mesh, state, test_src, jax.random.key(seed),
                        num_samples=num_samples, chunk_size=chunk_size,
                        batch_size=batch_size or config.eval.batch_size,
                        max_examples=max_examples)
  out['step'] = int(state.step)
  return out



import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gensynth.models import vae
from gensynth.steps import vae as steps


def _setup(ar=0, conditional=False):
  model = vae.VAE(image_shape=(8, 8, 1), latent_dim=4, widths=(8, 16),
                  num_classes=3 if conditional else 0, ar_channels=ar)
  state = steps.create_state(jax.random.key(0), model, optax.adam(3e-3),
                             (8, 8, 1))
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, 16)
  yy, xx = np.mgrid[:8, :8]
  patterns = np.stack([yy % 2, xx % 2, (yy + xx) % 2]).astype(bool)
  noisy = patterns[labels] ^ (rng.random((16, 8, 8)) < 0.05)
  batch = {'image': jnp.asarray(noisy[..., None], jnp.float32),
           'label': jnp.asarray(labels, jnp.int32)}
  return model, state, batch


@pytest.mark.parametrize('objective,k,ar,cond', [('elbo', 1, 0, False),
                                                 ('iwae', 4, 4, True)])
def test_train_step_lowers_loss(objective, k, ar, cond):
  _, state, batch = _setup(ar=ar, conditional=cond)
  step = jax.jit(functools.partial(
      steps.train_step, likelihood='bernoulli', objective=objective,
      num_samples=k, conditional=cond), donate_argnums=0)
  key = jax.random.key(1)
  losses = []
  for _ in range(40):
    state, m = step(state, batch, key)
    losses.append(float(m['loss']))
  assert int(state.step) == 40
  assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
  assert set(m) >= {'loss', 'rec_nll', 'kl', 'grad_norm', 'param_norm'}


def test_train_step_is_deterministic_and_keyed_by_step():
  _, state, batch = _setup()
  step = jax.jit(functools.partial(steps.train_step, likelihood='bernoulli'))
  a, ma = step(state, batch, jax.random.key(5))
  b, mb = step(state, batch, jax.random.key(5))
  np.testing.assert_array_equal(ma['loss'], mb['loss'])
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
  # The same key at a different step draws different noise.
  c, mc = step(state.replace(step=state.step + 1), batch, jax.random.key(5))
  assert float(mc['loss']) != float(ma['loss'])


def test_iwae_bound_is_tighter_than_elbo():
  _, state, batch = _setup()
  kw = dict(apply_fn=state.apply_fn, likelihood='bernoulli', chunk_size=8)
  batch = dict(batch, mask=jnp.ones(16))
  one = steps.eval_step(state.params, batch, jax.random.key(0),
                        num_samples=8, **kw)
  assert float(one['nll']) < float(one['neg_elbo'])
  assert float(one['count']) == 16


def test_autoregressive_sampling_draws_binary_images():
  model, state, _ = _setup(ar=4)
  out = jax.jit(functools.partial(
      steps.sample, apply_fn=state.apply_fn, num=3, latent_dim=4,
      likelihood='bernoulli', image_shape=(8, 8, 1), autoregressive=True))(
          state.params, jax.random.key(0))
  assert out.shape == (3, 8, 8, 1)
  assert set(np.unique(np.asarray(out))) <= {0.0, 1.0}
  del model


def test_non_finite_step_is_skipped_or_reported():
  _, state, batch = _setup()
  bad = dict(batch, image=batch['image'].at[0, 0, 0, 0].set(jnp.nan))
  skip = jax.jit(functools.partial(steps.train_step, likelihood='bernoulli',
                                   skip_nonfinite=True))
  new, m = skip(state, bad, jax.random.key(0))
  assert float(m['skipped']) == 1.0 and float(m['loss']) == 0.0
  assert int(new.step) == int(state.step) + 1
  jax.tree.map(np.testing.assert_array_equal, new.params, state.params)
  new, m = skip(state, batch, jax.random.key(0))
  assert float(m['skipped']) == 0.0
  assert not np.allclose(new.params['encoder']['Dense_0']['bias'],
                         state.params['encoder']['Dense_0']['bias'])
  plain = jax.jit(functools.partial(steps.train_step, likelihood='bernoulli'))
  _, m = plain(state, bad, jax.random.key(0))
  assert not np.isfinite(float(m['loss']))  # the trainer's buffer stops on it

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gensynth import errors
from gensynth.losses import vae as vae_losses
from gensynth.models import conditioning
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


@pytest.mark.parametrize('objective,k,ar,cond,micro',
                         [('elbo', 1, 0, False, 1), ('iwae', 4, 4, True, 1),
                          ('elbo', 1, 4, False, 2)])
def test_train_step_lowers_loss(objective, k, ar, cond, micro):
  _, state, batch = _setup(ar=ar, conditional=cond)
  step = jax.jit(functools.partial(
      steps.train_step, likelihood='bernoulli', objective=objective,
      num_samples=k, conditional=cond, micro_batches=micro),
                 donate_argnums=0)
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


def test_greedy_decoding_takes_the_likelier_value_of_every_pixel():
  """temperature=0: deterministic given z, and every pixel is 1 exactly where
  the head's logit for it (given the pixels before it, the decoded ones) is
  positive; temperature=1 samples (keys differ, images differ)."""
  _, state, _ = _setup(ar=4)
  z = jax.random.normal(jax.random.key(2), (4, 4))
  decode = jax.jit(functools.partial(
      steps.decode_latents, apply_fn=state.apply_fn, likelihood='bernoulli',
      image_shape=(8, 8, 1), autoregressive=True),
                   static_argnames='temperature')
  greedy = decode(state.params, jax.random.key(0), z, temperature=0.0)
  again = decode(state.params, jax.random.key(1), z, temperature=0.0)
  np.testing.assert_array_equal(greedy, again)
  variables = {'params': state.params}
  feats = state.apply_fn(variables, z, None, method='decode_features')
  logits = state.apply_fn(variables, feats, greedy, method='decode_head')
  np.testing.assert_array_equal(np.asarray(greedy),
                                np.asarray(logits > 0, np.float32))
  drawn = [decode(state.params, jax.random.key(k), z, temperature=1.0)
           for k in (0, 1)]
  assert np.any(np.asarray(drawn[0]) != np.asarray(drawn[1]))
  with pytest.raises(ValueError, match='temperature=-1'):
    decode(state.params, jax.random.key(0), z, temperature=-1.0)


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


def test_micro_batches_accumulate_the_batch_gradient():
  _, state, batch = _setup(ar=4)
  key = jax.random.key(3)
  kw = dict(likelihood='bernoulli')
  grads, metrics = jax.jit(functools.partial(
      steps.batch_gradients, state.params, state.apply_fn,
      micro_batches=2, **kw))(batch, key)
  # By hand: rows 0, 2, 4, ... and 1, 3, 5, ..., keys fold_in(key, i).
  halves = [jax.value_and_grad(steps.loss_fn, has_aux=True)(
      state.params, state.apply_fn, jax.tree.map(lambda a, i=i: a[i::2], batch),
      jax.random.fold_in(key, i), **kw) for i in range(2)]
  want = jax.tree.map(lambda a, b: (a + b) / 2, halves[0][1], halves[1][1])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-6), grads, want)
  np.testing.assert_allclose(
      metrics['loss'], (halves[0][0][1]['loss'] + halves[1][0][1]['loss']) / 2,
      rtol=1e-6)
  # One micro-batch is the plain gradient with the key itself.
  g1, m1 = steps.batch_gradients(state.params, state.apply_fn, batch, key, **kw)
  (_, m_ref), g_ref = jax.value_and_grad(steps.loss_fn, has_aux=True)(
      state.params, state.apply_fn, batch, key, **kw)
  jax.tree.map(np.testing.assert_array_equal, g1, g_ref)
  np.testing.assert_array_equal(m1['loss'], m_ref['loss'])
  with pytest.raises(ValueError, match='does not split into micro_batches=3'):
    steps.batch_gradients(state.params, state.apply_fn, batch, key,
                          micro_batches=3, **kw)



VECTOR = {'kind': 'vector', 'dim': 3}


def _vector_setup(ar=4):
  model = vae.VAE(image_shape=(8, 8, 1), latent_dim=4, widths=(8, 16),
                  ar_channels=ar, cond_spec=conditioning.freeze(VECTOR),
                  embed_dim=6)
  state = steps.create_state(jax.random.key(0), model, optax.adam(3e-3),
                             (8, 8, 1), VECTOR)
  _, _, batch = _setup()
  cond = jax.random.normal(jax.random.key(5), (16, 3))
  return model, state, dict(batch, cond=cond)


def test_condition_dropout_trains_the_null_condition_too():
  """cond_dropout: dropped examples see the zero embedding in encoder and
  decoder; rate 0 is the plain bound (same key use); all dropped, the
  condition encoder gets no gradient; half dropped, it does."""
  _, state, batch = _vector_setup()
  kw = dict(apply_fn=state.apply_fn, batch=batch, likelihood='bernoulli',
            conditional=True)
  key = jax.random.key(3)
  variables = {'params': state.params}

  def bound(cond, z_key, *, embedded):
    """The bound by hand: conditions, or embeddings with `embedded`."""
    enc, dec = (('encode_embedded', 'decode_embedded') if embedded else
                ('encode', 'decode'))
    mean, logvar = state.apply_fn(variables, batch['image'], cond, method=enc)
    z = vae_losses.sample_gaussian(z_key, mean, logvar)
    out = state.apply_fn(variables, z, cond, batch['image'], method=dec)
    return -jnp.mean(vae_losses.elbo(
        vae_losses.log_likelihood(out, batch['image'], likelihood='bernoulli'),
        vae_losses.gaussian_kl(mean, logvar)))

  # Rate 0: the plain bound with the step's key itself (not split).
  plain, _ = steps.loss_fn(state.params, key=key, cond_dropout=0.0, **kw)
  np.testing.assert_allclose(float(plain),
                             float(bound(batch['cond'], key, embedded=False)),
                             rtol=1e-6)
  # Every example dropped: the bound of the model given the null condition,
  # computed by hand with the same latent draws.
  all_dropped, _ = steps.loss_fn(state.params, key=key, cond_dropout=0.999999,
                                 **kw)
  by_hand = bound(jnp.zeros((16, 6)), jax.random.split(key)[1],
                  embedded=True)
  np.testing.assert_allclose(float(all_dropped), float(by_hand), rtol=1e-5)
  assert abs(float(all_dropped) - float(plain)) > 1e-4
  grad = lambda rate: jax.grad(lambda p: steps.loss_fn(
      p, key=key, cond_dropout=rate, **kw)[0])(state.params)['condition']
  assert float(optax.global_norm(grad(0.999999))) == 0.0
  assert float(optax.global_norm(grad(0.5))) > 0.0


@pytest.mark.parametrize('ar', [0, 4])
def test_guidance_combines_conditioned_and_null_logits(ar):
  """guidance w: logits (1 + w) l(c) - w l(null); w = 0 decodes as before."""
  _, state, batch = _vector_setup(ar=ar)
  z = jax.random.normal(jax.random.key(2), (4, 4))
  cond = batch['cond'][:4]
  decode = jax.jit(functools.partial(
      steps.decode_latents, apply_fn=state.apply_fn, likelihood='bernoulli',
      image_shape=(8, 8, 1), autoregressive=bool(ar)),
                   static_argnames=('temperature', 'guidance'))
  key = jax.random.key(0)
  np.testing.assert_array_equal(decode(state.params, key, z, cond),
                                decode(state.params, key, z, cond,
                                       guidance=0.0))
  w = 1.5
  variables = {'params': state.params}
  emb = state.apply_fn(variables, cond, method='embed_condition')
  null = jnp.zeros_like(emb)
  if not ar:
    guided = decode(state.params, key, z, cond, guidance=w)
    logit = lambda e: state.apply_fn(variables, z, e, None,
                                     method='decode_embedded')
    np.testing.assert_allclose(
        guided, jax.nn.sigmoid((1 + w) * logit(emb) - w * logit(null)),
        rtol=1e-5, atol=1e-6)
    assert not np.allclose(guided, decode(state.params, key, z, cond),
                           atol=1e-4)
  else:
    # Greedy: every pixel is 1 exactly where the combined logit (given the
    # pixels decoded before it) is positive.
    guided = decode(state.params, key, z, cond, temperature=0.0, guidance=w)
    head = lambda e: state.apply_fn(
        variables, state.apply_fn(variables, z, e,
                                  method='decode_features_embedded'),
        guided, method='decode_head')
    np.testing.assert_array_equal(
        np.asarray(guided),
        np.asarray((1 + w) * head(emb) - w * head(null) > 0, np.float32))
  with pytest.raises(errors.InputError, match='guidance=-1'):
    decode(state.params, key, z, cond, guidance=-1.0)
  with pytest.raises(errors.InputError, match='vector- or text-conditional'):
    _, plain_state, _ = _setup(ar=ar)
    jax.jit(functools.partial(
        steps.decode_latents, apply_fn=plain_state.apply_fn,
        likelihood='bernoulli', image_shape=(8, 8, 1),
        autoregressive=bool(ar), guidance=1.0))(plain_state.params, key, z)

"""Condition encoders and the vector/text-conditioned GAN and CVAE."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gensynth import errors
from gensynth.configs import gan_shapes
from gensynth.configs import vae_shapes
from gensynth.models import conditioning
from gensynth.models import gan
from gensynth.models import vae
from gensynth.steps import gan as gan_steps
from gensynth.steps import vae as vae_steps

TEXT = {'kind': 'text', 'words': ['a', 'blue', 'disc', 'red', 'ring'],
        'max_len': 4}
VECTOR = {'kind': 'vector', 'dim': 5}


def _tokens(*rows):
  out = np.zeros((len(rows), 4), np.int32)
  for i, r in enumerate(rows):
    out[i, :len(r)] = r
  return jnp.asarray(out)


def _encoder(spec):
  enc = conditioning.ConditionEncoder(conditioning.freeze(spec), 8,
                                      text_width=16, text_layers=1,
                                      text_heads=2)
  return enc, enc.init(jax.random.key(0), conditioning.dummy(spec, 2))


def test_text_encoder_is_per_caption_and_reads_word_order():
  enc, params = _encoder(TEXT)
  a = _tokens([1, 4, 3], [1, 2, 5])  # 'a red disc', 'a blue ring'
  b = _tokens([1, 4, 3], [1, 2, 3, 5])
  ea, eb = enc.apply(params, a), enc.apply(params, b)
  assert ea.shape == (2, 8)
  # Row 0 is the same caption in both batches: no leakage across rows.
  np.testing.assert_allclose(ea[0], eb[0], rtol=1e-5, atol=1e-6)
  assert not np.allclose(ea[1], eb[1], atol=1e-4)
  # Position embeddings: order matters.
  swapped = enc.apply(params, _tokens([3, 4, 1]))
  assert not np.allclose(swapped[0], ea[0], atol=1e-4)
  with pytest.raises(errors.InputError, match=r'token ids \[N, 4\]'):
    enc.apply(params, jnp.ones((2, 3), jnp.int32))


def test_vector_encoder_checks_its_width():
  enc, params = _encoder(VECTOR)
  assert enc.apply(params, jnp.ones((3, 5))).shape == (3, 8)
  with pytest.raises(errors.InputError, match=r'\[N, 5\]'):
    enc.apply(params, jnp.ones((3, 4)))


def _gan_cfg():
  return gan_shapes.get_config('smoke,text').model


@pytest.mark.parametrize('spec,cond', [
    (TEXT, _tokens([1, 4, 3], [1, 2, 5])),
    (VECTOR, jnp.asarray(np.eye(2, 5), jnp.float32))])
def test_conditional_gan_obeys_its_condition(spec, cond):
  g, d = gan.from_config(_gan_cfg(), (32, 32, 3), 6, spec)
  z = jnp.ones((2, 8))
  g_vars = g.init(jax.random.key(0), z, cond)
  d_vars = d.init(jax.random.key(1), jnp.zeros((2, 32, 32, 3)), cond)
  assert 'condition' in g_vars['params'] and 'condition' in d_vars['params']
  x = g.apply(g_vars, z, cond)
  assert x.shape == (2, 32, 32, 3)
  # Same z, different conditions: different images and logits.
  assert not np.allclose(x[0], x[1], atol=1e-5)
  logits = d.apply(d_vars, jnp.concatenate([x[:1], x[:1]]), cond)
  assert logits.shape == (2,) and logits[0] != logits[1]
  # An embedding mix at weight 1 equals the condition itself.
  emb = g.apply(g_vars, z, cond, embed_only=True)
  np.testing.assert_allclose(g.apply(g_vars, z, None, emb=emb), x, atol=1e-5)
  with pytest.raises(errors.InputError, match='needs conditions'):
    g.apply(g_vars, z)


def test_label_models_keep_their_parameter_trees():
  """Class-id GANs and VAEs build exactly as before conditions existed
  (old checkpoints restore: tests/evaluation/test_old_runs.py)."""
  cfg = _gan_cfg()
  g0, _ = gan.from_config(cfg, (32, 32, 3), 6)
  g1, _ = gan.from_config(cfg, (32, 32, 3), 6,
                          {'kind': 'label', 'num_classes': 6})
  assert g0 == g1 and g0.cond_spec is None


def test_cvae_takes_the_condition_in_encoder_and_decoder():
  # Text here; a vector CVAE trains in tests/launch/test_conditions_cli.py.
  spec, cond = TEXT, _tokens([1, 4, 3], [1, 2, 5])
  cfg = vae_shapes.get_config('smoke,text').model
  model = vae.from_config(cfg, (32, 32, 3), 6, spec)
  state = vae_steps.create_state(jax.random.key(0), model, optax.adam(1e-3),
                                 (32, 32, 3), spec)
  assert 'condition' in state.params
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3), minval=-1.0)
  batch = {'image': x, 'label': jnp.zeros(2, jnp.int32), 'cond': cond}
  grads, metrics = vae_steps.batch_gradients(
      state.params, state.apply_fn, batch, jax.random.key(2),
      likelihood='logistic', conditional=True)
  assert np.isfinite(float(metrics['loss']))
  # The condition encoder learns from the bound.
  cond_grad = optax.global_norm(grads['condition'])
  assert float(cond_grad) > 0
  mean, _ = model.apply({'params': state.params}, x,
                        cond, method='encode')
  swapped = model.apply({'params': state.params}, x, cond[::-1],
                        method='encode')[0]
  assert not np.allclose(mean, swapped, atol=1e-6)
  z = jnp.zeros((2, cfg.latent_dim))
  out = model.apply({'params': state.params}, z, cond, None, method='decode')
  assert out.shape == (2, 32, 32, 6)


def test_gan_step_conditions_fakes_on_the_data():
  spec = TEXT
  cfg = _gan_cfg()
  g, d = gan.from_config(cfg, (32, 32, 3), 6, spec)
  state = gan_steps.create_state(
      jax.random.key(0), g, d, optax.adam(1e-3), optax.adam(1e-3),
      latent_dim=cfg.latent_dim, image_shape=(32, 32, 3), cond_spec=spec)
  batch = {'image': jnp.zeros((4, 32, 32, 3)),
           'label': jnp.zeros(4, jnp.int32),
           'cond': _tokens([1, 4, 3], [1, 2, 5], [2, 3], [4, 5])}
  step = jax.jit(functools.partial(gan_steps.train_step,
                                   latent_dim=cfg.latent_dim,
                                   cond_from_data=True))
  new, metrics = step(state, batch, jax.random.key(1))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  for old_p, new_p in ((state.g_params, new.g_params),
                       (state.d_params, new.d_params)):
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                         old_p['condition'], new_p['condition'])
    assert max(jax.tree.leaves(moved)) > 0
  with pytest.raises(errors.InputError, match=r"batch\['cond'\]"):
    step(state, {k: v for k, v in batch.items() if k != 'cond'},
         jax.random.key(1))


@pytest.mark.parametrize('kind', ['vector', 'label'])
def test_latent_film_feeds_z_to_every_normalisation(kind):
  """latent_film=True (BigGAN's skip-z): each FiLM reads [embedding, z], so
  z reaches every resolution through it; off, the FiLM reads the embedding
  alone (vector) or the gains come from per-class tables (label)."""
  spec = conditioning.freeze(VECTOR) if kind == 'vector' else None
  classes = 0 if spec else 3
  cond = jnp.ones((2, 5)) if spec else jnp.array([0, 2])
  z = jax.random.normal(jax.random.key(0), (2, 6))
  shapes_of = {}
  for on in (False, True):
    g = gan.Generator(16, 3, (8, 8), num_classes=classes, embed_dim=4,
                      cond_spec=spec, latent_film=on)
    v = g.init(jax.random.key(1), z, cond)
    shapes_of[on] = {k: (p['scale']['kernel'].shape if 'kernel' in
                         p.get('scale', {}) else p['scale']['embedding'].shape)
                     for k, p in v['params'].items()
                     if k.startswith('CondGroupNorm')}
  assert len(shapes_of[True]) == 2
  for name, shape in shapes_of[True].items():
    assert shape[0] == 4 + 6, (name, shape)  # embedding + latent
    assert shapes_of[False][name][0] == (4 if spec else 3)
  # FiLM starts at the identity (zero kernels). Given non-zero kernels, the
  # image depends on the rows that read z (the last 6): zeroing just those
  # changes it, so z does reach the FiLM.
  g = gan.Generator(16, 3, (8, 8), num_classes=classes, embed_dim=4,
                    cond_spec=spec, latent_film=True)
  v = g.init(jax.random.key(1), z, cond)
  film = lambda path: 'CondGroupNorm' in str(path) and 'kernel' in str(path)
  bumped = jax.tree_util.tree_map_with_path(
      lambda path, p: p + 0.5 if film(path) else p, v)
  no_z = jax.tree_util.tree_map_with_path(
      lambda path, p: p.at[4:].set(0.0) if film(path) else p, bumped)
  x_bumped = g.apply(bumped, z, cond)
  assert not np.allclose(x_bumped, g.apply(v, z, cond), atol=1e-4)
  assert not np.allclose(x_bumped, g.apply(no_z, z, cond), atol=1e-4)
  cfg = gan_shapes.get_config('vector,skipz').model
  cfg.g_norm = 'none'
  with pytest.raises(ValueError, match='g_latent_film=True'):
    gan.from_config(cfg, (32, 32, 3), 6, conditioning.freeze(VECTOR))

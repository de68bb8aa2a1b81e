"""Generator/discriminator shapes, conditioning and parameter trees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gensynth.configs import gan_common
from gensynth.models import gan
from gensynth.models import layers



def _model_cfg(**fields):
  cfg = gan_common.base_config().model
  cfg.update(fields)
  return cfg


@pytest.mark.parametrize('size,widths', [(28, (16, 8)), (32, (16, 8, 8)),
                                         (64, (16, 8, 8, 8))])
@pytest.mark.parametrize('classes', [0, 10])
def test_shapes(size, widths, classes):
  g = gan.Generator(size, 3, widths, num_classes=classes)
  d = gan.Discriminator(widths[::-1], num_classes=classes, spectral_norm=True)
  z, y = jnp.ones((2, 8)), jnp.array([1, 7])
  gp = g.init(jax.random.key(0), z, y)
  x = g.apply(gp, z, y)
  assert x.shape == (2, size, size, 3)
  assert float(jnp.max(jnp.abs(x))) <= 1.0
  dv = d.init(jax.random.key(1), x, y)
  assert d.apply(dv, x, y).shape == (2,)
  assert 'spectral' in dv


def test_generator_uses_fast_conv_transpose():
  g = gan.Generator(28, 1, (16, 8))
  params = g.init(jax.random.key(0), jnp.ones((1, 4)))['params']
  names = [jax.tree_util.keystr(p) for p, _ in
           jax.tree_util.tree_flatten_with_path(params)[0]]
  assert any('ConvTranspose_0' in n for n in names)
  # layers.ConvTranspose stores HWIO of the strided conv it is the adjoint of.
  assert params['ConvTranspose_0']['kernel'].shape == (4, 4, 8, 16)


def test_conditional_generator_depends_on_label_and_sample_is_per_row():
  g = gan.Generator(28, 1, (16, 8), num_classes=10)
  z = jax.random.normal(jax.random.key(0), (4, 8))
  params = g.init(jax.random.key(1), z, jnp.zeros(4, jnp.int32))
  # Perturb the class embeddings so that labels matter at init.
  params = jax.tree.map(lambda p: p + 0.1, params)
  a = g.apply(params, z, jnp.array([0, 1, 2, 3]))
  b = g.apply(params, z, jnp.array([0, 1, 2, 4]))
  np.testing.assert_allclose(a[:3], b[:3], atol=1e-6)
  assert float(jnp.abs(a[3] - b[3]).max()) > 1e-3
  # Group norm is per sample: a row does not depend on the rest of the batch.
  np.testing.assert_allclose(g.apply(params, z[:1], jnp.array([0])), a[:1],
                             atol=1e-5)


def test_projection_discriminator_uses_labels():
  d = gan.Discriminator((8, 8), num_classes=5)
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 1))
  v = d.init(jax.random.key(1), x, jnp.array([0, 0]))
  assert not np.allclose(d.apply(v, x, jnp.array([0, 0])),
                         d.apply(v, x, jnp.array([3, 3])))


def test_size_and_config_errors():
  with pytest.raises(ValueError, match='image_size / 2\\*\\*len'):
    gan.check_size(28, (8, 8, 8))
  cfg = _model_cfg(
      latent_dim=8, g_widths=(8, 8), d_widths=(8, 8), conditional=True,
      embed_dim=4, g_norm='batch', spectral_norm=False)
  with pytest.raises(ValueError, match="g_norm='batch'"):
    gan.from_config(cfg, (28, 28, 1), 10)
  cfg.g_norm = 'group'
  with pytest.raises(ValueError, match='square'):
    gan.from_config(cfg, (28, 32, 1), 10)
  with pytest.raises(ValueError, match='needs labels'):
    g, _ = gan.from_config(cfg, (28, 28, 1), 10)
    g.init(jax.random.key(0), jnp.ones((1, 8)))


def test_minibatch_std_feature_and_groups():
  """The extra channel is each consecutive group's mean feature std; groups
  do not see each other (a real half never sees the fake half)."""
  rng = np.random.default_rng(0)
  h = rng.normal(size=(8, 3, 3, 5)).astype(np.float32)
  out = np.asarray(gan.minibatch_std(jnp.asarray(h), 4))
  assert out.shape == (8, 3, 3, 6)
  np.testing.assert_array_equal(out[..., :5], h)
  for k in range(2):
    want = np.sqrt(h[4 * k:4 * k + 4].var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(out[4 * k:4 * k + 4, :, :, 5], want,
                               rtol=1e-5)
  h2 = h.copy()
  h2[4:] *= 3.0
  out2 = np.asarray(gan.minibatch_std(jnp.asarray(h2), 4))
  np.testing.assert_array_equal(out2[:4], out[:4])
  assert not np.allclose(out2[4:, :, :, 5], out[4:, :, :, 5])
  # A batch smaller than the group (the init call) is one group.
  assert gan.minibatch_std(jnp.ones((1, 2, 2, 3)), 4).shape == (1, 2, 2, 4)
  with pytest.raises(ValueError, match='not divisible into groups of 4'):
    gan.minibatch_std(jnp.ones((6, 2, 2, 3)), 4)


def test_discriminator_with_minibatch_std():
  d = gan.Discriminator((8, 8), num_classes=3, mbstd_group=2)
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 1))
  v = d.init(jax.random.key(1), x[:1], jnp.zeros(1, jnp.int32))
  logits = d.apply(v, x, jnp.array([0, 1, 2, 0]))
  assert logits.shape == (4,) and np.all(np.isfinite(logits))
  # The logit of image 0 depends on image 1 (same group), not on image 2.
  x2 = x.at[2].multiply(5.0)
  np.testing.assert_allclose(d.apply(v, x2, jnp.array([0, 1, 2, 0]))[:2],
                             logits[:2], rtol=1e-6)
  x3 = x.at[1].multiply(5.0)
  assert not np.isclose(d.apply(v, x3, jnp.array([0, 1, 2, 0]))[0], logits[0])
  cfg = _model_cfg(
      latent_dim=8, g_widths=(8, 8), d_widths=(8, 8), conditional=False,
      embed_dim=4, g_norm='group', spectral_norm=False, d_mbstd_group=-1)
  with pytest.raises(ValueError, match='d_mbstd_group=-1'):
    gan.from_config(cfg, (28, 28, 1), 10)


def test_discriminator_head_is_not_a_sum_over_regions():
  """head=0: the logit is linear in the per-position features, so two
  objects far apart score the sum of what each adds alone; a hidden head
  layer breaks that (it can tell one object from two)."""
  bg = jnp.zeros((1, 16, 16, 1))
  a = bg.at[:, 0:4, 0:4].set(1.0)      # conv cells rows/cols 0-2 only
  b = bg.at[:, 12:16, 12:16].set(1.0)  # cells 6-7 only
  both = a + b
  x = jnp.concatenate([bg, a, b, both])
  gaps = []
  for head in (0, 16):
    d = gan.Discriminator((8,), head=head)
    v = d.init(jax.random.key(1), x[:1])
    leaves, tree = jax.tree.flatten(v)  # random biases too
    keys = jax.random.split(jax.random.key(2), len(leaves))
    v = jax.tree.unflatten(tree, [
        p + 0.1 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
    s = np.asarray(d.apply(v, x), np.float64)
    gaps.append(abs(s[3] - s[1] - s[2] + s[0]))
    logit, proj, phi = d.apply(v, x, parts=True)
    assert proj is None and phi.shape == (4, head or 8 * 8 * 8)
    np.testing.assert_allclose(logit, s, rtol=1e-6)
  assert gaps[0] < 1e-5 and gaps[1] > 1e-3, gaps
  cfg = _model_cfg(
      latent_dim=8, g_widths=(8, 8), d_widths=(8, 8), conditional=False,
      embed_dim=4, g_norm='group', spectral_norm=False, d_mbstd_group=0,
      d_head=-1)
  with pytest.raises(ValueError, match='d_head=-1'):
    gan.from_config(cfg, (28, 28, 1), 10)


def test_nearest_upsampling_generator():
  """g_upsample='nearest': 2x nearest upsampling + 3x3 convs, no transposed
  convs."""
  g = gan.Generator(28, 1, (16, 8), upsample='nearest')
  z = jax.random.normal(jax.random.key(0), (3, 8))
  v = g.init(jax.random.key(1), z)
  x = g.apply(v, z)
  assert x.shape == (3, 28, 28, 1) and np.all(np.abs(x) <= 1)
  names = set(v['params'])
  assert not any(n.startswith('ConvTranspose') for n in names)
  assert {'Conv_0', 'Conv_1'} <= names
  h = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
  np.testing.assert_array_equal(gan.upsample_nearest(jnp.asarray(h)),
                                np.repeat(np.repeat(h, 2, 1), 2, 2))
  cfg = _model_cfg(
      latent_dim=8, g_widths=(8, 8), d_widths=(8, 8), conditional=False,
      embed_dim=4, g_norm='group', spectral_norm=False, g_upsample='bilinear',
      d_mbstd_group=0)
  with pytest.raises(ValueError, match="g_upsample='bilinear'"):
    gan.from_config(cfg, (28, 28, 1), 10)


def test_nearest_up_conv_equals_conv_of_upsampled_map():
  """The tied-weight transposed conv equals a 3x3 'SAME' conv of the
  nearest-upsampled map: values and gradients, same parameters."""
  x = jax.random.normal(jax.random.key(0), (2, 5, 7, 3))
  fast = gan.NearestUpConv(4)
  params = fast.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + 0.1, params)  # non-zero bias too
  ref = lambda p, x: layers.Conv(4, (3, 3)).apply(p, gan.upsample_nearest(x))
  np.testing.assert_allclose(fast.apply(params, x), ref(params, x),
                             rtol=1e-5, atol=1e-5)
  loss = lambda f: lambda p, x: jnp.sum(jnp.sin(f(p, x)))
  for a, b in zip(jax.tree.leaves(jax.grad(loss(fast.apply), (0, 1))(params, x)),
                  jax.tree.leaves(jax.grad(loss(ref), (0, 1))(params, x))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

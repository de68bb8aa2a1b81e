"""Learned fusion: the network's invariances, weights, prior and errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gensynth import errors
from gensynth.data import stacks
from gensynth.metrics import image as image_metrics
from gensynth.models import fusion as fusion_model
from gensynth.steps import fusion as fusion_steps
from gensynth.synth import fusion
from gensynth.synth import learned


def _random_params(model, key, shape):
  """Initial parameters with every leaf (the zero head too) randomised, so
  the network's correction is far from zero."""
  params = jax.jit(model.init)(key, jnp.zeros(shape))['params']
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
  return jax.tree.unflatten(tree, [
      0.3 * jax.random.normal(k, l.shape) for k, l in zip(keys, leaves)])


@pytest.fixture(scope='module')
def net():
  model = fusion_model.FusionNet(widths=(8, 8), low_res=8)
  params = _random_params(model, jax.random.key(0), (1, 2, 16, 16, 3))
  return model, params, jax.jit(functools.partial(
      learned.fusion_and_weights, model=model))


def _stack(k, h, w, seed=0):
  rng = np.random.default_rng(seed)
  base = rng.random((h, w, 3)).astype(np.float32)
  return np.stack([np.clip(base * s, 0, 1) for s in np.linspace(0.3, 1.8, k)])


@pytest.mark.parametrize('k,hw', [(2, (37, 53)), (3, (40, 40)),
                                  (4, (33, 61)), (5, (21, 17))])
def test_any_k_and_odd_sizes_give_one_image_of_the_input_size(net, k, hw):
  _, params, fuse = net
  x = _stack(k, *hw)
  out, w = jax.device_get(fuse(params, x))
  assert out.shape == hw + (3,) and np.all(np.isfinite(out))
  assert w.shape == (k,) + hw
  assert np.all(w >= 0)
  np.testing.assert_allclose(w.sum(0), 1.0, atol=1e-5)
  # The random correction moves the weights well away from Mertens'.
  mertens = np.asarray(fusion.mertens_weights(x))[..., 0]
  assert np.abs(w - mertens).max() > 0.1


def test_permuting_the_sources_leaves_the_result_unchanged(net):
  _, params, fuse = net
  x = _stack(4, 33, 61, seed=1)  # a shape compiled above
  perm = [2, 0, 3, 1]
  out, w = fuse(params, x)
  out_p, w_p = fuse(params, x[perm])
  np.testing.assert_allclose(out_p, out, atol=2e-5)
  np.testing.assert_allclose(w_p, np.asarray(w)[perm], atol=1e-5)


def test_batched_sources_equal_one_stack_at_a_time(net):
  _, params, fuse = net
  a, b = _stack(3, 40, 40, seed=2), _stack(3, 40, 40, seed=3)
  both, w = fuse(params, np.stack([a, b], 1))  # [K, 2, H, W, C]
  assert w.shape == (3, 2, 40, 40)
  np.testing.assert_allclose(both[0], fuse(params, a)[0], atol=2e-5)
  np.testing.assert_allclose(both[1], fuse(params, b)[0], atol=2e-5)


def test_untrained_mertens_network_is_mertens_fusion():
  model = fusion_model.FusionNet(widths=(8, 8))
  x = _stack(3, 40, 56, seed=4)
  params = jax.jit(model.init)(jax.random.key(1), x[None])['params']
  got = jax.jit(functools.partial(learned.learned_fusion, model=model))(
      params, x)
  np.testing.assert_allclose(got, jax.jit(fusion.exposure_fusion)(x),
                             atol=1e-5)


def test_weighted_pyramid_fusion_with_mertens_weights_is_mertens():
  x = _stack(3, 40, 56, seed=5)  # the shape compiled above
  w = fusion.mertens_quality(x)
  np.testing.assert_allclose(jax.jit(fusion.weighted_pyramid_fusion)(x, w),
                             jax.jit(fusion.exposure_fusion)(x), atol=1e-5)
  with pytest.raises(ValueError, match=r'weights: shape \(2, 40, 56\)'):
    fusion.weighted_pyramid_fusion(x, w[:2])


@pytest.mark.parametrize('weights_level,blend', [(0, 'pyramid'),
                                                  (0, 'spatial'),
                                                  (1, 'pyramid')])
def test_a_fixed_prior_exponent_equals_the_learned_one_at_that_value(
    weights_level, blend):
  """prior_exponent=0.5 (sqrt(q) * exp(correction), no log) fuses as the
  learned-exponent network whose prior_scale is 0.5 (exp(0.5 log q +
  correction)), with the same correction; it has no prior_scale parameter."""
  kw = dict(widths=(8, 8), low_res=8, weights_level=weights_level,
            blend=blend)
  learned_p = fusion_model.FusionNet(**kw)
  fixed_p = fusion_model.FusionNet(prior_exponent=0.5, **kw)
  # Smaller than _random_params' leaves: no exponent reaches a clip bound
  # (the two forms bound different exponents).
  params = jax.tree.map(lambda v: 0.3 * v, _random_params(
      learned_p, jax.random.key(7), (1, 2, 16, 16, 3)))
  params = dict(params, prior_scale=jnp.asarray(0.5, jnp.float32))
  fixed_params = {k: v for k, v in params.items() if k != 'prior_scale'}
  init = jax.jit(fixed_p.init)(jax.random.key(0), jnp.zeros((1, 2, 16, 16, 3)))
  assert set(init['params']) == set(fixed_params)
  x = _stack(3, 37, 53, seed=8)
  out_l, w_l = jax.jit(functools.partial(learned.fusion_and_weights,
                                         model=learned_p))(params, x)
  out_f, w_f = jax.jit(functools.partial(learned.fusion_and_weights,
                                         model=fixed_p))(fixed_params, x)
  np.testing.assert_allclose(w_f, w_l, rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(out_f, out_l, atol=2e-5)
  # The prior alone (an untrained head) weights each source by sqrt(q).
  if weights_level == 0:
    from gensynth.train import fusion as fusion_train  # pylint: disable=g-import-not-at-top
    _, w0 = learned.fusion_and_weights(fusion_train.prior_only(fixed_params),
                                       x, model=fixed_p)
    q = np.sqrt(np.asarray(fusion.mertens_quality(x)))
    np.testing.assert_allclose(w0, q / q.sum(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('p', [0.25, 0.5, 0.75, 1.0, 1.5])
def test_prior_power_is_q_to_the_p(p):
  q = jnp.asarray(np.geomspace(1e-12, 8.0, 50), jnp.float32)
  np.testing.assert_allclose(fusion_model._power(q, p),  # pylint: disable=protected-access
                             np.asarray(q, np.float64)**p, rtol=2e-6)


@pytest.mark.parametrize('bad', [0, -0.5, 5.0, 'half'])
def test_a_bad_prior_exponent_is_a_config_error(bad):
  with pytest.raises(ValueError, match='prior_exponent'):
    fusion_model.FusionNet(widths=(8, 8), prior_exponent=bad).init(
        jax.random.key(0), jnp.zeros((1, 2, 16, 16, 3)))


def test_bad_sources_get_clear_errors(net):
  model, params, _ = net
  x = _stack(2, 24, 24)
  with pytest.raises(ValueError, match='K >= 2'):
    learned.learned_fusion(params, x[:1], model=model)
  with pytest.raises(ValueError, match='share one shape'):
    learned.learned_fusion(params, [x[0], x[1, :20]], model=model)
  with pytest.raises(ValueError, match='fuses RGB'):
    learned.learned_fusion(params, x[..., :1], model=model)
  with pytest.raises(ValueError, match='at least 8x8'):
    learned.learned_fusion(params, x[:, :5, :5], model=model)
  with pytest.raises(ValueError, match='NaN or Inf'):
    learned.learned_fusion(params, np.full_like(x, np.nan), model=model)


@pytest.mark.parametrize('prior_exponent', [None, 0.5])
def test_training_lowers_the_loss_on_a_fixed_batch(prior_exponent):
  """A few Adam steps on one multi-focus batch: the loss falls, with the
  prior's exponent learned or fixed."""
  batches = stacks.FusionBatches(
      'multifocus', photos=[stacks.bundled_photos()[0]], crop=48, ks=(2,),
      global_batch_size=2, seed=0)
  batch = batches.batch(0)
  model = fusion_model.FusionNet(widths=(8, 8), prior='focus', blend='spatial',
                                 low_res=12, prior_exponent=prior_exponent)
  state = fusion_steps.create_state(jax.random.key(0), model,
                                    optax.adam(3e-2), size=48)
  step = jax.jit(functools.partial(fusion_steps.train_step, loss='ssim_grad',
                                   grad_weight=0.05))
  losses = []
  for _ in range(12):
    state, metrics = step(state, batch, None)
    losses.append(float(metrics['loss']))
  assert losses[-1] < 0.9 * losses[0], losses
  assert ('prior_scale' in metrics) == (prior_exponent is None)


def _mixed_blur_setup():
  """(batch, model, state, loss kwargs): one small multi-focus batch with
  disc or Gaussian defocus and an untrained network, for the loss terms."""
  batches = stacks.FusionBatches(
      'multifocus', photos=[stacks.bundled_photos()[0]], crop=48, ks=(2,),
      global_batch_size=2, seed=0, defocus_blur='mixed')
  batch = batches.batch(0)
  model = fusion_model.FusionNet(widths=(8, 8), prior='focus', blend='spatial',
                                 low_res=12)
  state = fusion_steps.create_state(jax.random.key(0), model,
                                    optax.adam(3e-2), size=48)
  kw = dict(apply_fn=model.apply, batch=batch, loss='ssim_grad',
            smooth_weight=0.0, grad_weight=0.05)
  return batch, model, state, kw


def _ten_steps(state, batch, **term):
  """Ten Adam steps of the multi-focus loss plus `term` (a weight)."""
  step = jax.jit(functools.partial(fusion_steps.train_step, loss='ssim_grad',
                                   grad_weight=0.05, **term))
  for _ in range(10):
    state, metrics = step(state, batch, None)
  return state, metrics


def test_decisive_weight_adds_the_weight_entropy_and_lowers_it():
  """weight_entropy is 1 for equal weights and 0 for a hard choice; the
  decisive term adds w times it to the loss, and training with it leaves
  pixels closer to one source than training without."""
  half = jnp.full((1, 2, 3, 3), 0.5)
  hard = jnp.stack([jnp.ones((1, 3, 3)), jnp.zeros((1, 3, 3))], 1)
  assert float(fusion_steps.weight_entropy(half)) == pytest.approx(1.0)
  assert float(fusion_steps.weight_entropy(hard)) == pytest.approx(0.0,
                                                                 abs=1e-6)
  batch, model, state0, kw = _mixed_blur_setup()
  plain, m = fusion_steps.fusion_loss(state0.params, **kw)
  with_term, _ = fusion_steps.fusion_loss(state0.params, decisive_weight=0.3,
                                          **kw)
  assert float(with_term) == pytest.approx(
      float(plain) + 0.3 * float(m['weight_entropy']), rel=1e-5)
  entropies = {}
  for w in (0.0, 0.5):
    state, metrics = _ten_steps(state0, batch, decisive_weight=w)
    entropies[w] = float(metrics['weight_entropy'])
  assert entropies[0.5] < entropies[0.0] - 0.01, entropies
  scores = jax.jit(functools.partial(fusion_steps.pair_scores,
                                     apply_fn=model.apply))(state.params,
                                                            batch)
  assert 0.0 < float(scores['qabf']) < 1.0 and float(scores['mi']) > 1.0
  sharp = fusion_steps.sharp_pair_scores(batch)
  a, b = batch['sources'][:, 0], batch['sources'][:, 1]
  target = np.round(batch['target'] * 255) / 255
  assert float(sharp['qabf']) == pytest.approx(
      float(jnp.mean(image_metrics.qabf(a, b, target))), rel=1e-5)


def test_qabf_weight_adds_the_edge_term_and_raises_qabf():
  """The qabf term adds w (1 - Q^AB/F of the fused image against its
  sources), and training with it ends at a higher Q^AB/F than without."""
  batch, model, state0, kw = _mixed_blur_setup()
  plain, _ = fusion_steps.fusion_loss(state0.params, **kw)
  with_term, m = fusion_steps.fusion_loss(state0.params, qabf_weight=0.5, **kw)
  fused, _ = model.apply({'params': state0.params}, batch['sources'])
  q = image_metrics.qabf_sources(jnp.moveaxis(batch['sources'], 1, 0),
                                 jnp.clip(fused, 0, 1))
  assert float(m['qabf']) == pytest.approx(float(jnp.mean(q)), rel=1e-5)
  assert float(with_term) == pytest.approx(
      float(plain) + 0.5 * (1 - float(m['qabf'])), rel=1e-5)
  final = {}
  for w in (0.0, 2.0):
    state, _ = _ten_steps(state0, batch, qabf_weight=w)
    fused, _ = model.apply({'params': state.params}, batch['sources'])
    final[w] = float(jnp.mean(image_metrics.qabf_sources(
        jnp.moveaxis(batch['sources'], 1, 0), jnp.clip(fused, 0, 1))))
  assert final[2.0] > final[0.0], final


def test_disc_defocus_blurs_like_a_lens_and_names_bad_blurs():
  k = stacks.disc_kernel(3.0)
  assert k.shape == (7, 7) and k.sum() == pytest.approx(1.0)
  # Flat inside the disc, zero in the corners: unlike a Gaussian.
  assert k[3, 3] == pytest.approx(k[3, 2]) and k[0, 0] == 0.0
  rng = np.random.default_rng(1)
  photo = stacks.bundled_photos()[0][:96, :96]
  src, target = stacks.simulate_defocus(rng, photo, 2, blur='disc')
  err = np.abs(src - target[None]).mean(-1)
  assert np.mean(err.min(0) < 0.01) > 0.95
  assert np.all(err.max(axis=(1, 2)) > 0.05)
  # The default keeps the Gaussian sets earlier runs trained on.
  a = stacks.simulate_defocus(np.random.default_rng(4), photo, 2)
  b = stacks.simulate_defocus(np.random.default_rng(4), photo, 2,
                              blur='gaussian')
  np.testing.assert_array_equal(a[0], b[0])
  with pytest.raises(ValueError, match="defocus blur 'box'; expected one of"):
    stacks.simulate_defocus(rng, photo, 2, blur='box')
  with pytest.raises(ValueError, match="defocus_blur='box'"):
    stacks.FusionBatches('multifocus', photos=[photo], crop=48, ks=(2,),
                         global_batch_size=2, seed=0, defocus_blur='box')


def test_layered_defocus_spreads_a_nearer_blur_over_the_in_focus_region():
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(0).uniform(size=(48, 64, 3)).astype(np.float32)
  left = np.zeros((48, 64), np.float32)
  left[:, :32] = 1.0
  masks = np.stack([left, 1.0 - left])  # region 0 left, region 1 right
  calls = []

  def blur_layer(rgba, distance):
    calls.append(distance)
    return ndimage.gaussian_filter(rgba, (2.0, 2.0, 0), mode='reflect')

  depth = np.array([0, 1])  # region 0 nearer
  near = stacks.layered_defocus(x, masks, depth, 0, blur_layer)
  far = stacks.layered_defocus(x, masks, depth, 1, blur_layer)
  assert calls == [1, 1]
  err_near, err_far = (np.abs(v - x).mean(-1) for v in (near, far))
  # Focused on the near object: it is sharp right up to its edge (nothing
  # in front of it), and the blurred background is behind it.
  np.testing.assert_allclose(near[:, :32], x[:, :32], atol=1e-6)
  assert err_near[:, 40:].mean() > 0.05
  # Focused on the background: the near object's blurred edge covers the
  # first few background columns; farther out the background is sharp.
  assert err_far[:, 32:35].mean() > 0.05
  np.testing.assert_allclose(far[:, 44:], x[:, 44:], atol=1e-5)
  assert err_far[:, :24].mean() > 0.05
  # Whole sets: every region is sharp in its own source, reproducibly, and
  # unlike the masked model's sets from the same draws.
  rng = np.random.default_rng(2)
  photo = stacks.bundled_photos()[0][:96, :96]
  src, target = stacks.simulate_defocus(rng, photo, 3, layered=True)
  assert src.shape == (3, 96, 96, 3) and target.shape == (96, 96, 3)
  err = np.abs(src - target[None]).mean(-1)
  assert np.mean(err.min(0) < 0.01) > 0.8  # each pixel sharp in some source
  assert np.all(err.max(axis=(1, 2)) > 0.05)
  again, _ = stacks.simulate_defocus(np.random.default_rng(2), photo, 3,
                                     layered=True)
  np.testing.assert_array_equal(src, again)
  plain, _ = stacks.simulate_defocus(np.random.default_rng(2), photo, 3)
  assert not np.array_equal(plain, src)


def test_layered_variant_and_older_runs_configs():
  from gensynth.configs import common  # pylint: disable=g-import-not-at-top
  from gensynth.configs import fusion_multifocus  # pylint: disable=g-import-not-at-top
  assert not fusion_multifocus.get_config('bench,decisive').data.defocus_layers
  c = fusion_multifocus.get_config('bench,decisive,layered')
  assert c.data.defocus_layers and c.data.defocus_blur == 'mixed'
  old = fusion_multifocus.get_config('smoke').to_dict()
  del old['data']['defocus_layers']
  assert common.upgrade(old).data.defocus_layers is False
  photo = stacks.bundled_photos()[0][:96, :96]
  kw = dict(photos=[photo], crop=48, ks=(2,), global_batch_size=2, seed=0)
  a = stacks.FusionBatches('multifocus', defocus_layers=True, **kw)
  b = stacks.FusionBatches('multifocus', **kw)
  assert a.batch(3)['sources'].shape == b.batch(3)['sources'].shape
  np.testing.assert_array_equal(a.batch(3)['sources'], a.batch(3)['sources'])
  assert not np.array_equal(a.batch(3)['sources'], b.batch(3)['sources'])


def test_segment_regions_follow_the_photos_edges():
  """regions='segments': every segment of the photo lies whole in one
  region ('fields' cuts through segments), from the same random draws, so
  the sets differ only in where the regions are."""
  photo = stacks.bundled_photos()[0][:128, :128]
  x = photo.astype(np.float32) / 255
  labels = stacks.photo_segments(x)
  assert labels.shape == (128, 128) and 10 <= labels.max() + 1 <= 100

  def segments_split(region):  # segments holding more than one region
    return sum(len(np.unique(region[labels == i])) > 1
               for i in range(labels.max() + 1))

  rng_f, rng_s = np.random.default_rng(3), np.random.default_rng(3)
  by_fields = stacks.focus_regions(rng_f, x, 3, 'fields')
  by_segments = stacks.focus_regions(rng_s, x, 3, 'segments')
  assert segments_split(by_fields) > 0
  assert segments_split(by_segments) == 0
  assert len(np.unique(by_segments)) > 1
  assert rng_f.random() == rng_s.random()  # the same draws
  # A segment goes to the field largest on average over it.
  hand = np.array([[0, 0, 1, 1]] * 2)
  fields = np.array([[[5.0, -1, 0, 0]] * 2, [[0.0, 0, 1, 2]] * 2])
  np.testing.assert_array_equal(stacks.segment_regions(fields, hand),
                                [[0, 0, 1, 1]] * 2)
  # Whole sets: each pixel sharp in some source; the target unchanged.
  src, target = stacks.simulate_defocus(np.random.default_rng(5), photo, 2,
                                        regions='segments')
  plain, target_plain = stacks.simulate_defocus(np.random.default_rng(5),
                                                photo, 2)
  np.testing.assert_array_equal(target, target_plain)
  assert not np.array_equal(src, plain)
  err = np.abs(src - target[None]).mean(-1)
  assert np.mean(err.min(0) < 0.01) > 0.9
  with pytest.raises(ValueError, match="regions 'blobs'; expected one of"):
    stacks.simulate_defocus(rng_f, photo, 2, regions='blobs')
  with pytest.raises(ValueError, match="defocus_regions='blobs'"):
    stacks.FusionBatches('multifocus', photos=[photo], crop=48, ks=(2,),
                         global_batch_size=2, seed=0, defocus_regions='blobs')


def test_segments_variant_and_older_runs_configs():
  from gensynth.configs import common  # pylint: disable=g-import-not-at-top
  from gensynth.configs import fusion_multifocus  # pylint: disable=g-import-not-at-top
  from gensynth.train import fusion as fusion_train  # pylint: disable=g-import-not-at-top
  assert fusion_multifocus.get_config(
      'bench,decisive').data.defocus_regions == 'fields'
  c = fusion_multifocus.get_config('bench,decisive,segments')
  assert c.data.defocus_regions == 'segments' and c.data.defocus_blur == 'mixed'
  old = fusion_multifocus.get_config('smoke').to_dict()
  del old['data']['defocus_regions']
  assert common.upgrade(old).data.defocus_regions == 'fields'
  bad = fusion_multifocus.get_config('smoke')
  bad.data.defocus_regions = 'blobs'
  with pytest.raises(errors.ConfigError,
                     match="config.data.defocus_regions='blobs'"):
    fusion_train._validate(bad)  # pylint: disable=protected-access
  photo = stacks.bundled_photos()[0][:96, :96]
  kw = dict(photos=[photo], crop=48, ks=(2,), global_batch_size=2, seed=0)
  a = stacks.FusionBatches('multifocus', defocus_regions='segments', **kw)
  b = stacks.FusionBatches('multifocus', **kw)
  np.testing.assert_array_equal(a.batch(3)['target'], b.batch(3)['target'])
  np.testing.assert_array_equal(a.batch(3)['sources'], a.batch(3)['sources'])
  assert not np.array_equal(a.batch(3)['sources'], b.batch(3)['sources'])


@pytest.mark.parametrize('hw,low_res', [((540, 960), 8), ((97, 131), 32),
                                        ((33, 200), 8), ((1000, 3), 2)])
def test_banded_upsampling_equals_the_chain_of_pyr_up_steps(hw, low_res):
  sizes = fusion_model.level_sizes(hw, fusion_model.num_down(hw, low_res))
  x = jax.random.normal(jax.random.key(2), (2, 1) + sizes[-1])
  got = jax.jit(lambda v: fusion_model.upsample(v, sizes))(x)
  assert got.shape == (2, 1) + hw
  want = jax.jit(lambda v: fusion_model.upsample_steps(v, sizes))(x)
  np.testing.assert_allclose(got, want,
                             atol=2e-6)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize('hw,factor', [((2160, 384), 64), ((97, 131), 4),
                                       ((33, 200), 4), ((5, 9), 1)])
def test_area_down_is_the_mean_of_edge_padded_blocks(dtype, hw, factor):
  rng = np.random.default_rng(3)
  top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
  x = (rng.random((2,) + hw + (3,)) * top).astype(dtype)
  out_hw = tuple(-(-n // factor) for n in hw)
  padded = np.pad(x.astype(np.float64), [(0, 0), (0, out_hw[0] * factor -
                                                  hw[0]),
                                         (0, out_hw[1] * factor - hw[1]),
                                         (0, 0)], mode='edge')
  want = padded.reshape(2, out_hw[0], factor, out_hw[1], factor, 3).mean(
      axis=(2, 4))
  got = fusion_model.area_down(jnp.asarray(x), factor, out_hw)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * top)


@pytest.mark.parametrize('blend', ['pyramid', 'spatial'])
def test_half_resolution_weights_fuse_in_one_pass(blend):
  model = fusion_model.FusionNet(widths=(8, 8), low_res=8, weights_level=1,
                                 blend=blend)
  params = _random_params(model, jax.random.key(4), (1, 2, 16, 16, 3))
  fuse = jax.jit(functools.partial(learned.fusion_and_weights, model=model))
  x = _stack(3, 37, 53, seed=6)
  out, w = jax.device_get(fuse(params, x))
  assert out.shape == (37, 53, 3) and np.all(np.isfinite(out))
  assert w.shape == (3, 37, 53) and np.all(w >= 0)
  np.testing.assert_allclose(w.sum(0), 1.0, atol=1e-5)
  perm = [2, 0, 1]
  out_p, w_p = fuse(params, x[perm])
  np.testing.assert_allclose(out_p, out, atol=2e-5)
  np.testing.assert_allclose(w_p, w[perm], atol=1e-5)
  # Weights normalised per level: K copies of one image fuse to that image,
  # whatever weights the network gives them.
  same = np.stack([x[1]] * 3)
  np.testing.assert_allclose(fuse(params, same)[0], x[1], atol=2e-5)


def test_a_run_from_before_weights_level_loads_as_full_resolution():
  from gensynth.configs import common  # pylint: disable=g-import-not-at-top
  from gensynth.configs import fusion_exposure  # pylint: disable=g-import-not-at-top
  old = fusion_exposure.get_config('smoke').to_dict()
  del old['model']['weights_level']
  up = common.upgrade(old)
  assert up.model.weights_level == 0
  assert fusion_model.from_config(up.model).weights_level == 0
  del old['model']['prior_exponent']  # runs from before the fixed exponent
  assert common.upgrade(old).model.prior_exponent is None
  assert fusion_model.from_config(
      common.upgrade(old).model).prior_exponent is None
  assert 'image_size' not in up.data  # no generative data fields added
  with pytest.raises(ValueError, match='weights_level=2'):
    fusion_model.FusionNet(weights_level=2).init(
        jax.random.key(0), jnp.zeros((1, 2, 16, 16, 3)))


def test_multifocus_training_scores_validation_pairs_like_the_benchmark(
    tmp_path):
  """The multi-focus trainer's final metrics carry Q^AB/F and MI of the
  network, of its prior alone and of the sharp photo, on validation pairs."""
  # pylint: disable=g-import-not-at-top
  from gensynth.configs import fusion_multifocus
  from gensynth.train import fusion as fusion_train
  # pylint: enable=g-import-not-at-top
  config = fusion_multifocus.get_config('smoke')
  config.num_steps = 2
  final = fusion_train.train_and_evaluate(config, str(tmp_path))
  for name in ('', '_prior_only', '_sharp'):
    assert 0.2 < final['qabf' + name] < 1.0, final
    assert final['mi' + name] > 1.0, final
  # The sharp photo is not what any fusion of blurred sources gives.
  assert final['qabf_sharp'] != pytest.approx(final['qabf'], abs=1e-6)


def test_manyk_variant_is_the_k8_recipe_and_composes_with_the_others():
  from gensynth.configs import fusion_exposure  # pylint: disable=g-import-not-at-top
  c = fusion_exposure.get_config('fold2,sqrt,manyk')
  assert tuple(c.data.ks) == (2, 3, 4, 8)
  assert c.model.prior_exponent == 0.5 and c.data.fold == 2
  # The same config as the command-line override it replaces.
  by_flag = fusion_exposure.get_config('fold2,sqrt')
  assert tuple(by_flag.data.ks) == (2, 3, 4)
  by_flag.data.ks = (2, 3, 4, 8)
  assert c.to_dict() == by_flag.to_dict()
  # 'smoke' still shrinks it to seconds.
  assert tuple(fusion_exposure.get_config('smoke,manyk').data.ks) == (2,)
  with pytest.raises(errors.ConfigError, match='manyK'):
    fusion_exposure.get_config('manyK')


def _delta_shape(model, params, x):
  """Shape of the network's correction at its working size."""
  _, state = model.apply({'params': params}, x, mutable=['intermediates'])
  return state['intermediates']['delta'][0].shape


def test_a_fixed_working_scale_reads_every_image_size_at_the_training_scale():
  """down_levels=L works at 2^-L of any image; at the training crop's size it
  is the low_res network exactly, on larger images it reads finer pixels."""
  kw = dict(widths=(8, 8), low_res=8, prior='focus', blend='spatial')
  by_size = fusion_model.FusionNet(**kw)
  fixed = fusion_model.FusionNet(down_levels=2, **kw)
  params = _random_params(by_size, jax.random.key(3), (1, 2, 32, 32, 3))
  crop = _stack(2, 32, 32, seed=1)[None]  # num_down(32, low_res=8) = 2
  assert fusion_model.num_down((32, 32), 8) == 2
  np.testing.assert_array_equal(
      *[np.asarray(m.apply({'params': params}, crop)[0])
        for m in (by_size, fixed)])
  big = _stack(2, 128, 96, seed=2)[None]  # num_down = 4 (short side 96)
  assert _delta_shape(by_size, params, big) == (1, 2, 8, 6, 1)
  assert _delta_shape(fixed, params, big) == (1, 2, 32, 24, 1)
  out, w = fixed.apply({'params': params}, big)
  assert out.shape == (1, 128, 96, 3) and np.all(np.isfinite(out))
  np.testing.assert_allclose(np.asarray(w).sum(1), 1.0, atol=1e-5)
  # Small images: capped by the pyramid depth (a 4x4 image halves twice).
  assert _delta_shape(fusion_model.FusionNet(down_levels=9, **kw), params,
                      _stack(2, 4, 4)[None]) == (1, 2, 1, 1, 1)


@pytest.mark.parametrize('bad', [-1, 1.5, '2', True])
def test_a_bad_down_levels_is_a_config_error(bad):
  with pytest.raises(ValueError, match='down_levels'):
    fusion_model.FusionNet(widths=(8, 8), down_levels=bad).init(
        jax.random.key(0), jnp.zeros((1, 2, 16, 16, 3)))


def test_multifocus_recipe_works_at_its_crops_scale_and_older_runs_do_not():
  from gensynth.configs import common  # pylint: disable=g-import-not-at-top
  from gensynth.configs import fusion_multifocus  # pylint: disable=g-import-not-at-top
  from gensynth.configs import fusion_exposure  # pylint: disable=g-import-not-at-top
  c = fusion_multifocus.get_config('bench,decisive')
  assert c.model.down_levels == fusion_model.num_down(
      (c.data.crop, c.data.crop), c.model.low_res) == 2
  assert fusion_model.from_config(c.model).down_levels == 2
  # Exposure keeps the size-dependent working scale (its 4K time).
  assert fusion_exposure.get_config('fold0').model.down_levels is None
  old = c.to_dict()
  del old['model']['down_levels']
  up = common.upgrade(old)
  assert up.model.down_levels is None
  assert fusion_model.from_config(up.model).down_levels is None


def test_jpeg_sources_are_camera_jpegs_of_the_same_sets():
  """source_jpeg=(q, q): each source is the lossless set's source written as
  a JPEG of quality q and read back; the target and every other draw stay."""
  photo = stacks.bundled_photos()[0][:128, :128]
  kw = dict(photos=[photo], crop=64, ks=(2,), global_batch_size=2, seed=0)
  plain = stacks.FusionBatches('multifocus', **kw).batch(5)
  q75 = stacks.FusionBatches('multifocus', source_jpeg=(75, 75), **kw)
  got = q75.batch(5)
  np.testing.assert_array_equal(got['target'], plain['target'])
  want = np.stack([[stacks.jpeg_roundtrip(s, 75) for s in ex]
                   for ex in plain['sources']])
  np.testing.assert_array_equal(got['sources'], want)
  assert 0.002 < np.abs(got['sources'] - plain['sources']).mean() < 0.05
  np.testing.assert_array_equal(q75.batch(5)['sources'], got['sources'])
  # A range draws one quality per example: every example is one of them.
  ranged = stacks.FusionBatches('multifocus', source_jpeg=(60, 95), **kw)
  ex = ranged.example(5, 0, 2)
  assert any(np.array_equal(ex['sources'], np.stack(
      [stacks.jpeg_roundtrip(s, q) for s in plain['sources'][0]]))
             for q in range(60, 96))
  # Re-encoding a JPEG at its own quality changes it far less than the
  # first encoding changed the photo.
  x = photo.astype(np.float32) / 255
  once = stacks.jpeg_roundtrip(x, 75)
  twice = stacks.jpeg_roundtrip(once, 75)
  assert np.abs(twice - once).mean() < 0.2 * np.abs(once - x).mean()


@pytest.mark.parametrize('bad', [(0, 50), (80, 70), (75,), (75.0, 80),
                                 (50, 101)])
def test_bad_jpeg_qualities_are_config_errors(bad, tmp_path):
  from gensynth.configs import fusion_multifocus  # pylint: disable=g-import-not-at-top
  from gensynth.train import fusion as fusion_train  # pylint: disable=g-import-not-at-top
  photo = stacks.bundled_photos()[0][:96, :96]
  with pytest.raises(errors.ConfigError, match='source_jpeg'):
    stacks.FusionBatches('multifocus', photos=[photo], crop=48, ks=(2,),
                         global_batch_size=2, seed=0, source_jpeg=bad)
  config = fusion_multifocus.get_config('smoke')
  config.data.source_jpeg = bad
  with pytest.raises(errors.ConfigError, match='config.data.source_jpeg'):
    fusion_train.train_and_evaluate(config, str(tmp_path))


def test_jpeg_variant_and_older_runs_configs():
  from gensynth.configs import common  # pylint: disable=g-import-not-at-top
  from gensynth.configs import fusion_multifocus  # pylint: disable=g-import-not-at-top
  assert fusion_multifocus.get_config('bench,decisive').data.source_jpeg == ()
  c = fusion_multifocus.get_config('bench,decisive,jpeg')
  assert tuple(c.data.source_jpeg) == (60, 95)
  old = c.to_dict()
  del old['data']['source_jpeg']
  assert tuple(common.upgrade(old).data.source_jpeg) == ()

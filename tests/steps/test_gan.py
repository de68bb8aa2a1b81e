"""The pure GAN step: D and G updates, EMA, d_steps, R1, skipping NaN steps."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gensynth.models import gan
from gensynth.steps import gan as steps


def _state(classes=0, spectral=False, lr=1e-3):
  g = gan.Generator(16, 1, (8, 8), num_classes=classes)
  d = gan.Discriminator((8, 8), num_classes=classes, spectral_norm=spectral)
  return steps.create_state(jax.random.key(0), g, d, optax.adam(lr, 0.5),
                            optax.adam(lr, 0.5), latent_dim=4,
                            image_shape=(16, 16, 1))


def _batch(n, classes=3):
  x = jax.random.uniform(jax.random.key(5), (n, 16, 16, 1), minval=-1)
  return {'image': x, 'label': jnp.arange(n) % classes}


def _step(**kw):
  return jax.jit(functools.partial(steps.train_step, latent_dim=4, **kw))


def _max_diff(a, b):
  return max(jax.tree.leaves(jax.tree.map(
      lambda x, y: float(jnp.abs(x - y).max()), a, b)))


@pytest.mark.parametrize('loss', ['ns', 'hinge', 'wgan'])
def test_step_updates_both_networks(loss):
  s0 = _state(classes=3, spectral=True)
  s1, m = _step(num_classes=3, loss=loss, gp_weight=10.0 if loss == 'wgan'
                else 0.0)(s0, _batch(8), jax.random.key(1))
  assert int(s1.step) == 1
  assert _max_diff(s0.g_params, s1.g_params) > 0
  assert _max_diff(s0.d_params, s1.d_params) > 0
  assert _max_diff(s0.d_stats, s1.d_stats) > 0  # power iteration advanced
  assert all(np.isfinite(float(v)) for v in m.values())
  assert ('gp' in m) == (loss == 'wgan')


def test_ema_copies_before_start_then_averages():
  step = _step(ema_decay=0.9, ema_start=2)
  s = _state()
  for _ in range(2):
    s, _ = step(s, _batch(8), jax.random.key(1))
  assert _max_diff(s.ema_params, s.g_params) == 0.0
  prev_ema = s.ema_params
  s, _ = step(s, _batch(8), jax.random.key(1))
  want = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, prev_ema, s.g_params)
  assert _max_diff(want, s.ema_params) < 1e-6
  assert _max_diff(s.ema_params, s.g_params) > 0


def test_d_steps_use_distinct_micro_batches():
  # With d_steps=2 the step sees rows 0::2 then 1::2: swapping the rows within
  # each pair changes the order of D's updates, hence the result.
  b = _batch(8)
  swapped = {k: v.reshape((4, 2) + v.shape[1:])[:, ::-1].reshape(v.shape)
             for k, v in b.items()}
  step = _step(d_steps=2)
  a, _ = step(_state(), b, jax.random.key(1))
  c, _ = step(_state(), swapped, jax.random.key(1))
  assert _max_diff(a.d_params, c.d_params) > 1e-7
  with pytest.raises(ValueError, match='d_steps=3'):
    step3 = _step(d_steps=3)
    step3(_state(), b, jax.random.key(1))


def test_lazy_r1_runs_every_n_steps():
  step = _step(r1_weight=1.0, r1_every=2)
  s, r1s = _state(), []
  for _ in range(4):
    s, m = step(s, _batch(8), jax.random.key(1))
    r1s.append(float(m['r1']))
  assert r1s[0] > 0 and r1s[2] > 0 and r1s[1] == 0 and r1s[3] == 0


def test_lazy_r1_adds_its_weighted_gradient_to_d():
  """With plain SGD on D, D's update is linear in the R1 weight: the extra
  step is -lr * 0.5 * weight * r1_every * grad(R1) on R1 steps, 0 otherwise."""
  from gensynth.losses import adversarial  # pylint: disable=g-import-not-at-top
  g = gan.Generator(16, 1, (8, 8), num_classes=3)
  d = gan.Discriminator((8, 8), num_classes=3, mbstd_group=4)
  lr = 0.1
  s0 = steps.create_state(jax.random.key(0), g, d, optax.adam(1e-3, 0.5),
                          optax.sgd(lr), latent_dim=4,
                          image_shape=(16, 16, 1))
  b = _batch(8)
  run = lambda s, w: _step(num_classes=3, r1_weight=w, r1_every=2)(
      s, b, jax.random.key(1))[0].d_params
  base = run(s0, 0.0)
  r1_grad = jax.grad(lambda p: adversarial.r1_penalty(
      lambda x: d.apply({'params': p}, x, b['label']), b['image']))(
          s0.d_params)
  want = jax.tree.map(lambda a, r: a - lr * 0.5 * 3.0 * 2 * r, base, r1_grad)
  assert _max_diff(run(s0, 3.0), want) < 1e-5
  assert _max_diff(base, s0.d_params) > 1e-3  # the adversarial part moved D
  assert max(float(jnp.abs(r).max()) for r in jax.tree.leaves(r1_grad)) > 1e-3
  s1 = s0.replace(step=jnp.ones((), jnp.int32))  # no R1 on odd steps
  assert _max_diff(run(s1, 3.0), run(s1, 0.0)) == 0.0


def test_r1_now_fixed_on_the_host_equals_the_device_cond():
  s0 = _state(classes=3)
  b, key = _batch(8), jax.random.key(1)
  cond = _step(num_classes=3, r1_weight=1.0, r1_every=2)
  fixed = {now: _step(num_classes=3, r1_weight=1.0, r1_every=2, r1_now=now)
           for now in (True, False)}
  s_cond, s_fixed = s0, s0
  for i in range(3):
    s_cond, m_cond = cond(s_cond, b, key)
    s_fixed, m_fixed = fixed[i % 2 == 0](s_fixed, b, key)
    assert float(m_fixed['r1']) == pytest.approx(float(m_cond['r1']),
                                                 rel=1e-5)
  assert _max_diff(s_cond.d_params, s_fixed.d_params) < 1e-5
  assert _max_diff(s_cond.g_params, s_fixed.g_params) < 1e-5


def test_discriminator_learns_to_separate_a_fixed_batch():
  step = _step(loss='ns')
  s = _state(lr=2e-3)
  for _ in range(21):
    s, m = step(s, _batch(16), jax.random.key(1))
  assert float(m['d_real']) > float(m['d_fake'])


def test_skip_nonfinite_keeps_networks():
  s0 = _state()
  bad = _batch(8)
  bad['image'] = bad['image'].at[0, 0, 0, 0].set(jnp.nan)
  s1, m = _step(skip_nonfinite=True)(s0, bad, jax.random.key(1))
  assert float(m['skipped']) == 1.0 and int(s1.step) == 1
  assert _max_diff(s0.g_params, s1.g_params) == 0.0
  assert _max_diff(s0.d_params, s1.d_params) == 0.0
  _, m = _step()(s0, bad, jax.random.key(1))
  assert not np.isfinite(float(m['d_loss']))


def test_smooth_recipe_step_with_r1():
  """The `gan_mnist.py:smooth` layout (nearest-upsample G, minibatch-std D)
  trains through the same step, R1's grad-of-grad included."""
  from gensynth.configs import gan_mnist  # pylint: disable=g-import-not-at-top
  cfg = gan_mnist.get_config('cond,smooth')
  assert (cfg.model.g_upsample, cfg.model.d_mbstd_group) == ('nearest', 4)
  g = gan.Generator(16, 1, (8, 8), num_classes=3, upsample='nearest')
  d = gan.Discriminator((8, 8), num_classes=3, mbstd_group=4)
  s0 = steps.create_state(jax.random.key(0), g, d, optax.adam(1e-3, 0.5),
                          optax.adam(1e-3, 0.5), latent_dim=4,
                          image_shape=(16, 16, 1))
  step = _step(num_classes=3, r1_weight=1.0, r1_every=1)
  s1, m = step(s0, _batch(8), jax.random.key(1))
  s2, m = step(s1, _batch(8), jax.random.key(2))
  assert _max_diff(s0.g_params, s2.g_params) > 0
  assert _max_diff(s0.d_params, s2.d_params) > 0
  assert all(np.isfinite(float(v)) for v in m.values())
  assert float(m['r1']) > 0


@pytest.mark.parametrize('loss', ['ns', 'hinge'])
def test_shared_fakes_updates_are_exact_for_the_shared_latents(loss):
  """With SGD on both nets, shared_fakes moves D by -lr * grad of D's loss on
  G(z) and then G by -lr * grad of G's loss under the updated D at the same
  z (the latents drawn from the step's G key)."""
  from gensynth.losses import adversarial  # pylint: disable=g-import-not-at-top
  g = gan.Generator(16, 1, (8, 8), num_classes=3, upsample='nearest')
  d = gan.Discriminator((8, 8), num_classes=3, mbstd_group=4)
  lr = 0.05
  s0 = steps.create_state(jax.random.key(0), g, d, optax.sgd(lr),
                          optax.sgd(lr), latent_dim=4, image_shape=(16, 16, 1))
  b, key = _batch(8), jax.random.key(1)
  s1, m = _step(num_classes=3, loss=loss, shared_fakes=True)(s0, b, key)
  z, fy = steps._fake_inputs(  # pylint: disable=protected-access
      jax.random.fold_in(jax.random.fold_in(key, 0), 1), 8, latent_dim=4,
      num_classes=3)
  fake = g.apply({'params': s0.g_params}, z, fy)

  def d_loss(p):
    logits = d.apply({'params': p}, jnp.concatenate([b['image'], fake]),
                     jnp.concatenate([b['label'], fy]))
    return adversarial.d_loss(*jnp.split(logits, 2), kind=loss)

  d_want = jax.tree.map(lambda p, gr: p - lr * gr, s0.d_params,
                        jax.grad(d_loss)(s0.d_params))
  assert _max_diff(s1.d_params, d_want) < 1e-5
  g_grad = jax.grad(lambda p: adversarial.g_loss(d.apply(
      {'params': d_want}, g.apply({'params': p}, z, fy), fy), kind=loss))(
          s0.g_params)
  g_want = jax.tree.map(lambda p, gr: p - lr * gr, s0.g_params, g_grad)
  assert _max_diff(s1.g_params, g_want) < 1e-5
  assert _max_diff(s1.g_params, s0.g_params) > 1e-4
  # Fresh latents for G (the default) give another G update.
  s_fresh, _ = _step(num_classes=3, loss=loss)(s0, b, key)
  assert _max_diff(s_fresh.g_params, s1.g_params) > 1e-5
  assert np.isfinite(float(m['g_loss']))


def test_shared_fakes_with_r1_matches_the_cond_form_and_needs_one_d_step():
  s0 = _state(classes=3)
  b, key = _batch(8), jax.random.key(1)
  kw = dict(num_classes=3, r1_weight=1.0, r1_every=2, shared_fakes=True)
  cond, fixed = _step(**kw), {n: _step(r1_now=n, **kw) for n in (True, False)}
  s_cond = s_fixed = s0
  for i in range(3):
    s_cond, _ = cond(s_cond, b, key)
    s_fixed, _ = fixed[i % 2 == 0](s_fixed, b, key)
  assert _max_diff(s_cond.g_params, s_fixed.g_params) < 1e-5
  with pytest.raises(ValueError, match='shared_fakes needs d_steps=1'):
    _step(shared_fakes=True, d_steps=2)(s0, b, key)


@pytest.mark.parametrize('loss', ['ns', 'hinge'])
def test_matching_aware_d_update_is_exact_and_skips_rows_that_match(loss):
  """With SGD, mismatch_weight=w moves D by -lr * grad of D's loss plus w
  times the fake-side loss of each real image paired with the previous row's
  class id (D called afresh on the rolled ids), averaged over the rows whose
  rolled id differs; rows 0 and 1 below share a class and are left out."""
  from gensynth.losses import adversarial  # pylint: disable=g-import-not-at-top
  g = gan.Generator(16, 1, (8, 8), num_classes=3, upsample='nearest')
  d = gan.Discriminator((8, 8), num_classes=3)
  lr, w = 0.05, 0.7
  s0 = steps.create_state(jax.random.key(0), g, d, optax.sgd(lr),
                          optax.sgd(lr), latent_dim=4, image_shape=(16, 16, 1))
  b = dict(_batch(8), label=jnp.array([2, 2, 0, 1, 2, 0, 1, 0]))
  key = jax.random.key(1)
  kw = dict(num_classes=3, loss=loss, shared_fakes=True)
  s1, m = _step(mismatch_weight=w, **kw)(s0, b, key)
  z, fy = steps._fake_inputs(  # pylint: disable=protected-access
      jax.random.fold_in(jax.random.fold_in(key, 0), 1), 8, latent_dim=4,
      num_classes=3)
  fake = g.apply({'params': s0.g_params}, z, fy)
  rolled = jnp.roll(b['label'], 1)
  differs = np.asarray(rolled != b['label'])
  assert differs.sum() == 7 and not differs[1]

  def d_loss(p):
    logits = d.apply({'params': p}, jnp.concatenate([b['image'], fake]),
                     jnp.concatenate([b['label'], fy]))
    mis = d.apply({'params': p}, b['image'], rolled)[differs]
    return (adversarial.d_loss(*jnp.split(logits, 2), kind=loss) +
            w * jnp.mean(adversarial.d_fake_terms(mis, kind=loss)))

  d_want = jax.tree.map(lambda p, gr: p - lr * gr, s0.d_params,
                        jax.grad(d_loss)(s0.d_params))
  assert _max_diff(s1.d_params, d_want) < 1e-5
  # The term changes the update, and the plain step does not report it.
  s_plain, m_plain = _step(**kw)(s0, b, key)
  assert _max_diff(s_plain.d_params, s1.d_params) > 1e-4
  assert 'd_mismatch' in m and 'd_mismatch' not in m_plain
  with pytest.raises(ValueError, match='mismatch_weight=0.5 needs a '
                     'conditional GAN'):
    _step(mismatch_weight=0.5)(_state(), _batch(8), key)


def test_discriminator_parts_compose_to_its_logits():
  d = gan.Discriminator((8, 8), num_classes=3, mbstd_group=4)
  x, y = _batch(8)['image'], _batch(8)['label']
  params = d.init(jax.random.key(0), x, y)
  base, proj, phi = d.apply(params, x, y, parts=True)
  np.testing.assert_allclose(base + jnp.sum(proj * phi, -1),
                             d.apply(params, x, y), atol=1e-6)
  u = gan.Discriminator((8, 8))
  up = u.init(jax.random.key(0), x)
  base, proj, _ = u.apply(up, x, parts=True)
  assert proj is None
  np.testing.assert_allclose(base, u.apply(up, x), atol=1e-6)


def _sgd_step_with(lr, **term):
  """A 3-class G and D under SGD, one shared-fakes hinge step with `term`
  (a loss weight): (g, d, state before, batch, key, step options, (state
  after, metrics), the fakes' latents and class ids)."""
  g = gan.Generator(16, 1, (8, 8), num_classes=3, upsample='nearest')
  d = gan.Discriminator((8, 8), num_classes=3)
  s0 = steps.create_state(jax.random.key(0), g, d, optax.sgd(lr),
                          optax.sgd(lr), latent_dim=4, image_shape=(16, 16, 1))
  b, key = _batch(8), jax.random.key(1)
  kw = dict(num_classes=3, loss='hinge', shared_fakes=True)
  out = _step(**term, **kw)(s0, b, key)
  z, fy = steps._fake_inputs(  # pylint: disable=protected-access
      jax.random.fold_in(jax.random.fold_in(key, 0), 1), 8, latent_dim=4,
      num_classes=3)
  return g, d, s0, b, key, kw, out, z, fy


def test_mode_seeking_term_pairs_conditions_and_is_exact():
  """With SGD and shared fakes, mode_seeking_weight=w pairs the fakes'
  class ids in two equal halves and moves G by -lr * grad of G's loss plus
  w / (lz + 1e-5), lz = mean |G(z1) - G(z2)| / mean |z1 - z2|."""
  from gensynth.losses import adversarial  # pylint: disable=g-import-not-at-top
  lr, w = 0.05, 0.5
  g, d, s0, b, key, kw, (s1, m), z, fy = _sgd_step_with(
      lr, mode_seeking_weight=w)
  fy = jnp.concatenate([fy[:4], fy[:4]])
  fake = g.apply({'params': s0.g_params}, z, fy)

  def d_loss(p):
    logits = d.apply({'params': p}, jnp.concatenate([b['image'], fake]),
                     jnp.concatenate([b['label'], fy]))
    return adversarial.d_loss(*jnp.split(logits, 2), kind='hinge')

  d_want = jax.tree.map(lambda p, gr: p - lr * gr, s0.d_params,
                        jax.grad(d_loss)(s0.d_params))
  assert _max_diff(s1.d_params, d_want) < 1e-5

  def g_loss(p):
    x = g.apply({'params': p}, z, fy)
    lz = jnp.mean(jnp.abs(x[:4] - x[4:])) / jnp.mean(jnp.abs(z[:4] - z[4:]))
    return (adversarial.g_loss(d.apply({'params': d_want}, x, fy),
                               kind='hinge') + w / (lz + 1e-5))

  g_want = jax.tree.map(lambda p, gr: p - lr * gr, s0.g_params,
                        jax.grad(g_loss)(s0.g_params))
  assert _max_diff(s1.g_params, g_want) < 1e-5
  assert float(m['mode_seeking']) > 0
  # Without shared fakes the term still applies (and G's update differs).
  s2, m2 = _step(num_classes=3, loss='hinge', mode_seeking_weight=w)(s0, b,
                                                                     key)
  assert 'mode_seeking' in m2 and np.isfinite(float(m2['g_loss']))
  with pytest.raises(ValueError, match='must be even'):
    _step(mode_seeking_weight=w, **kw)(s0, _batch(7), key)


def test_contrastive_loss_reads_the_projection_and_skips_same_conditions():
  """Row i's logits are phi_i . proj_j; rows with row i's own condition are
  not its negatives; features aligned with their own projection score
  lower than shuffled ones."""
  rng = np.random.default_rng(0)
  proj = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
  phi = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
  labels = jnp.array([0, 1, 0, 2, 3])
  logits = np.asarray(phi @ proj.T)
  want = []
  for i in range(5):
    keep = [j for j in range(5) if j == i or labels[j] != labels[i]]
    row = logits[i, keep]
    want.append(np.log(np.exp(row).sum()) - logits[i, i])
  np.testing.assert_allclose(steps.contrastive_loss(proj, phi, labels),
                             np.mean(want), rtol=1e-5)
  # Token-id conditions [N, L] compare whole rows.
  tokens = jnp.array([[1, 2], [1, 3], [1, 2], [4, 0], [2, 2]])
  np.testing.assert_allclose(steps.contrastive_loss(proj, phi, tokens),
                             np.mean(want), rtol=1e-5)
  aligned = steps.contrastive_loss(proj, 4.0 * proj, jnp.arange(5))
  shuffled = steps.contrastive_loss(proj, 4.0 * proj[::-1], jnp.arange(5))
  assert float(aligned) < float(shuffled)
  # Per row, match_scores is the negated term: own logit - logsumexp.
  np.testing.assert_allclose(steps.match_scores(proj, phi, labels),
                             -np.asarray(want), rtol=1e-5, atol=1e-6)
  # With one condition for every row there is nothing to match against.
  np.testing.assert_allclose(
      steps.match_scores(proj, phi, jnp.zeros(5, jnp.int32)), 0.0, atol=1e-6)


def test_contrastive_term_is_exact_in_both_updates():
  """With SGD and shared fakes, contrastive_weight=w adds w times
  contrastive_loss on D's parts of the real images to D's loss and of the
  fakes (scored by the updated D) to G's."""
  from gensynth.losses import adversarial  # pylint: disable=g-import-not-at-top
  lr, w = 0.05, 0.5
  g, d, s0, b, key, kw, (s1, m), z, fy = _sgd_step_with(
      lr, contrastive_weight=w)
  fake = g.apply({'params': s0.g_params}, z, fy)

  def d_loss(p):
    logits = d.apply({'params': p}, jnp.concatenate([b['image'], fake]),
                     jnp.concatenate([b['label'], fy]))
    _, proj, phi = d.apply({'params': p}, b['image'], b['label'], parts=True)
    return (adversarial.d_loss(*jnp.split(logits, 2), kind='hinge') +
            w * steps.contrastive_loss(proj, phi, b['label']))

  d_want = jax.tree.map(lambda p, gr: p - lr * gr, s0.d_params,
                        jax.grad(d_loss)(s0.d_params))
  assert _max_diff(s1.d_params, d_want) < 1e-5

  def g_loss(p):
    x = g.apply({'params': p}, z, fy)
    base, proj, phi = d.apply({'params': d_want}, x, fy, parts=True)
    return (adversarial.g_loss(base + jnp.sum(proj * phi, -1), kind='hinge')
            + w * steps.contrastive_loss(proj, phi, fy))

  g_want = jax.tree.map(lambda p, gr: p - lr * gr, s0.g_params,
                        jax.grad(g_loss)(s0.g_params))
  assert _max_diff(s1.g_params, g_want) < 1e-5
  assert {'d_contrastive', 'g_contrastive'} <= set(m)
  s_plain, m_plain = _step(**kw)(s0, b, key)
  assert _max_diff(s_plain.g_params, s1.g_params) > 1e-5
  assert 'g_contrastive' not in m_plain
  with pytest.raises(ValueError, match='contrastive_weight=0.5 needs a '
                     'conditional GAN'):
    _step(contrastive_weight=0.5)(_state(), _batch(8), key)

"""Pure GAN steps: one `train_step(state, batch, key)` updates D then G.

The state keeps both networks' parameters and optimizer states, the EMA of the
generator weights (used for sampling and evaluation) and D's spectral-norm
vectors side by side. Options are keyword-only and bound with
functools.partial before the trainer compiles the step once.

With `d_steps = k > 1` the global batch holds k real micro-batches: row
`i * k + j` belongs to micro-batch j, so every micro-batch is spread evenly
over the devices (rows stay where they are; no data moves between devices).
"""

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from gensynth import errors
from gensynth.losses import adversarial
from gensynth.models import conditioning


@flax.struct.dataclass
class GANState:
  step: jax.Array
  g_params: Any
  d_params: Any
  g_opt_state: Any
  d_opt_state: Any
  ema_params: Any
  d_stats: Any  # D's spectral-norm vectors ({} without spectral norm)
  g_apply: Callable = flax.struct.field(pytree_node=False)
  d_apply: Callable = flax.struct.field(pytree_node=False)
  g_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  d_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)


def create_state(key, generator, discriminator, g_tx, d_tx, *, latent_dim,
                 image_shape, cond_spec=None):
  """Initialises both networks, their optimizers and the EMA copy of G (the
  condition input shaped as `cond_spec` says; class ids if None)."""
  g_key, d_key = jax.random.split(key)
  z = jnp.zeros((1, latent_dim))
  labels = (jnp.zeros((1,), jnp.int32) if cond_spec is None else
            conditioning.dummy(cond_spec))
  g_params = generator.init(g_key, z, labels)['params']
  d_vars = discriminator.init(d_key, jnp.zeros((1,) + tuple(image_shape)),
                              labels)
  d_params = d_vars['params']
  return GANState(
      step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
      g_opt_state=g_tx.init(g_params), d_opt_state=d_tx.init(d_params),
      ema_params=g_params, d_stats=dict(d_vars.get('spectral', {})),
      g_apply=generator.apply, d_apply=discriminator.apply, g_tx=g_tx,
      d_tx=d_tx)


def generate(g_apply, params, z, labels=None):
  """Generator output [N, H, W, C] in [-1, 1] (a pure function of z, labels)."""
  return g_apply({'params': params}, z, labels)


def _discriminate(state, d_params, x, labels, *, update_stats, parts=False):
  """D logits (or with parts, D's (logit, proj, phi) parts), and D's updated
  spectral-norm vectors."""
  kw = dict(parts=True) if parts else {}
  if not state.d_stats:
    return state.d_apply({'params': d_params}, x, labels, **kw), state.d_stats
  variables = {'params': d_params, 'spectral': state.d_stats}
  if not update_stats:
    return state.d_apply(variables, x, labels, **kw), state.d_stats
  logits, new = state.d_apply(variables, x, labels, update_stats=True,
                              mutable=['spectral'], **kw)
  return logits, new['spectral']


def mismatched_logits(base, proj, phi, labels):
  """Logits of each image paired with the previous row's condition (rows
  rolled by one; row 0 takes the last row's), from D's parts; and a mask
  that is 0 where that condition equals the row's own (a pair that is not
  mismatched at all)."""
  other = jnp.roll(proj, 1, axis=0)
  logits = base + jnp.sum(other * phi, axis=-1)
  flat = labels.reshape(labels.shape[0], -1)
  differs = jnp.any(flat != jnp.roll(flat, 1, axis=0), axis=-1)
  return logits, differs.astype(logits.dtype)


def match_scores(proj, phi, labels):
  """Per row i, the log-probability D's projection gives row i's own
  condition among the batch's conditions: phi_i . proj_i - logsumexp_j
  phi_i . proj_j over j = i and every row j whose condition differs from row
  i's (rows with the same class or caption are left out). 0 where no other
  row's condition differs. [N]"""
  n = phi.shape[0]
  logits = phi @ proj.T  # [N, N]
  flat = labels.reshape(n, -1)
  same = jnp.all(flat[:, None] == flat[None], axis=-1)
  logits = jnp.where(same & ~jnp.eye(n, dtype=bool), -1e9, logits)
  return jnp.diagonal(logits) - jax.nn.logsumexp(logits, axis=-1)


def contrastive_loss(proj, phi, labels):
  """Image-condition contrastive loss over the batch (the sentence-image
  term of XMC-GAN, Zhang et al. 2021, on D's own projection): row i's
  image features phi_i score every row's condition projection proj_j by
  the projection logit phi_i . proj_j, and cross-entropy asks for its own
  condition. Rows whose condition equals row i's (the same class or
  caption) are left out of its negatives. Mean over rows: -mean of
  `match_scores`."""
  return -jnp.mean(match_scores(proj, phi, labels))


def _fake_inputs(key, n, *, latent_dim, num_classes, conds=None):
  """Latents, and the fakes' conditions: `conds` (taken from the data) if
  given, else uniform class ids (or None when unconditional)."""
  z_key, y_key = jax.random.split(key)
  z = jax.random.normal(z_key, (n, latent_dim))
  if conds is not None:
    return z, conds
  labels = (jax.random.randint(y_key, (n,), 0, num_classes)
            if num_classes else None)
  return z, labels


def _d_update(state, real, real_labels, key, *, loss, gp_weight, r1_weight,
              r1_every, r1_now, latent_dim, num_classes, fakes=None,
              cond_from_data=False, mismatch_weight=0.0,
              contrastive_weight=0.0):
  """One discriminator step on one real micro-batch.

  `fakes` = (images, labels) is a fake batch the caller already generated;
  None draws and generates one here (conditioned on the real micro-batch's
  conditions with cond_from_data). mismatch_weight > 0 adds the
  matching-aware term: real images paired with another row's condition
  count as fakes (Reed et al., 2016), from the same forward pass.
  contrastive_weight > 0 adds `contrastive_loss` on the real images.
  """
  for name, weight in (('mismatch_weight', mismatch_weight),
                       ('contrastive_weight', contrastive_weight)):
    if weight and real_labels is None:
      raise errors.InputError(
          f'{name}={weight} needs a conditional GAN (class ids, vectors or '
          'captions): an unconditional D has no condition to compare.')
  mismatch = bool(mismatch_weight)
  parts = mismatch or bool(contrastive_weight)
  z_key, gp_key = jax.random.split(key)
  if fakes is None:
    z, fake_labels = _fake_inputs(
        z_key, real.shape[0], latent_dim=latent_dim, num_classes=num_classes,
        conds=real_labels if cond_from_data else None)
    fake = generate(state.g_apply, state.g_params, z, fake_labels)
  else:
    fake, fake_labels = fakes
  fake = jax.lax.stop_gradient(fake)
  do_r1 = (state.step % r1_every) == 0

  def loss_fn(d_params):
    both = jnp.concatenate([real, fake])
    labels = (None if real_labels is None else
              jnp.concatenate([real_labels, fake_labels]))
    out, stats = _discriminate(state, d_params, both, labels,
                               update_stats=True, parts=parts)
    if parts:
      base, proj, phi = out
      logits = base + jnp.sum(proj * phi, axis=-1)
    else:
      logits = out
    real_logits, fake_logits = jnp.split(logits, 2)
    total = adversarial.d_loss(real_logits, fake_logits, kind=loss)
    aux = {'d_loss': total, 'd_real': jnp.mean(real_logits),
           'd_fake': jnp.mean(fake_logits)}
    if mismatch:
      n = real.shape[0]
      mis, differs = mismatched_logits(base[:n], proj[:n], phi[:n],
                                       real_labels)
      # Means over the rows whose rolled condition differs.
      mean = lambda v: jnp.sum(v * differs) / jnp.maximum(jnp.sum(differs),
                                                          1.0)
      total += mismatch_weight * mean(adversarial.d_fake_terms(mis,
                                                               kind=loss))
      aux['d_mismatch'] = mean(mis)
    if contrastive_weight:
      n = real.shape[0]
      cl = contrastive_loss(proj[:n], phi[:n], real_labels)
      total += contrastive_weight * cl
      aux['d_contrastive'] = cl
    d_fn = lambda lbl: (lambda x: _discriminate(
        state, d_params, x, lbl, update_stats=False)[0])
    if gp_weight:
      gp = adversarial.gradient_penalty(gp_key, d_fn(real_labels), real, fake)
      total += gp_weight * gp
      aux['gp'] = gp
    return total, (aux, stats)

  (_, (aux, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.d_params)
  if r1_weight:
    # Lazy R1: its gradient is computed every r1_every steps and weighted up
    # to compensate, outside the differentiated loss.
    def r1_grads():
      return jax.value_and_grad(lambda p: adversarial.r1_penalty(
          lambda x: _discriminate(state, p, x, real_labels,
                                  update_stats=False)[0], real))(
                                      state.d_params)
    no_r1 = lambda: (jnp.zeros((), real.dtype), jax.tree.map(
        jnp.zeros_like, state.d_params))
    if r1_now is None:
      r1, r1_g = jax.lax.cond(do_r1, r1_grads, no_r1)
    else:
      r1, r1_g = r1_grads() if r1_now else no_r1()
    c = 0.5 * r1_weight * r1_every
    grads = jax.tree.map(lambda g, r: g + c * r, grads, r1_g)
    aux['r1'] = r1
  updates, d_opt_state = state.d_tx.update(grads, state.d_opt_state,
                                           state.d_params)
  state = state.replace(d_params=optax.apply_updates(state.d_params, updates),
                        d_opt_state=d_opt_state, d_stats=stats)
  return state, dict(aux, d_grad_norm=optax.global_norm(grads))


def mode_seeking_loss(fake, z):
  """MSGAN's term (Mao et al., 2019): 1 / (lz + 1e-5) with lz = mean |G(z1, c)
  - G(z2, c)| / mean |z1 - z2|, the two halves of the batch being the same
  conditions under other latents. Minimising it pushes samples of one
  condition apart in proportion to their latents' distance."""
  half = fake.shape[0] // 2
  lz = jnp.mean(jnp.abs(fake[:half] - fake[half:2 * half])) / jnp.mean(
      jnp.abs(z[:half] - z[half:2 * half]))
  return 1.0 / (lz + 1e-5)


def paired_conditions(labels):
  """The batch's conditions with the second half a copy of the first (for
  `mode_seeking_loss`); None stays None."""
  if labels is None:
    return None
  half = labels.shape[0] // 2
  return jnp.concatenate([labels[:half], labels[:half]])


def _g_update(state, n, key, *, loss, latent_dim, num_classes, fakes=None,
              conds=None, mode_seeking_weight=0.0, contrastive_weight=0.0):
  """One generator step on n fresh fakes (conditioned on `conds` if given),
  or on `fakes` = (images, labels, vjp of the generator at state.g_params,
  latents) generated before D's update. mode_seeking_weight > 0 adds that
  times `mode_seeking_loss` (the fakes' halves then share conditions);
  contrastive_weight > 0 adds `contrastive_loss` on the fakes."""

  def loss_of(fake, labels, z):
    out, _ = _discriminate(state, state.d_params, fake, labels,
                           update_stats=False, parts=bool(contrastive_weight))
    extra = {}
    if contrastive_weight:
      base, proj, phi = out
      logits = base + jnp.sum(proj * phi, axis=-1)
      extra['g_contrastive'] = contrastive_loss(proj, phi, labels)
    else:
      logits = out
    value = adversarial.g_loss(logits, kind=loss)
    total = value + contrastive_weight * extra.get('g_contrastive', 0.0)
    if mode_seeking_weight:
      ms = mode_seeking_loss(fake, z)
      total = total + mode_seeking_weight * ms
      extra['mode_seeking'] = ms
    return total, (value, extra)

  if fakes is None:
    z, labels = _fake_inputs(key, n, latent_dim=latent_dim,
                             num_classes=num_classes, conds=conds)
    if mode_seeking_weight:
      labels = paired_conditions(labels)
    (_, (g_loss, extra)), grads = jax.value_and_grad(
        lambda p: loss_of(generate(state.g_apply, p, z, labels), labels, z),
        has_aux=True)(state.g_params)
  else:
    fake, labels, g_vjp, z = fakes
    (_, (g_loss, extra)), d_fake = jax.value_and_grad(loss_of, has_aux=True)(
        fake, labels, z)
    grads, = g_vjp(d_fake)
  updates, g_opt_state = state.g_tx.update(grads, state.g_opt_state,
                                           state.g_params)
  state = state.replace(g_params=optax.apply_updates(state.g_params, updates),
                        g_opt_state=g_opt_state)
  metrics = {'g_loss': g_loss, 'g_grad_norm': optax.global_norm(grads),
             **extra}
  return state, metrics


def ema_decay_at(step, *, decay, start):
  """EMA decay at `step`: 0 (copy G) before `start`, then `decay`."""
  return jnp.where(step < start, 0.0, decay)


def train_step(state, batch, key, *, latent_dim, num_classes=0, loss='ns',
               d_steps=1, gp_weight=0.0, r1_weight=0.0, r1_every=1,
               r1_now=None, shared_fakes=False, ema_decay=0.999, ema_start=0,
               skip_nonfinite=False, cond_from_data=False,
               mismatch_weight=0.0, mode_seeking_weight=0.0,
               contrastive_weight=0.0):
  """`d_steps` discriminator updates, one generator update, one EMA update.

  num_classes > 0 makes both networks class-conditional: real images keep
  their labels, fakes get uniformly drawn ones. With cond_from_data the
  condition is batch['cond'] (vectors or token ids): D's fakes take their
  real micro-batch's conditions, G's fakes a random permutation of the
  batch's (the data's joint distribution of conditions, which need not be
  uniform or even enumerable). With skip_nonfinite, a step
  with a NaN/Inf loss or gradient keeps the previous networks (the counter
  still advances) and reports skipped=1. mismatch_weight > 0 makes D
  matching-aware: it also learns to call real images with another example's
  condition fake (`_d_update`). mode_seeking_weight > 0 adds MSGAN's
  diversity term to G's loss (`mode_seeking_loss`); G's fakes then come in
  two halves with the same conditions, and the batch must be even.
  contrastive_weight > 0 adds `contrastive_loss` to D's loss on the real
  images and to G's on the fakes.

  Lazy R1 (r1_weight > 0) runs on steps where state.step % r1_every == 0:
  with r1_now=None the step decides that itself (a `lax.cond`); r1_now=True
  or False fixes it at trace time, so a loop that knows the step number on
  the host can jit one variant of each and call the right one. Prefer that
  on XLA:CPU: convolution weight gradients inside a conditional's branch
  compile to a naive loop there (`launch.benchmark --bench=gan_throughput`
  on the r1 variant; `train.gan.make_step_for` does the host-side choice).
  """
  key = jax.random.fold_in(key, state.step)
  images = batch['image']
  n = images.shape[0] // d_steps
  if n * d_steps != images.shape[0]:
    raise errors.InputError(f'batch of {images.shape[0]} does not split into '
                            f'd_steps={d_steps} micro-batches.')
  micro = lambda x, j: x.reshape((n, d_steps) + x.shape[1:])[:, j]
  old = state
  opts = dict(latent_dim=latent_dim, num_classes=num_classes, loss=loss)
  g_key = jax.random.fold_in(key, d_steps)
  conds = real_conds = g_conds = None
  if cond_from_data:
    if 'cond' not in batch:
      raise errors.InputError(
          "cond_from_data needs batch['cond'] (vector or text conditions).")
    conds = batch['cond']
    real_conds = lambda j: micro(conds, j)
    perm = jax.random.permutation(jax.random.fold_in(key, d_steps + 1),
                                  conds.shape[0])[:n]
    g_conds = conds[perm]
  elif num_classes:
    real_conds = lambda j: micro(batch['label'], j)
  if mode_seeking_weight:
    if n % 2:
      raise errors.InputError(
          f'mode_seeking_weight={mode_seeking_weight} pairs the fakes in two '
          f'halves: the batch of {n} per update must be even.')
    if g_conds is not None:
      g_conds = paired_conditions(g_conds)
  d_fakes = g_fakes = None
  if shared_fakes:
    if d_steps != 1:
      raise errors.InputError(
          f'shared_fakes needs d_steps=1 (got d_steps={d_steps}): '
          'one fake batch serves one D and one G update.')
    z, fake_labels = _fake_inputs(
        g_key, n, latent_dim=latent_dim, num_classes=num_classes,
        conds=real_conds(0) if cond_from_data else None)
    if mode_seeking_weight:
      fake_labels = paired_conditions(fake_labels)
    fake, g_vjp = jax.vjp(
        lambda p: generate(state.g_apply, p, z, fake_labels), state.g_params)
    d_fakes, g_fakes = (fake, fake_labels), (fake, fake_labels, g_vjp, z)
  metrics = {}
  for j in range(d_steps):
    state, m = _d_update(
        state, micro(images, j), real_conds(j) if real_conds else None,
        jax.random.fold_in(key, j), gp_weight=gp_weight, r1_weight=r1_weight,
        r1_every=r1_every, r1_now=r1_now, fakes=d_fakes,
        cond_from_data=cond_from_data, mismatch_weight=mismatch_weight,
        contrastive_weight=contrastive_weight, **opts)
    metrics = m if not metrics else jax.tree.map(jnp.add, metrics, m)
  metrics = jax.tree.map(lambda v: v / d_steps, metrics)
  state, g_metrics = _g_update(state, n, g_key, fakes=g_fakes, conds=g_conds,
                               mode_seeking_weight=mode_seeking_weight,
                               contrastive_weight=contrastive_weight,
                               **opts)
  beta = ema_decay_at(state.step, decay=ema_decay, start=ema_start)
  ema = jax.tree.map(lambda e, p: beta * e + (1.0 - beta) * p,
                     state.ema_params, state.g_params)
  state = state.replace(ema_params=ema, step=state.step + 1)
  metrics = dict(metrics, **g_metrics)
  if skip_nonfinite:
    ok = jnp.all(jnp.stack([jnp.isfinite(v) for v in metrics.values()]))
    keep = lambda new, prev: jax.tree.map(
        lambda a, b: jnp.where(ok, a, b), new, prev)
    state = keep(state.replace(step=old.step + 1), old.replace(
        step=old.step + 1))
    metrics = {k: jnp.where(ok, v, 0.0) for k, v in metrics.items()}
    metrics['skipped'] = 1.0 - ok.astype(jnp.float32)
  return state, metrics


def sample(params, key, labels=None, *, g_apply, num, latent_dim,
           latent_scale=1.0):
  """`num` images from latents psi * N(0, I), psi = `latent_scale` (1: the
  prior G was trained on; < 1: the truncation trick), labels [num] for a
  conditional G."""
  z = latent_scale * jax.random.normal(key, (num, latent_dim))
  return generate(g_apply, params, z, labels)


def discriminator_variables(state):
  """D's variables for scoring outside training: its parameters and, with
  spectral norm, its power-iteration vectors (never updated here)."""
  if not state.d_stats:
    return {'params': state.d_params}
  return {'params': state.d_params, 'spectral': state.d_stats}


SELECTIONS = ('logit', 'match', 'both')


def check_selection(select, conditional=True):
  """select: what best-of-K sampling ranks candidates by (SELECTIONS)."""
  if select not in SELECTIONS:
    raise errors.InputError(
        f'select={select!r}: expected one of {", ".join(SELECTIONS)} (D\'s '
        'logit; how well the image matches its own condition against the '
        'other rows\' conditions, by D\'s projection; or their sum).')
  if select != 'logit' and not conditional:
    raise errors.InputError(
        f'select={select!r} ranks candidates by how well they match their '
        'condition; this discriminator is unconditional: use select=logit.')


def best_of(d_apply, d_vars, images, labels=None, *, group=1, select='logit'):
  """The candidate D scores highest, per condition.

  Args:
    d_apply, d_vars: the discriminator (`discriminator_variables`).
    images: [K, N, H, W, C] in [-1, 1], K candidates for each of N rows.
    labels: the rows' conditions [N, ...] (None for an unconditional D).
    group: D's minibatch-std group (config.model.d_mbstd_group; 1: none).
      D scores each candidate's N rows as one batch, as in training, padded
      with copies of the last row to a multiple of the group.
    select: the score ranked, per candidate and row. 'logit': D's logit
      for the image and its condition (realism and match together).
      'match': `match_scores`, the log-probability D's projection gives
      the row's own condition among the other rows' distinct conditions
      (how recognisably the image shows its own condition rather than
      another: the score the contrastive term trains, the re-ranking of
      text-to-image samplers by a caption-image model); it needs distinct
      conditions among the N rows and is 0 without them. 'both': the sum.

  Returns:
    (images [N, H, W, C]: per row the candidate with the highest score,
     scores [K, N]: every candidate's score).
  """
  check_selection(select, labels is not None)
  k, n = images.shape[:2]
  pad = (-n) % max(group, 1)
  x = images
  if pad:
    x = jnp.concatenate([x, jnp.repeat(x[:, -1:], pad, axis=1)], axis=1)
    if labels is not None:
      labels = jnp.concatenate([labels, jnp.repeat(labels[-1:], pad, axis=0)])

  def score(xk):
    if select == 'logit':
      return d_apply(d_vars, xk, labels).reshape(n + pad)[:n]
    base, proj, phi = d_apply(d_vars, xk, labels, parts=True)
    if proj is None:
      raise errors.InputError(
          f'select={select!r}: this discriminator has no condition '
          'projection; use select=logit.')
    # Padded rows repeat the last row's condition: never a negative of it.
    s = match_scores(proj, phi, labels)
    if select == 'both':
      s = s + base + jnp.sum(proj * phi, axis=-1)
    return s[:n]

  scores = jax.vmap(score)(x)
  best = jnp.argmax(scores, axis=0)
  chosen = jnp.take_along_axis(
      images, best.reshape((1, n) + (1,) * (images.ndim - 2)), axis=0)[0]
  return chosen, scores


def candidate_latents(key, num, latent_dim, candidates, latent_scale=1.0):
  """[K, num, latent_dim] latents psi * N(0, I): candidate 0 is `sample`'s
  latent for `key`, candidate k > 0 draws from fold_in(key, k)."""
  keys = [key] + [jax.random.fold_in(key, k) for k in range(1, candidates)]
  return jnp.stack([latent_scale * jax.random.normal(k, (num, latent_dim))
                    for k in keys])


def sample_best_of(params, d_vars, key, labels=None, *, g_apply, d_apply,
                   num, latent_dim, candidates, latent_scale=1.0, group=1,
                   select='logit'):
  """`sample` with discriminator selection: `candidates` latents per row,
  the image D scores highest for the row's condition kept (best-of-K
  sampling by D, cf. discriminator rejection sampling, Azadi et al. 2019).
  Candidate 0 is `sample`'s image, so candidates=1 is `sample`. `select`:
  what the candidates are ranked by (see `best_of`)."""
  z = candidate_latents(key, num, latent_dim, candidates, latent_scale)
  images = jax.vmap(lambda zk: generate(g_apply, params, zk, labels))(z)
  return best_of(d_apply, d_vars, images, labels, group=group,
                 select=select)[0]

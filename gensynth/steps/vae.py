"""Pure VAE steps: `train_step(state, batch, key) -> (state, metrics)`.

Options are keyword-only and bound with functools.partial before the trainer
compiles the step once with jax.jit.
"""

import jax
import jax.numpy as jnp
from jax import lax
import optax
from flax.training import train_state

from gensynth import errors
from gensynth.losses import vae as vae_losses
from gensynth.models import conditioning


class TrainState(train_state.TrainState):
  """Flax TrainState (step, params, opt_state; apply_fn and tx static)."""


def create_state(key, model, tx, image_shape, cond_spec=None):
  """Initialises parameters and optimizer state for `model` (its condition
  input shaped as `cond_spec` says; class ids if None)."""
  x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
  labels = (jnp.zeros((1,), jnp.int32) if cond_spec is None else
            conditioning.dummy(cond_spec))
  params = model.init(key, x, labels)['params']
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def _fns(state_or_apply, params):
  apply = getattr(state_or_apply, 'apply_fn', state_or_apply)
  enc = lambda x, y: apply({'params': params}, x, y, method='encode')
  dec = lambda z, y, x: apply({'params': params}, z, y, x, method='decode')
  return enc, dec


def conditions_of(batch, conditional):
  """The condition a conditional model reads: batch['cond'] (vectors or
  token ids) where the data has one, else the class ids."""
  if not conditional:
    return None
  return batch['cond'] if 'cond' in batch else batch['label']


def _dropped_condition_fns(apply_fn, params, y, key, rate):
  """(enc, dec, embeddings) for condition dropout: each example's vector or
  text embedding is replaced by zeros (the null condition) with probability
  `rate`, for the encoder and the decoder alike, so the model also learns
  p(x | z) without a condition (classifier-free guidance needs both)."""
  variables = {'params': params}
  emb = apply_fn(variables, y, method='embed_condition')
  keep = jax.random.bernoulli(key, 1.0 - rate, emb.shape[:1])
  emb = jnp.where(keep[:, None], emb, jnp.zeros_like(emb))
  enc = lambda x, e: apply_fn(variables, x, e, method='encode_embedded')
  dec = lambda z, e, x: apply_fn(variables, z, e, x, method='decode_embedded')
  return enc, dec, emb


def loss_fn(params, apply_fn, batch, key, *, likelihood, beta=1.0,
            objective='elbo', num_samples=1, conditional=False,
            gaussian_scale=0.1, cond_dropout=0.0):
  """Mean negative bound over the batch, and per-batch metrics.

  cond_dropout > 0 (a vector or text condition): each example is trained
  without its condition with that probability (`_dropped_condition_fns`).
  """
  enc, dec = _fns(apply_fn, params)
  x, y = batch['image'], conditions_of(batch, conditional)
  if cond_dropout:
    # Only then is the key split: runs without dropout draw as before.
    drop_key, key = jax.random.split(key)
    enc, dec, y = _dropped_condition_fns(apply_fn, params, y, drop_key,
                                         cond_dropout)
  mean, logvar = enc(x, y)
  kl = vae_losses.gaussian_kl(mean, logvar)
  if objective == 'elbo':
    z = vae_losses.sample_gaussian(key, mean, logvar)
    log_px = vae_losses.log_likelihood(dec(z, y, x), x, likelihood=likelihood,
                                       gaussian_scale=gaussian_scale)
    bound = vae_losses.elbo(log_px, kl, beta=beta)
  elif objective == 'iwae':
    n = x.shape[0]
    z = vae_losses.sample_gaussian(key, mean, logvar, num_samples)
    x_rep = jnp.tile(x, (num_samples, 1, 1, 1))
    out = dec(z.reshape(num_samples * n, -1),
              None if y is None else vae_losses.tile_rows(y, num_samples), x_rep)
    log_px = vae_losses.log_likelihood(
        out, x_rep, likelihood=likelihood,
        gaussian_scale=gaussian_scale).reshape(num_samples, n)
    log_w = log_px + vae_losses.log_std_normal(z) - vae_losses.log_normal(
        z, mean, logvar)
    bound = vae_losses.iwae_bound(log_w)
    log_px = jnp.mean(log_px, axis=0)
  else:
    raise errors.InputError(
        f'objective {objective!r} unknown; expected elbo or iwae.')
  loss = -jnp.mean(bound)
  metrics = {'loss': loss, 'rec_nll': -jnp.mean(log_px), 'kl': jnp.mean(kl)}
  return loss, metrics


def batch_gradients(params, apply_fn, batch, key, *, micro_batches=1,
                    **loss_kwargs):
  """(grads, metrics) of `loss_fn` on the batch, accumulated over
  `micro_batches` equal micro-batches run one after another.

  The loss is a batch mean, so the mean of the micro-batches' gradients is
  the batch gradient; only the noise differs (micro-batch i draws with
  `fold_in(key, i)`; one micro-batch uses `key` itself). Row r belongs to
  micro-batch r % micro_batches, as in `steps.gan`: a batch sharded over
  devices in contiguous blocks splits on each device without communication
  when its block divides by micro_batches. An optimization barrier keeps the
  micro-batches in sequence (XLA would otherwise interleave them), which is
  faster on XLA:CPU (`launch.benchmark --bench=vae_throughput`).
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  m = micro_batches
  if m == 1:
    (_, metrics), grads = grad_fn(params, apply_fn, batch, key, **loss_kwargs)
    return grads, metrics
  n = batch['image'].shape[0]
  if m < 1 or n % m:
    raise errors.InputError(
        f'a batch of {n} does not split into micro_batches={m} '
        'equal micro-batches.')
  split = jax.tree.map(lambda a: a.reshape((n // m, m) + a.shape[1:]), batch)
  total = None
  for i in range(m):
    part = jax.tree.map(lambda a, i=i: a[:, i], split)
    if total is not None:
      part, total = lax.optimization_barrier((part, total))
    (_, metrics), grads = grad_fn(params, apply_fn, part,
                                  jax.random.fold_in(key, i), **loss_kwargs)
    out = (grads, metrics)
    total = out if total is None else jax.tree.map(jnp.add, total, out)
  return jax.tree.map(lambda t: t / m, total)


def train_step(state, batch, key, *, skip_nonfinite=False, micro_batches=1,
               **loss_kwargs):
  """One optimizer step on the batch mean of the negative bound.

  With skip_nonfinite, a step whose loss or gradient norm is NaN/Inf keeps
  the parameters and optimizer state (the step counter still advances, so the
  next batch is drawn) and reports skipped=1 with its other metrics zeroed;
  without it, the non-finite metrics reach the trainer, which stops. With
  micro_batches > 1 the gradient is accumulated over that many sequential
  micro-batches (`batch_gradients`): the same update up to the noise draws,
  with a smaller working set.
  """
  key = jax.random.fold_in(key, state.step)
  grads, metrics = batch_gradients(state.params, state.apply_fn, batch, key,
                                   micro_batches=micro_batches, **loss_kwargs)
  new_state = state.apply_gradients(grads=grads)
  metrics = dict(metrics, grad_norm=optax.global_norm(grads),
                 param_norm=optax.global_norm(new_state.params))
  if skip_nonfinite:
    ok = jnp.isfinite(metrics['loss']) & jnp.isfinite(metrics['grad_norm'])
    kept = jax.tree.map(lambda new, old: jnp.where(ok, new, old),
                        (new_state.params, new_state.opt_state),
                        (state.params, state.opt_state))
    new_state = new_state.replace(params=kept[0], opt_state=kept[1])
    metrics = {k: jnp.where(ok, v, 0.0) for k, v in metrics.items()}
    metrics['skipped'] = 1.0 - ok.astype(jnp.float32)
  return new_state, metrics


def eval_step(params, batch, key, *, apply_fn, likelihood, num_samples,
              chunk_size, conditional=False, gaussian_scale=0.1):
  """Sums of -ELBO and IWAE NLL (nats) over the real rows of `batch`."""
  enc, dec = _fns(apply_fn, params)
  x, y = batch['image'], conditions_of(batch, conditional)
  mask = batch['mask']
  mean, logvar = enc(x, y)
  z = vae_losses.sample_gaussian(jax.random.fold_in(key, 1), mean, logvar)
  log_px = vae_losses.log_likelihood(dec(z, y, x), x, likelihood=likelihood,
                                     gaussian_scale=gaussian_scale)
  neg_elbo = -vae_losses.elbo(log_px, vae_losses.gaussian_kl(mean, logvar))
  nll = -vae_losses.iwae_log_likelihood(
      key, enc, dec, x, y, num_samples=num_samples, chunk_size=chunk_size,
      likelihood=likelihood, gaussian_scale=gaussian_scale)
  return {'neg_elbo': jnp.sum(neg_elbo * mask), 'nll': jnp.sum(nll * mask),
          'count': jnp.sum(mask)}


def reconstruct(params, x, labels=None, *, apply_fn, likelihood):
  """Decoder mean at the posterior mean, in the data's value range.

  For an autoregressive decoder this is each pixel's mean given the true
  pixels before it (teacher forcing).
  """
  enc, dec = _fns(apply_fn, params)
  mean, _ = enc(x, labels)
  return decoder_mean(dec(mean, labels, x), likelihood=likelihood)


def sample(params, key, labels=None, *, apply_fn, num, latent_dim, likelihood,
           image_shape, autoregressive=False):
  """Images decoded from `num` prior samples (see decode_latents)."""
  z_key, px_key = jax.random.split(key)
  z = jax.random.normal(z_key, (num, latent_dim))
  return decode_latents(params, px_key, z, labels, apply_fn=apply_fn,
                        likelihood=likelihood, image_shape=image_shape,
                        autoregressive=autoregressive)


def decode_latents(params, key, z, labels=None, *, apply_fn, likelihood,
                   image_shape, autoregressive=False, temperature=1.0,
                   guidance=0.0, embedded=False):
  """Images [N, H, W, C] decoded from latents z [N, latent_dim].

  A factorised decoder returns its mean (`key` unused). An autoregressive
  (Bernoulli) decoder draws the pixels in raster order, one `lax.fori_loop`
  iteration per pixel, reusing the trunk features computed once from z,
  each pixel from sigmoid(logit / temperature): 1 samples the model, lower
  values sharpen it, and 0 takes the likelier value of every pixel (greedy
  decoding, deterministic given z).

  guidance = w > 0 (classifier-free guidance; a vector- or text-conditional
  Bernoulli model trained with config.loss.cond_dropout > 0): every logit is
  (1 + w) * logit(x | z, c) - w * logit(x | z, null), pushing the samples
  towards what the condition c changes; 0 decodes the model as it is.
  embedded=True: `labels` are condition embeddings [N, E] (e.g. a mix of
  two conditions'), not conditions.
  """
  if not temperature >= 0:
    raise errors.InputError(f'temperature={temperature}: expected a number '
                            '>= 0 (1 samples the model, 0 is greedy).')
  if not guidance >= 0:
    raise errors.InputError(f'guidance={guidance}: expected a number >= 0 '
                            '(0 decodes the model as it is).')
  variables = {'params': params}
  n = z.shape[0]
  combine = lambda out: out
  features_method, decode_method = 'decode_features', 'decode'
  if guidance or embedded:
    if guidance and likelihood != 'bernoulli':
      raise errors.InputError(
          f'guidance={guidance} combines Bernoulli logits; this model\'s '
          f'likelihood is {likelihood!r}.')
    emb = labels if embedded or labels is None else apply_fn(
        variables, labels, method='embed_condition')
    if emb is None or emb.ndim != 2 or not jnp.issubdtype(emb.dtype,
                                                          jnp.floating):
      raise errors.InputError(
          f'{"guidance=" + str(guidance) if guidance else "embedded=True"} '
          'needs a vector- or text-conditional model and its conditions '
          '(or their embeddings [N, E]).')
    labels = emb
    features_method, decode_method = 'decode_features_embedded', \
        'decode_embedded'
    if guidance:
      # Conditioned rows first, then the same latents with the null
      # condition (the zero embedding condition dropout trains), decoded as
      # one batch.
      z = jnp.concatenate([z, z])
      labels = jnp.concatenate([emb, jnp.zeros_like(emb)])
      combine = lambda out: (1.0 + guidance) * out[:n] - guidance * out[n:]
  if not autoregressive:
    out = combine(apply_fn(variables, z, labels, None, method=decode_method))
    return decoder_mean(out, likelihood=likelihood)
  if likelihood != 'bernoulli':
    raise errors.InputError('autoregressive sampling is implemented for the '
                            f'bernoulli likelihood, not {likelihood!r}.')
  feats = apply_fn(variables, z, labels, method=features_method)
  height, width = image_shape[:2]
  rows = 2 if guidance else 1

  def body(i, x):
    logits = combine(apply_fn(variables, feats, jnp.tile(x, (rows, 1, 1, 1)),
                              method='decode_head'))
    r, c = i // width, i % width
    logit = logits[:, r, c, 0]
    if temperature == 0:
      bit = logit > 0
    else:
      bit = jax.random.bernoulli(jax.random.fold_in(key, i),
                                 jax.nn.sigmoid(logit / temperature))
    return x.at[:, r, c, 0].set(bit.astype(x.dtype))

  x0 = jnp.zeros((n, height, width, 1), jnp.float32)
  return lax.fori_loop(0, height * width, body, x0)


def encode_mean(params, x, labels=None, *, apply_fn):
  """Posterior means [N, latent_dim] of images x in the data's value range."""
  enc, _ = _fns(apply_fn, params)
  return enc(x, labels)[0]


def decoder_mean(out, *, likelihood):
  if likelihood == 'bernoulli':
    return jax.nn.sigmoid(out)
  if likelihood == 'logistic':
    return jnp.clip(jnp.split(out, 2, axis=-1)[0], -1.0, 1.0)
  return out

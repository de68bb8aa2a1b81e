"""Pure steps of the learned fusion network (gensynth.models.fusion).

Both losses score the fused image clipped to [0, 1], as it is written to a
file (Mertens-style pyramid blends overshoot; what clipping costs is in
BUILD_NOTES.md, "Learned fusion", measured with --bench=exposure_fusion).
Exposure stacks have no
ground truth: the loss is 1 - MEF-SSIM of the fused image against its
sources, plus a small smoothness term on the network's
correction to the prior. Multi-focus sets are made from sharp photographs:
the loss is 1 - SSIM against the sharp photo plus an L1 term on Sobel
gradients.
"""

import jax
import jax.numpy as jnp
import optax

from gensynth.metrics import image as image_metrics
from gensynth.steps import vae as vae_steps
from gensynth.synth import features

TrainState = vae_steps.TrainState
LOSSES = ('mef_ssim', 'ssim_grad')


def create_state(key, model, tx, num_sources=2, size=64, channels=3):
  params = model.init(key, jnp.zeros((1, num_sources, size, size, channels)))
  return TrainState.create(apply_fn=model.apply, params=params['params'],
                           tx=tx)


def _smoothness(delta):
  """Mean absolute difference of neighbouring correction values."""
  dy = jnp.abs(jnp.diff(delta, axis=-3))
  dx = jnp.abs(jnp.diff(delta, axis=-2))
  return jnp.mean(dy) + jnp.mean(dx)


def weight_entropy(weights):
  """Mean over pixels of the entropy of the weights over the K sources
  (axis 1 of [B, K, H, W]), divided by log K: 0 where every pixel takes one
  source, 1 where all weigh alike."""
  k = weights.shape[1]
  w = jnp.clip(weights, 1e-12, 1.0)
  return jnp.mean(-jnp.sum(weights * jnp.log(w), axis=1)) / jnp.log(k)


def fusion_loss(params, apply_fn, batch, *, loss, smooth_weight,
                grad_weight, decisive_weight=0.0, qabf_weight=0.0):
  """(scalar loss, metrics) of one batch; batch['sources'] [B, K, H, W, C].
  decisive_weight > 0 adds that times `weight_entropy` of the weights;
  qabf_weight > 0 adds that times 1 - Q^AB/F of the fused image against its
  K sources (`metrics.image.qabf_sources`: the multi-focus benchmark's edge
  score, made a training term)."""
  (fused, weights), inter = apply_fn({'params': params}, batch['sources'],
                                     mutable=['intermediates'])
  delta = inter['intermediates']['delta'][0]
  fused = jnp.clip(fused, 0.0, 1.0)
  smooth = _smoothness(delta)
  if loss == 'mef_ssim':
    quality = image_metrics.mef_ssim(jnp.moveaxis(batch['sources'], 1, 0),
                                     fused)
    metrics = {'mef_ssim': jnp.mean(quality)}
    value = 1.0 - jnp.mean(quality)
  elif loss == 'ssim_grad':
    target = batch['target']
    quality = image_metrics.ssim(fused, target)
    gf, gt = features.sobel(fused), features.sobel(target)
    grad = sum(jnp.mean(jnp.abs(a - b)) for a, b in zip(gf, gt))
    metrics = {'ssim': jnp.mean(quality), 'grad_l1': grad}
    value = 1.0 - jnp.mean(quality) + grad_weight * grad
  else:
    raise ValueError(f'loss={loss!r}; expected one of {LOSSES}.')
  value = value + smooth_weight * smooth
  entropy = weight_entropy(weights)
  if decisive_weight:
    value = value + decisive_weight * entropy
  if qabf_weight:
    edges = jnp.mean(image_metrics.qabf_sources(
        jnp.moveaxis(batch['sources'], 1, 0), fused))
    value = value + qabf_weight * (1.0 - edges)
    metrics['qabf'] = edges
  metrics.update(loss=value, smoothness=smooth, weight_entropy=entropy)
  return value, metrics


def train_step(state, batch, key, *, loss, smooth_weight=0.0, grad_weight=0.0,
               decisive_weight=0.0, qabf_weight=0.0):
  """One optimiser step; `key` is unused (the data carries the randomness)."""
  del key

  def loss_fn(params):
    return fusion_loss(params, state.apply_fn, batch, loss=loss,
                       smooth_weight=smooth_weight, grad_weight=grad_weight,
                       decisive_weight=decisive_weight,
                       qabf_weight=qabf_weight)

  (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  new_state = state.apply_gradients(grads=grads)
  metrics.update(grad_norm=optax.global_norm(grads))
  if 'prior_scale' in new_state.params:  # a learned prior exponent
    metrics.update(prior_scale=new_state.params['prior_scale'])
  return new_state, metrics


def eval_step(params, batch, *, apply_fn, loss):
  """Mean quality of a batch (MEF-SSIM or SSIM to the target)."""
  fused, _ = apply_fn({'params': params}, batch['sources'])
  fused = jnp.clip(fused, 0.0, 1.0)
  if loss == 'mef_ssim':
    return jnp.mean(image_metrics.mef_ssim(
        jnp.moveaxis(batch['sources'], 1, 0), fused))
  return jnp.mean(image_metrics.ssim(fused, batch['target']))


def pair_scores(params, batch, *, apply_fn):
  """Mean Q^AB/F and MI of a batch of two-source sets, the fused output
  rounded to 8 bits as a file would hold it: the Lytro benchmark's scores,
  on validation sets."""
  fused, _ = apply_fn({'params': params}, batch['sources'])
  return _pair_scores(batch, fused)


def sharp_pair_scores(batch):
  """`pair_scores` of the sharp photo the sources were made from (in place
  of a fused image): what the scores give the ground truth."""
  return _pair_scores(batch, batch['target'])


def _pair_scores(batch, fused):
  fused = jnp.round(jnp.clip(fused, 0.0, 1.0) * 255.0) / 255.0
  a, b = batch['sources'][:, 0], batch['sources'][:, 1]
  return {'qabf': jnp.mean(image_metrics.qabf(a, b, fused)),
          'mi': jnp.mean(image_metrics.mutual_information(a, b, fused))}

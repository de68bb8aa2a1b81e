"""Pure classifier steps: cross-entropy training and masked evaluation."""

import jax
import jax.numpy as jnp
import optax

from gensynth.steps import vae as vae_steps

TrainState = vae_steps.TrainState


def create_state(key, model, tx, image_shape):
  params = model.init(key, jnp.zeros((1,) + tuple(image_shape)))['params']
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def _augment(key, x, max_shift):
  """Random integer translations by up to `max_shift` pixels (edge padded)."""
  if not max_shift:
    return x
  n, h, w, _ = x.shape
  pad = jnp.pad(x, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)),
                mode='edge')
  shifts = jax.random.randint(key, (n, 2), 0, 2 * max_shift + 1)
  crop = lambda img, s: jax.lax.dynamic_slice(img, (s[0], s[1], 0),
                                              (h, w, img.shape[-1]))
  return jax.vmap(crop)(pad, shifts)


def train_step(state, batch, key, *, label_smoothing=0.0, max_shift=0):
  """One step on the mean cross-entropy; metrics loss, accuracy, norms."""
  key = jax.random.fold_in(key, state.step)
  x = _augment(key, batch['image'], max_shift)
  labels = batch['label']

  def loss_fn(params):
    logits = state.apply_fn({'params': params}, x)
    targets = optax.smooth_labels(
        jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    loss = jnp.mean(optax.softmax_cross_entropy(logits, targets))
    return loss, logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  new_state = state.apply_gradients(grads=grads)
  return new_state, {
      'loss': loss, 'accuracy': jnp.mean(jnp.argmax(logits, -1) == labels),
      'grad_norm': optax.global_norm(grads),
      'param_norm': optax.global_norm(new_state.params)}


def eval_step(params, batch, *, apply_fn):
  """Sums of correct predictions and cross-entropy over the real rows."""
  logits = apply_fn({'params': params}, batch['image'])
  mask = batch['mask']
  correct = (jnp.argmax(logits, -1) == batch['label']).astype(jnp.float32)
  xent = optax.softmax_cross_entropy_with_integer_labels(logits,
                                                         batch['label'])
  return {'correct': jnp.sum(correct * mask), 'xent': jnp.sum(xent * mask),
          'count': jnp.sum(mask)}

"""Classifier steps: augmentation, training signal, masked evaluation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gensynth.models import classifier
from gensynth.steps import classifier as steps


def test_augment_shifts_by_at_most_max_shift():
  x = jnp.zeros((5, 8, 8, 1)).at[:, 4, 4, 0].set(1.0)
  out = steps._augment(jax.random.key(0), x, 2)  # pylint: disable=protected-access
  assert out.shape == x.shape
  pos = np.argwhere(np.asarray(out[..., 0]) == 1.0)
  assert len(pos) == 5  # one bright pixel per image, moved not lost
  assert np.all(np.abs(pos[:, 1:] - 4) <= 2)
  assert steps._augment(jax.random.key(0), x, 0) is x  # pylint: disable=protected-access


def test_training_fits_a_small_batch_and_eval_masks_padding():
  model = classifier.Classifier(num_classes=3, widths=(4,), feature_dim=8)
  state = steps.create_state(jax.random.key(0), model, optax.adam(1e-2),
                             (8, 8, 1))
  x = jax.random.normal(jax.random.key(1), (12, 8, 8, 1))
  batch = {'image': x, 'label': jnp.arange(12) % 3}
  step = jax.jit(steps.train_step)
  for _ in range(60):
    state, m = step(state, batch, jax.random.key(2))
  assert float(m['accuracy']) == 1.0
  mask = jnp.array([1.0] * 10 + [0.0] * 2)
  out = jax.jit(functools.partial(steps.eval_step, apply_fn=model.apply))(
      state.params, dict(batch, mask=mask))
  assert float(out['count']) == 10 and float(out['correct']) == 10
  feats, logits = model.apply({'params': state.params}, x,
                              method='features_and_logits')
  assert feats.shape == (12, 8) and logits.shape == (12, 3)
  assert float(feats.min()) >= 0.0  # post-ReLU features

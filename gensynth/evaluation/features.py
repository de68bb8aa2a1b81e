"""A trained gensynth classifier as the feature extractor of the generative
metrics (gensynth.metrics.generative)."""

import jax
import numpy as np

from gensynth import errors
from gensynth.evaluation import runs


class ClassifierFeatures:
  """A trained classifier as the feature extractor of generative metrics.

  Call it on images [N, H, W, C] in [0, 1] (NumPy, any N) for features
  [N, feature_dim]; `features_and_logits` also returns the class logits.
  Images are converted to the classifier's value range and run jitted in
  fixed-size batches (one compile).
  """

  def __init__(self, workdir, *, batch_size=500, step=None):
    config, model, params, info = runs.load_classifier(workdir, step=step)
    self.workdir = workdir
    self.image_shape = tuple(info['image_shape'])
    self.num_classes = info['num_classes']
    self.batch_size = batch_size
    self._value_range = config.data.value_range
    self._params = params
    self._fn = jax.jit(lambda p, x: model.apply(
        {'params': p}, x, method='features_and_logits'))

  def features_and_logits(self, images):
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:] != self.image_shape:
      raise errors.InputError(
          f'the feature classifier in {self.workdir!r} takes images '
          f'[N, {", ".join(map(str, self.image_shape))}], got shape '
          f'{images.shape}; evaluate with a classifier trained on this data.')
    if self._value_range == 'minus_one_one':
      images = images * 2.0 - 1.0
    feats, logits = [], []
    b = self.batch_size
    for start in range(0, len(images), b):
      x = images[start:start + b]
      pad = b - len(x)
      if pad:
        x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
      f, l = jax.device_get(self._fn(self._params, x))
      feats.append(f[:b - pad])
      logits.append(l[:b - pad])
    return np.concatenate(feats), np.concatenate(logits)

  def __call__(self, images):
    return self.features_and_logits(images)[0]

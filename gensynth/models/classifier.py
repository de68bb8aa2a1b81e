"""A small CNN classifier whose penultimate layer is gensynth's feature space.

Inception weights are not available everywhere gensynth runs, so FID, KID and
precision/recall are computed on the `features` of this network, trained by
`launch.train --config=gensynth/configs/classifier_mnist.py`. Any other
extractor (an Inception-style network where weights exist) plugs into
gensynth.metrics.generative as a function images -> [N, D] features.
"""

import functools

import flax.linen as nn

from gensynth import errors
from gensynth.models import layers


class Classifier(nn.Module):
  """Conv blocks (two 3x3 convs + 2x2 max-pool each), a dense feature layer,
  and a linear head.

  Input [N, H, W, C] in the data's value range; `features` returns [N,
  feature_dim] (post-ReLU), `__call__` returns [N, num_classes] logits.
  """
  num_classes: int
  widths: tuple = (32, 64)
  feature_dim: int = 128
  conv_impl: str = 'auto'  # layers.CONV_IMPLS

  def setup(self):
    conv = functools.partial(layers.Conv, conv_impl=self.conv_impl)
    self.convs = [(conv(w, (3, 3)), conv(w, (3, 3))) for w in self.widths]
    self.dense = nn.Dense(self.feature_dim)
    self.head = nn.Dense(self.num_classes)

  def features(self, x):
    if x.ndim != 4:
      raise errors.ConfigError(
          f'Classifier expects images [N, H, W, C], got shape '
          f'{x.shape}.')
    h = x
    for conv_a, conv_b in self.convs:
      h = nn.relu(conv_b(nn.relu(conv_a(h))))
      h = nn.max_pool(h, (2, 2), (2, 2))
    h = h.reshape(h.shape[0], -1)
    return nn.relu(self.dense(h))

  def __call__(self, x):
    return self.head(self.features(x))

  def features_and_logits(self, x):
    h = self.features(x)
    return h, self.head(h)


def from_config(cfg, num_classes):
  if not cfg.widths or min(cfg.widths) <= 0 or cfg.feature_dim <= 0:
    raise errors.ConfigError(f'config.model.widths={tuple(cfg.widths)} and '
                             f'feature_dim={cfg.feature_dim} must be positive.')
  return Classifier(num_classes=num_classes, widths=tuple(cfg.widths),
                    feature_dim=cfg.feature_dim, conv_impl=cfg.conv_impl)

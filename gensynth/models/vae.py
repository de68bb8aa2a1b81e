"""Convolutional VAE (and CVAE) for 28x28, 32x32 and 64x64 images.

The module holds structure only: `encode` returns the Gaussian posterior's
(mean, log-variance) and `decode` the likelihood's parameters; sampling and
bounds live in `gensynth.losses.vae`, so the same model serves the ELBO, the
IWAE bound and latent-space synthesis.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from gensynth.models import layers

# Decoder output channels per image channel, by likelihood.
LIKELIHOOD_PARAMS = {'bernoulli': 1, 'gaussian': 1, 'logistic': 2}


def base_size(image_size, num_down):
  if image_size % (2**num_down):
    raise ValueError(f'image size {image_size} is not divisible by 2^{num_down} '
                     f'(one halving per width after the first); choose widths '
                     f'with fewer entries or another size.')
  return image_size // 2**num_down


class Encoder(nn.Module):
  """x [N, H, W, C] (+ optional labels) -> posterior mean, log-variance."""
  latent_dim: int
  widths: Sequence[int]
  num_classes: int = 0
  blocks_per_level: int = 1
  act: str = 'silu'

  @nn.compact
  def __call__(self, x, labels=None):
    act = getattr(nn, self.act)
    h = nn.Conv(self.widths[0], (3, 3))(x)
    if self.num_classes:
      h = h + nn.Dense(self.widths[0])(
          nn.one_hot(labels, self.num_classes))[:, None, None, :]
    for i, w in enumerate(self.widths):
      if i:
        h = nn.Conv(w, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))(act(h))
      for _ in range(self.blocks_per_level):
        h = layers.ResBlock(w, self.act)(h)
    h = act(h).reshape(h.shape[0], -1)
    out = nn.Dense(2 * self.latent_dim)(h)
    mean, logvar = jnp.split(out, 2, axis=-1)
    return mean, logvar


class Decoder(nn.Module):
  """z [N, D] (+ optional labels) -> likelihood parameters [N, H, W, C*P]."""
  image_shape: Sequence[int]
  widths: Sequence[int]
  likelihood: str = 'bernoulli'
  num_classes: int = 0
  blocks_per_level: int = 1
  act: str = 'silu'

  @nn.compact
  def __call__(self, z, labels=None):
    act = getattr(nn, self.act)
    size, _, channels = self.image_shape
    widths = tuple(reversed(self.widths))
    b = base_size(size, len(widths) - 1)
    if self.num_classes:
      z = jnp.concatenate([z, nn.one_hot(labels, self.num_classes)], -1)
    h = nn.Dense(b * b * widths[0])(z).reshape(z.shape[0], b, b, widths[0])
    for i, w in enumerate(widths):
      if i:
        h = layers.ConvTranspose(w, 4, 2, 1)(act(h))
      for _ in range(self.blocks_per_level):
        h = layers.ResBlock(w, self.act)(h)
    return nn.Conv(channels * LIKELIHOOD_PARAMS[self.likelihood], (3, 3))(act(h))


class VAE(nn.Module):
  """Encoder/decoder pair; `__call__` (used by init) runs both once."""
  image_shape: Sequence[int]
  latent_dim: int = 32
  widths: Sequence[int] = (32, 64, 128)
  likelihood: str = 'bernoulli'
  num_classes: int = 0
  blocks_per_level: int = 1

  def setup(self):
    if self.likelihood not in LIKELIHOOD_PARAMS:
      raise ValueError(f'likelihood {self.likelihood!r} unknown; expected one '
                       f'of {sorted(LIKELIHOOD_PARAMS)}.')
    self.encoder = Encoder(self.latent_dim, self.widths, self.num_classes,
                           self.blocks_per_level)
    self.decoder = Decoder(self.image_shape, self.widths, self.likelihood,
                           self.num_classes, self.blocks_per_level)

  def encode(self, x, labels=None):
    return self.encoder(x, labels)

  def decode(self, z, labels=None):
    return self.decoder(z, labels)

  def __call__(self, x, labels=None):
    mean, _ = self.encode(x, labels)
    return self.decode(mean, labels)


def from_config(model_cfg, image_shape, num_classes):
  """Builds a VAE from `config.model`."""
  if tuple(image_shape[:1]) != tuple(image_shape[1:2]):
    raise ValueError(f'VAE expects square images, got {image_shape}.')
  return VAE(image_shape=tuple(image_shape), latent_dim=model_cfg.latent_dim,
             widths=tuple(model_cfg.widths), likelihood=model_cfg.likelihood,
             num_classes=num_classes if model_cfg.conditional else 0,
             blocks_per_level=model_cfg.blocks_per_level)

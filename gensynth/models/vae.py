"""Convolutional VAE (and CVAE) for 28x28, 32x32 and 64x64 images.

The module holds structure only: `encode` returns the Gaussian posterior's
(mean, log-variance) and `decode` the likelihood's parameters; sampling and
bounds live in `gensynth.losses.vae`, so the same model serves the ELBO, the
IWAE bound and latent-space synthesis.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from gensynth import errors
from gensynth.models import conditioning
from gensynth.models import layers

# Decoder output channels per image channel, by likelihood.
LIKELIHOOD_PARAMS = {'bernoulli': 1, 'gaussian': 1, 'logistic': 2}


def base_size(image_size, num_down):
  if image_size % (2**num_down):
    raise errors.ConfigError(
        f'image size {image_size} is not divisible by 2^{num_down} '
        f'(one halving per width after the first); choose widths '
        f'with fewer entries or another size.')
  return image_size // 2**num_down


class Encoder(nn.Module):
  """x [N, H, W, C] (+ optional labels, or a condition embedding [N, E])
  -> posterior mean, log-variance."""
  latent_dim: int
  widths: Sequence[int]
  num_classes: int = 0
  blocks_per_level: int = 1
  act: str = 'silu'
  conv_impl: str = 'auto'
  embedded: bool = False  # labels is a condition embedding [N, E]

  @nn.compact
  def __call__(self, x, labels=None):
    act = layers.activation(self.act, self.conv_impl)
    conv = functools.partial(layers.Conv, conv_impl=self.conv_impl)
    h = conv(self.widths[0], (3, 3))(x)
    if self.num_classes:
      h = h + nn.Dense(self.widths[0])(
          nn.one_hot(labels, self.num_classes))[:, None, None, :]
    elif self.embedded:  # an embedding from the VAE's ConditionEncoder
      h = h + nn.Dense(self.widths[0])(labels)[:, None, None, :]
    for i, w in enumerate(self.widths):
      if i:
        h = conv(w, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))(act(h))
      for _ in range(self.blocks_per_level):
        h = layers.ResBlock(w, self.act, self.conv_impl)(h)
    h = act(h).reshape(h.shape[0], -1)
    out = nn.Dense(2 * self.latent_dim)(h)
    mean, logvar = jnp.split(out, 2, axis=-1)
    return mean, logvar


class ARHead(nn.Module):
  """A shallow PixelCNN over the image, conditioned on decoder features.

  Turns the factorised likelihood into an autoregressive one whose receptive
  field covers a few pixels above and to the left: local stroke structure then
  costs few nats while the latent keeps the global content. Single-channel
  images only (a raster order over channels is not implemented).
  """
  channels: int
  layers: int
  out_features: int
  act: str = 'silu'
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x, cond):
    if x.shape[-1] != 1:
      raise errors.ConfigError(
          f'the autoregressive head models 1-channel images, got '
          f'{x.shape[-1]} channels; set config.model.ar_channels=0.')
    act = layers.activation(self.act, self.conv_impl)
    impl = dict(conv_impl=self.conv_impl)
    h = layers.MaskedConv(self.channels, 5, include_center=False, **impl)(x)
    h = h + layers.Conv(self.channels, (1, 1), **impl)(cond)
    for _ in range(self.layers):
      h = h + layers.MaskedConv(self.channels, 3, include_center=True,
                                **impl)(act(h))
    return layers.Conv(self.out_features, (1, 1), **impl)(act(h))


class DecoderTrunk(nn.Module):
  """z [N, D] (+ optional labels, or a condition embedding [N, E]) ->
  features [N, H, W, widths[0]]; an embedding is also applied as FiLM
  (per-channel gain and bias) at every resolution."""
  image_size: int
  widths: Sequence[int]
  num_classes: int = 0
  blocks_per_level: int = 1
  act: str = 'silu'
  conv_impl: str = 'auto'
  embedded: bool = False  # labels is a condition embedding [N, E]

  @nn.compact
  def __call__(self, z, labels=None):
    act = layers.activation(self.act, self.conv_impl)
    widths = tuple(reversed(self.widths))
    b = base_size(self.image_size, len(widths) - 1)
    emb = None
    if self.num_classes:
      z = jnp.concatenate([z, nn.one_hot(labels, self.num_classes)], -1)
    elif self.embedded:
      emb = labels
      z = jnp.concatenate([z, emb], -1)
    h = nn.Dense(b * b * widths[0])(z).reshape(z.shape[0], b, b, widths[0])
    for i, w in enumerate(widths):
      if i:
        h = layers.ConvTranspose(w, 4, 2, 1, conv_impl=self.conv_impl)(act(h))
      for _ in range(self.blocks_per_level):
        h = layers.ResBlock(w, self.act, self.conv_impl)(h)
      if emb is not None:
        film = nn.Dense(2 * w, kernel_init=nn.initializers.zeros)(emb)
        scale, shift = jnp.split(film[:, None, None, :], 2, -1)
        h = h * (1.0 + scale) + shift
    return act(h)


class VAE(nn.Module):
  """Encoder, decoder trunk and output head; `__call__` (init) runs all once.

  `decode(z, labels, x)` returns the likelihood parameters [N, H, W, C*P]. With
  `ar_channels > 0` the head is autoregressive: the output at a pixel depends
  on z and on the pixels of `x` before it in raster order (teacher forcing), so
  the bound is exact in one pass and sampling runs the head once per pixel.
  """
  image_shape: Sequence[int]
  latent_dim: int = 32
  widths: Sequence[int] = (32, 64, 128)
  likelihood: str = 'bernoulli'
  num_classes: int = 0
  blocks_per_level: int = 1
  ar_channels: int = 0
  ar_layers: int = 2
  act: str = 'silu'
  conv_impl: str = 'auto'
  # A vector or text condition (frozen gensynth.data.conditions spec), its
  # embedding width and the text encoder's (width, layers, heads).
  cond_spec: Any = None
  embed_dim: int = 32
  text: tuple = (64, 2, 4)

  def setup(self):
    if self.likelihood not in LIKELIHOOD_PARAMS:
      raise errors.ConfigError(
          f'likelihood {self.likelihood!r} unknown; expected one '
          f'of {sorted(LIKELIHOOD_PARAMS)}.')
    # Unknown names fail here, by name.
    layers.activation(self.act, self.conv_impl)
    impl = self.conv_impl
    embedded = self.cond_spec is not None
    self.encoder = Encoder(self.latent_dim, self.widths, self.num_classes,
                           self.blocks_per_level, self.act, impl, embedded)
    self.trunk = DecoderTrunk(self.image_shape[0], self.widths,
                              self.num_classes, self.blocks_per_level,
                              self.act, impl, embedded)
    if self.cond_spec is not None:
      width, layers_, heads = self.text
      self.condition = conditioning.ConditionEncoder(
          self.cond_spec, self.embed_dim, text_width=width,
          text_layers=layers_, text_heads=heads)
    out = self.image_shape[-1] * LIKELIHOOD_PARAMS[self.likelihood]
    if self.ar_channels:
      self.head = ARHead(self.ar_channels, self.ar_layers, out, self.act, impl)
    else:
      self.head = layers.Conv(out, (3, 3), conv_impl=impl)

  def _condition(self, labels):
    if self.cond_spec is None:
      return labels
    if labels is None:
      raise errors.InputError(
          f'a {self.cond_spec["kind"]}-conditional VAE needs conditions.')
    return self.condition(labels)

  def encode(self, x, labels=None):
    return self.encoder(x, self._condition(labels))

  def decode_features(self, z, labels=None):
    return self.trunk(z, self._condition(labels))

  def embed_condition(self, labels):
    """The condition embedding [N, embed_dim] the encoder and decoder use
    (vector and text conditions)."""
    return self._condition(labels)

  def encode_embedded(self, x, emb):
    """`encode` from a condition embedding [N, embed_dim]."""
    return self.encoder(x, emb)

  def decode_features_embedded(self, z, emb):
    """`decode_features` from a condition embedding [N, embed_dim]."""
    return self.trunk(z, emb)

  def decode_embedded(self, z, emb, x=None):
    """`decode` from an embedding (e.g. a mix of two conditions')."""
    return self.decode_head(self.decode_features_embedded(z, emb), x)

  def decode_head(self, features, x=None):
    if self.ar_channels:
      if x is None:
        raise errors.ConfigError(
            'an autoregressive decoder needs the image x (teacher '
            'forcing); use gensynth.steps.vae.sample to sample.')
      return self.head(x, features)
    return self.head(features)

  def decode(self, z, labels=None, x=None):
    return self.decode_head(self.decode_features(z, labels), x)

  def __call__(self, x, labels=None):
    mean, _ = self.encode(x, labels)
    return self.decode(mean, labels, x)


def from_config(model_cfg, image_shape, num_classes, cond_spec=None):
  """Builds a VAE from `config.model`; a vector or text `cond_spec` with
  config.model.conditional makes it a CVAE on that condition."""
  if tuple(image_shape[:1]) != tuple(image_shape[1:2]):
    raise errors.ConfigError(f'VAE expects square images, got {image_shape}.')
  classes, spec = conditioning.resolve(model_cfg.conditional, num_classes,
                                       cond_spec)
  return VAE(image_shape=tuple(image_shape), latent_dim=model_cfg.latent_dim,
             widths=tuple(model_cfg.widths), likelihood=model_cfg.likelihood,
             num_classes=classes,
             cond_spec=spec, embed_dim=model_cfg.embed_dim,
             text=(model_cfg.text_width, model_cfg.text_layers,
                   model_cfg.text_heads),
             blocks_per_level=model_cfg.blocks_per_level,
             ar_channels=model_cfg.ar_channels, ar_layers=model_cfg.ar_layers,
             act=model_cfg.act, conv_impl=model_cfg.conv_impl)

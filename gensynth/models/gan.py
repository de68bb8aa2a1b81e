"""DCGAN-family generator and discriminator (Flax Linen).

Sizes: the generator starts at `image_size / 2**len(widths)` (7 for 28x28, 4
for 32x32 and 64x64) and doubles the resolution with each transposed
convolution (`layers.ConvTranspose`, kernel 4, stride 2); the
discriminator mirrors it with strided convolutions and a dense head.

Conditioning: the generator concatenates a condition embedding to z and,
with `norm='group'`, uses condition-dependent gains and biases in every
normalisation (conditional normalisation / FiLM); the discriminator is a
projection discriminator, logit = w . phi(x) + psi(c) . phi(x) (Miyato &
Koyama, 2018; with a continuous embedding psi for vectors and text). Class
ids use per-class tables (`num_classes`); vectors and captions use a
`conditioning.ConditionEncoder` per network (`cond_spec`).

Normalisation in G is per sample (group norm), so a sample depends only on its
own z and label, data-parallel runs equal single-device runs, and the EMA
weights sample without any batch statistics. D has no normalisation, with
optional spectral normalisation (its power-iteration vectors live in the
'spectral' collection, kept in the train state).
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from gensynth import errors
from gensynth.models import conditioning
from gensynth.models import layers

SPECTRAL = 'spectral'


def check_size(image_size, widths):
  """The generator's base resolution, or a ValueError if none fits."""
  n = len(widths)
  if n == 0 or image_size % 2**n or image_size // 2**n < 2:
    raise errors.ConfigError(
        f'image size {image_size} does not fit {n} resolution doublings '
        f'(widths={tuple(widths)}): image_size / 2**len(widths) must be an '
        'integer >= 2, e.g. 2 widths for 28x28, 3 for 32x32, 4 for 64x64.')
  return image_size // 2**n


class CondGroupNorm(nn.Module):
  """Group normalisation with learned gain and bias: fixed, per class
  (`labels`), or FiLM from a condition embedding `emb` [N, E] (both start
  at the identity)."""
  num_classes: int = 0
  groups: int = 8

  @nn.compact
  def __call__(self, x, labels=None, emb=None):
    c = x.shape[-1]
    y = nn.GroupNorm(num_groups=min(self.groups, c), use_scale=False,
                     use_bias=False)(x)
    if emb is not None:
      film = lambda name: nn.Dense(c, kernel_init=nn.initializers.zeros,
                                   name=name)(emb)[:, None, None, :]
      return y * (1.0 + film('scale')) + film('bias')
    if labels is None:
      scale = self.param('scale', nn.initializers.ones, (c,))
      bias = self.param('bias', nn.initializers.zeros, (c,))
      return y * scale + bias
    emb = lambda name, init: nn.Embed(self.num_classes, c, embedding_init=init,
                                      name=name)(labels)[:, None, None, :]
    return y * (1.0 + emb('scale', nn.initializers.zeros)) + emb(
        'bias', nn.initializers.zeros)


def upsample_nearest(h, factor=2):
  """[N, H, W, C] -> [N, factor*H, factor*W, C], each pixel repeated."""
  n, hh, ww, c = h.shape
  h = jnp.broadcast_to(h[:, :, None, :, None, :],
                       (n, hh, factor, ww, factor, c))
  return h.reshape(n, factor * hh, factor * ww, c)


# Per axis, nearest 2x upsampling then a 3-tap 'SAME' cross-correlation with
# taps (w0, w1, w2) is a transposed conv (k4, s2, p1; PyTorch indexing) with
# taps (w2, w1 + w2, w0 + w1, w0).
_NEAREST_TAPS = ((0., 0., 1.), (0., 1., 1.), (1., 1., 0.), (1., 0., 0.))


class NearestUpConv(nn.Module):
  """`Conv(features, (3, 3))(upsample_nearest(x))` (same parameters), run as
  the equivalent tied-weight transposed conv on x: 16 instead of 36
  multiply-adds per input pixel and channel pair."""
  features: int
  use_bias: bool = True
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    a = jnp.asarray(_NEAREST_TAPS, kernel.dtype)
    k4 = jnp.einsum('pr,qs,rsio->pqoi', a, a, kernel)
    out_hw = (2 * x.shape[1], 2 * x.shape[2])
    y = layers.conv_transpose(x, k4.astype(x.dtype), (2, 2), ((1, 1), (1, 1)),
                              out_hw, conv_impl=self.conv_impl)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,))
    return y


class Generator(nn.Module):
  """z [N, latent_dim] (+ labels [N]) -> images [N, S, S, C] in [-1, 1]."""
  image_size: int
  channels: int
  widths: tuple = (128, 64)
  num_classes: int = 0  # > 0: class-conditional
  embed_dim: int = 32
  norm: str = 'group'  # group | none
  # 'transpose': 4x4 stride-2 transposed convs (DCGAN); 'nearest': nearest
  # 2x upsampling then a 3x3 conv (no checkerboard, Odena et al. 2016).
  upsample: str = 'transpose'
  conv_impl: str = 'auto'  # layers.CONV_IMPLS
  # A vector or text condition (a frozen gensynth.data.conditions spec) and
  # the encoder's text sizes; None: class ids (num_classes) or none.
  cond_spec: Any = None
  text: tuple = (64, 2, 4)  # width, layers, heads
  # True: every normalisation's FiLM also reads the latent z (BigGAN's
  # skip-z), not only the first dense layer, so the noise acts at every
  # resolution; class ids then enter through their embedding too.
  latent_film: bool = False

  def _up(self, h, width, use_bias, index):
    if self.upsample == 'transpose':
      return layers.ConvTranspose(width, use_bias=use_bias,
                                  conv_impl=self.conv_impl)(h)
    if self.upsample != 'nearest':
      raise errors.ConfigError(
          f"upsample={self.upsample!r}; expected 'transpose' or "
          "'nearest'.")
    # Named like the layers.Conv it computes (same parameter tree).
    return NearestUpConv(width, use_bias=use_bias, conv_impl=self.conv_impl,
                         name=f'Conv_{index}')(h)

  def _norm(self, x, labels, emb=None):
    if self.norm == 'none':
      return x
    return CondGroupNorm(self.num_classes)(x, labels, emb)

  @nn.compact
  def __call__(self, z, labels=None, emb=None, embed_only=False):
    """Images from z and labels; a vector/text generator also takes the
    condition embedding `emb` in place of labels (e.g. a mix of two), and
    with embed_only returns the embedding of `labels` instead of images."""
    base = check_size(self.image_size, self.widths)
    noise = z
    if self.cond_spec is not None:
      if emb is None:
        if labels is None:
          raise errors.InputError(
              f'a {self.cond_spec["kind"]}-conditional generator needs '
              'conditions.')
        emb = _encoder(self.cond_spec, self.embed_dim, self.text)(labels)
      if embed_only:
        return emb
      z = jnp.concatenate([z, emb], -1)
      labels = None
    elif self.num_classes:
      emb = None
      if labels is None:
        raise errors.ConfigError('a class-conditional generator needs labels.')
      class_emb = nn.Embed(self.num_classes, self.embed_dim)(labels)
      z = jnp.concatenate([z, class_emb], -1)
      # Without latent_film the norms take per-class tables (labels) instead.
      emb = class_emb if self.latent_film else None
    else:
      labels = emb = None
    if self.latent_film:
      emb = noise if emb is None else jnp.concatenate([emb, noise], -1)
      labels = None
    # A bias right before a normalisation is cancelled by it (its gradient is
    # round-off, which Adam would amplify to full-size steps): none there.
    bias = self.norm == 'none'
    h = nn.Dense(base * base * self.widths[0], use_bias=bias)(z)
    h = h.reshape(z.shape[0], base, base, self.widths[0])
    h = nn.relu(self._norm(h, labels, emb))
    for i, width in enumerate(self.widths[1:]):
      h = nn.relu(self._norm(self._up(h, width, bias, i), labels, emb))
    return jnp.tanh(self._up(h, self.channels, True, len(self.widths) - 1))


class Discriminator(nn.Module):
  """images [N, S, S, C] in [-1, 1] (+ labels [N]) -> logits [N]."""
  widths: tuple = (64, 128)
  num_classes: int = 0
  spectral_norm: bool = False
  # Minibatch standard deviation (Karras et al. 2018): groups of this many
  # consecutive images add one feature map, their mean feature std; 0 = off.
  mbstd_group: int = 0
  conv_impl: str = 'auto'  # layers.CONV_IMPLS
  cond_spec: Any = None  # as in Generator
  embed_dim: int = 32
  text: tuple = (64, 2, 4)
  # > 0: one hidden layer of this width (leaky ReLU) between the flattened
  # conv features and the logit and projection. Without it both are linear
  # in the per-position features, so D scores an image as a sum over its
  # regions and cannot tell one object from two (BUILD_NOTES.md, "Shapes
  # caption GAN: a nonlinear D head"); 0 = off.
  head: int = 0

  def _layer(self, layer, x, update_stats):
    if not self.spectral_norm:
      return layer(x)
    return nn.SpectralNorm(layer, collection_name=SPECTRAL)(
        x, update_stats=update_stats)

  @nn.compact
  def __call__(self, x, labels=None, *, update_stats=False, parts=False):
    """Logits [N]; with parts, (logit of the image alone [N], the condition's
    projection vector [N, F] or None, the features phi [N, F]), whose
    composition logit + sum(proj * phi, -1) is the logit: a caller can then
    pair each image with other conditions at no further cost."""
    if x.ndim != 4:
      raise errors.ConfigError(
          f'Discriminator expects images [N, H, W, C], got shape '
          f'{x.shape}.')
    h = x
    for width in self.widths:
      conv = layers.Conv(width, (4, 4), (2, 2), padding=((1, 1), (1, 1)),
                         conv_impl=self.conv_impl)
      h = self._layer(conv, h, update_stats)
      h = nn.leaky_relu(h, 0.2)
    if self.mbstd_group:
      h = minibatch_std(h, self.mbstd_group)
    phi = h.reshape(h.shape[0], -1)
    if self.head:
      phi = nn.leaky_relu(self._layer(nn.Dense(self.head, name='head'), phi,
                                      update_stats), 0.2)
    logit = self._layer(nn.Dense(1), phi, update_stats)[:, 0]
    proj = None
    if self.cond_spec is not None:
      if labels is None:
        raise errors.InputError(
            f'a {self.cond_spec["kind"]}-conditional discriminator needs '
            'conditions.')
      emb = _encoder(self.cond_spec, self.embed_dim, self.text)(labels)
      proj = nn.Dense(phi.shape[-1], kernel_init=nn.initializers.normal(0.02),
                      name='projection')(nn.silu(emb))
    elif self.num_classes:
      if labels is None:
        raise errors.ConfigError(
            'a class-conditional discriminator needs labels.')
      proj = nn.Embed(self.num_classes, phi.shape[-1],
                      embedding_init=nn.initializers.normal(0.02))(labels)
    if parts:
      return logit, proj, phi
    return logit if proj is None else logit + jnp.sum(proj * phi, axis=-1)


def _encoder(spec, features, text):
  width, layers_, heads = text
  return conditioning.ConditionEncoder(spec, features, text_width=width,
                                       text_layers=layers_, text_heads=heads,
                                       name='condition')


def minibatch_std(h, group):
  """Appends to h [N, H, W, C] one channel: over each group of `group`
  consecutive images (fewer if N is smaller), the standard deviation of every
  feature, averaged over features. Groups are consecutive, so a group never
  mixes the real and fake halves of a concatenated [real; fake] batch when
  each half is a multiple of the group size."""
  n = h.shape[0]
  g = min(group, n)
  if n % g:
    raise errors.ConfigError(
        f'minibatch std: batch of {n} images is not divisible '
        f'into groups of {g}; choose config.model.d_mbstd_group '
        f'dividing the per-step batch.')
  grouped = h.reshape((n // g, g) + h.shape[1:]).astype(jnp.float32)
  std = jnp.sqrt(jnp.var(grouped, axis=1) + 1e-8).mean(axis=(1, 2, 3))
  feat = jnp.broadcast_to(jnp.repeat(std, g)[:, None, None, None],
                          h.shape[:3] + (1,)).astype(h.dtype)
  return jnp.concatenate([h, feat], axis=-1)


def from_config(cfg, image_shape, num_classes, cond_spec=None):
  """(Generator, Discriminator) for `config.model` and the data's shape; a
  vector or text `cond_spec` (gensynth.data.conditions) with
  config.model.conditional makes both networks condition on it."""
  if cfg.latent_dim <= 0:
    raise errors.ConfigError(
        f'config.model.latent_dim={cfg.latent_dim} must be '
        'positive.')
  if image_shape[0] != image_shape[1]:
    raise errors.ConfigError(
        f'the GAN needs square images, got {image_shape[:2]}.')
  if cfg.g_norm not in ('group', 'none'):
    raise errors.ConfigError(
        f"config.model.g_norm={cfg.g_norm!r}; expected 'group' "
        "or 'none'.")
  for name in ('g_widths', 'd_widths'):
    if not cfg[name] or min(cfg[name]) <= 0:
      raise errors.ConfigError(
          f'config.model.{name}={tuple(cfg[name])} must be '
          'non-empty and positive.')
  check_size(image_shape[0], cfg.g_widths)
  classes, spec = conditioning.resolve(cfg.conditional, num_classes,
                                       cond_spec)
  cond = dict(cond_spec=spec, embed_dim=cfg.embed_dim,
              text=(cfg.text_width, cfg.text_layers, cfg.text_heads))
  if cfg.g_upsample not in ('transpose', 'nearest'):
    raise errors.ConfigError(
        f"config.model.g_upsample={cfg.g_upsample!r}; expected "
        "'transpose' or 'nearest'.")
  if cfg.d_mbstd_group < 0:
    raise errors.ConfigError(
        f'config.model.d_mbstd_group={cfg.d_mbstd_group} must be '
        '0 (off) or a positive group size.')
  d_head = cfg.get('d_head', 0)  # absent from configs saved before it
  if d_head < 0:
    raise errors.ConfigError(
        f'config.model.d_head={d_head} must be 0 (a linear head) or the '
        'positive width of D\'s hidden head layer.')
  latent_film = bool(cfg.get('g_latent_film', False))
  if latent_film and cfg.g_norm == 'none':
    raise errors.ConfigError(
        'config.model.g_latent_film=True feeds z to the normalisations\' '
        "FiLM; it needs config.model.g_norm='group', not 'none'.")
  gen = Generator(image_size=image_shape[0], channels=image_shape[-1],
                  widths=tuple(cfg.g_widths), num_classes=classes,
                  norm=cfg.g_norm, latent_film=latent_film,
                  upsample=cfg.g_upsample, conv_impl=cfg.conv_impl, **cond)
  disc = Discriminator(widths=tuple(cfg.d_widths), num_classes=classes,
                       spectral_norm=cfg.spectral_norm,
                       mbstd_group=cfg.d_mbstd_group, conv_impl=cfg.conv_impl,
                       head=d_head, **cond)
  return gen, disc

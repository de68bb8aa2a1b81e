"""Trained generators (GAN or VAE) behind one interface for launch.sample.

`load(config, workdir)` returns an object with `grid`, `interpolate` and (VAE)
`fuse`, each returning (images [N, H, W, C] in [0, 1], columns) ready for a
PNG grid. The array work is gensynth.synth.latent plus the jitted model.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from gensynth import data as data_lib
from gensynth import errors
from gensynth.evaluation import runs
from gensynth.steps import gan as gan_steps
from gensynth.steps import vae as vae_steps
from gensynth.synth import latent
from gensynth.train import reporting
from gensynth.train import state as state_lib


def load(config, workdir, *, step=None):
  if config.trainer == 'gan':
    return GANModel(config, workdir, step=step)
  if config.trainer == 'vae':
    return VAEModel(config, workdir, step=step)
  raise errors.CheckpointError(
      f'{workdir!r} holds a {config.trainer!r} run; sampling '
      'needs a gan or vae run.')


def write_grid(path, images, ncols):
  reporting.save_png(path, reporting.image_grid(np.clip(images, 0, 1),
                                                ncols=ncols))
  return os.path.abspath(path)


def _keys(seed):
  return jax.random.split(jax.random.key(seed), 3)


def _path_latents(seed, num_paths, num_steps, latent_dim, method):
  k0, k1, _ = _keys(seed)
  z0 = jax.random.normal(k0, (num_paths, latent_dim))
  z1 = jax.random.normal(k1, (num_paths, latent_dim))
  path = latent.interpolate(z0, z1, num_steps, method=method)  # [T, P, D]
  return jnp.swapaxes(path, 0, 1).reshape(-1, latent_dim)  # row = one path


def _grid_labels(classes, per_class):
  return None if classes is None else np.repeat(np.asarray(classes),
                                                per_class).astype(np.int32)


def _path_labels(classes, num_paths, num_steps):
  if classes is None:
    return None
  per_path = np.resize(np.asarray(classes), num_paths)
  return np.repeat(per_path, num_steps).astype(np.int32)


class GANModel:
  """The EMA generator of a GAN run."""
  kind = 'gan'

  def __init__(self, config, workdir, *, step=None):
    _, state, self.info = runs.load_gan(config, workdir, step=step)
    self.config, self.step = config, int(state.step)
    self.num_classes = state_lib.gan_classes(config, self.info['num_classes'])
    self._params = state.ema_params
    self._generate = jax.jit(functools.partial(gan_steps.generate,
                                               state.g_apply))

  def _images(self, z, labels):
    return (np.asarray(self._generate(self._params, z, labels)) + 1.0) / 2.0

  def grid(self, seed, *, classes=None, per_class=10, rows=8):
    labels = _grid_labels(classes, per_class)
    n = per_class * rows if labels is None else len(labels)
    z = jax.random.normal(_keys(seed)[2], (n, self.config.model.latent_dim))
    return self._images(z, labels), per_class

  def interpolate(self, seed, *, classes=None, num_paths=4, num_steps=10,
                  method='spherical', ends=None):
    del ends  # A GAN has no encoder: paths run between random latents.
    z = _path_latents(seed, num_paths, num_steps,
                      self.config.model.latent_dim, method)
    return self._images(z, _path_labels(classes, num_paths,
                                        num_steps)), num_steps


class VAEModel:
  """The decoder (and encoder) of a VAE run."""
  kind = 'vae'

  def __init__(self, config, workdir, *, step=None):
    state, self.info = runs.load_vae(config, workdir, step=step)
    self.config, self.step = config, int(state.step)
    self.num_classes = (self.info['num_classes'] if config.model.conditional
                        else 0)
    self._params = state.params
    opts = dict(apply_fn=state.apply_fn, likelihood=config.model.likelihood,
                image_shape=tuple(self.info['image_shape']),
                autoregressive=bool(config.model.ar_channels))
    self._decode = jax.jit(functools.partial(vae_steps.decode_latents, **opts))
    self._fuse = jax.jit(functools.partial(latent.vae_fuse, **opts))
    self._interp = jax.jit(functools.partial(latent.vae_interpolate, **opts),
                           static_argnames=('num', 'method'))
    self._minus_one_one = config.data.value_range == 'minus_one_one'

  def _to_model(self, x):
    x = np.asarray(x, np.float32)
    return x * 2.0 - 1.0 if self._minus_one_one else x

  def _to_unit(self, x):
    return data_lib.to_unit(x, self.config.data.value_range)

  def _labels(self, labels):
    if not self.num_classes:
      return None
    if labels is None:
      raise errors.InputError('this VAE is class-conditional: pass --classes.')
    return jnp.asarray(labels, jnp.int32)

  def grid(self, seed, *, classes=None, per_class=10, rows=8):
    labels = _grid_labels(classes, per_class)
    n = per_class * rows if labels is None else len(labels)
    _, k1, k2 = _keys(seed)
    z = jax.random.normal(k2, (n, self.config.model.latent_dim))
    return self._to_unit(self._decode(self._params, k1, z,
                                      self._labels(labels))), per_class

  def interpolate(self, seed, *, classes=None, num_paths=4, num_steps=10,
                  method='spherical', ends=None):
    """Paths between random latents, or (ends=(images [2, ...], labels))
    one path between the encodings of two images."""
    _, k1, _ = _keys(seed)
    if ends is None:
      z = _path_latents(seed, num_paths, num_steps,
                        self.config.model.latent_dim, method)
      labels = self._labels(_path_labels(classes, num_paths, num_steps))
      return self._to_unit(self._decode(self._params, k1, z, labels)), \
          num_steps
    images, labels = ends
    labels = None if not self.num_classes else self._labels(
        classes[:1] if classes is not None else labels[:1])
    x = self._to_model(images)
    out = self._interp(self._params, k1, x[:1], x[1:2], labels,
                       num=num_steps, method=method)
    return self._to_unit(out[:, 0]), num_steps

  def fuse(self, seed, inputs, labels=None, *, weights=None, masks=None,
           classes=None):
    """Fuses K images [K, H, W, C] in [0, 1] into one; returns the inputs
    followed by the fusion as one row."""
    _, k1, _ = _keys(seed)
    lab = None
    if self.num_classes:
      lab = self._labels(classes[:1] if classes is not None else
                         (None if labels is None else labels[:1]))
    x = self._to_model(inputs)[:, None]
    fused = self._fuse(self._params, k1, x, lab, weights=weights, masks=masks)
    row = np.concatenate([np.asarray(inputs), self._to_unit(fused)])
    return row, len(row)

"""Trained generators (GAN or VAE) behind one interface for launch.sample.

`load(config, workdir)` returns an object with `grid`, `interpolate` and (VAE)
`fuse`, each returning (images [N, H, W, C] in [0, 1], columns) ready for a
PNG grid. Vector- and text-conditioned models add `conditions` (captions or
vectors -> model input), `conditioned` (one row per condition),
`condition_path` (interpolation between two conditions' embeddings) and
`mix` (a weighted mix of two conditions' embeddings: feature-level fusion
of conditions), and `generate` (images for a batch of conditions, for the
fidelity metrics). The array work is gensynth.synth.latent plus the jitted
model.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from gensynth import data as data_lib
from gensynth import errors
from gensynth.data import conditions as conditions_lib
from gensynth.evaluation import gan as gan_eval
from gensynth.evaluation import runs
from gensynth.steps import gan as gan_steps
from gensynth.steps import vae as vae_steps
from gensynth.synth import latent
from gensynth.train import reporting
from gensynth.train import state as state_lib


def load(config, workdir, *, step=None, temperature=1.0, guidance=0.0,
         latent_scale=1.0, candidates=1, select='logit'):
  """The sampler of a GAN or VAE run; `temperature` applies to a VAE's
  autoregressive head and `guidance` to a VAE trained with condition
  dropout (steps.vae.decode_latents), nothing else. `latent_scale` = psi
  multiplies every latent drawn from the prior (the truncation trick of
  GANs, the prior temperature of VAEs; 1 samples the model as trained).
  `candidates` > 1 (GAN runs): each conditioned image is the best of that
  many samples by the run's discriminator (steps.gan.sample_best_of),
  ranked by `select` (steps.gan.best_of: 'logit', 'match' or 'both')."""
  gan_eval.check_candidates(candidates, select)
  if candidates != 1 and config.trainer != 'gan':
    raise errors.InputError(
        f'candidates={candidates}: choosing among samples uses a GAN\'s '
        f'discriminator; {workdir!r} holds a {config.trainer} run. Leave it '
        'at 1.')
  if not 0.0 <= latent_scale:
    raise errors.InputError(f'latent_scale={latent_scale}: expected a number '
                            '>= 0 (1 samples the model as trained).')
  if temperature != 1.0 and not (config.trainer == 'vae'
                                 and config.model.get('ar_channels')):
    raise errors.InputError(
        f'temperature={temperature}: the sampling temperature applies to a '
        'VAE with an autoregressive head (config.model.ar_channels > 0); '
        f'{workdir!r} holds a {config.trainer} run whose samples do not '
        'draw pixels. Leave it at 1.')
  if config.trainer == 'gan':
    if guidance:
      raise errors.InputError(
          f'guidance={guidance}: classifier-free guidance applies to a VAE '
          f'trained with config.loss.cond_dropout > 0; {workdir!r} holds a '
          'GAN run.')
    model = GANModel(config, workdir, step=step, candidates=candidates,
                     select=select)
  elif config.trainer == 'vae':
    model = VAEModel(config, workdir, step=step, temperature=temperature,
                     guidance=guidance)
  else:
    raise errors.CheckpointError(
        f'{workdir!r} holds a {config.trainer!r} run; sampling '
        'needs a gan or vae run.')
  model.latent_scale = float(latent_scale)
  return model


def write_grid(path, images, ncols, *, zoom=1):
  """Writes images [N, H, W, C] in [0, 1] as one PNG grid, each pixel
  repeated zoom x zoom times (nearest: no new detail, just visible)."""
  if zoom < 1:
    raise errors.InputError(f'zoom must be >= 1, got {zoom}.')
  images = np.clip(images, 0, 1)
  if zoom > 1:
    images = np.repeat(np.repeat(images, zoom, axis=1), zoom, axis=2)
  reporting.save_png(path, reporting.image_grid(images, ncols=ncols))
  return os.path.abspath(path)


def _keys(seed):
  return jax.random.split(jax.random.key(seed), 3)


def _path_latents(seed, num_paths, num_steps, latent_dim, method, scale=1.0):
  k0, k1, _ = _keys(seed)
  z0 = scale * jax.random.normal(k0, (num_paths, latent_dim))
  z1 = scale * jax.random.normal(k1, (num_paths, latent_dim))
  path = latent.interpolate(z0, z1, num_steps, method=method)  # [T, P, D]
  return jnp.swapaxes(path, 0, 1).reshape(-1, latent_dim)  # row = one path


def _grid_labels(classes, per_class):
  return None if classes is None else np.repeat(np.asarray(classes),
                                                per_class).astype(np.int32)


class _Conditioned:
  """What vector- and text-conditioned GANs and VAEs share; subclasses set
  spec, vocab, config, _params and define _embed(params, conds) and
  _from_embedding(params, key, z, emb)."""

  chunk = 250  # images per jitted call in `generate` (one compile)
  latent_scale = 1.0  # psi: prior latents are psi * N(0, I) (see `load`)

  def _normal(self, key, n):
    return self.latent_scale * jax.random.normal(
        key, (n, self.config.model.latent_dim))

  def _need_spec(self):
    if self.spec is None:
      raise errors.InputError(
          'this model is not conditioned on vectors or text (its condition: '
          f'{self.info["condition"]["kind"]}'
          f'{"" if self.config.model.conditional else ", unconditional"}).')

  def conditions(self, prompts=None, vectors=None, *, unknown='error'):
    """Model input for captions (token ids [N, L]) or vectors [N, D]."""
    self._need_spec()
    kind = self.spec['kind']
    if kind == 'text':
      if prompts is None or vectors is not None:
        raise errors.InputError('this model is text-conditioned: give '
                                'prompts (captions), not vectors.')
      return self.vocab.encode(list(prompts), unknown=unknown)
    if vectors is None or prompts is not None:
      raise errors.InputError(
          f'this model is conditioned on vectors of {self.spec["dim"]} '
          'values: give vectors, not prompts.')
    return conditions_lib.check_vectors(vectors, self.spec['dim'])

  def _latents(self, seed, n):
    return self._normal(_keys(seed)[2], n)

  def _images(self, key, z, emb):
    return self._to_unit(self._from_embedding(self._params, key, z, emb))

  def embed(self, conds):
    self._need_spec()
    return self._embed(self._params, jnp.asarray(conds))

  def conditioned(self, seed, conds, *, per_row=10):
    """One row of `per_row` samples per condition (independent latents)."""
    emb = jnp.repeat(self.embed(conds), per_row, axis=0)
    z = self._latents(seed, emb.shape[0])
    return self._images(_keys(seed)[1], z, emb), per_row

  def condition_path(self, seed, conds, *, num_paths=4, num_steps=10):
    """Rows of `num_steps` images moving linearly from the first
    condition's embedding to the second's, one fixed latent per row."""
    emb = self.embed(conds)
    if emb.shape[0] != 2:
      raise errors.InputError(f'a condition path needs 2 conditions, got '
                              f'{emb.shape[0]}.')
    t = jnp.linspace(0.0, 1.0, num_steps)[:, None]
    path = (1.0 - t) * emb[0] + t * emb[1]  # [T, E]
    e = jnp.tile(path, (num_paths, 1))
    z = jnp.repeat(self._latents(seed, num_paths), num_steps, axis=0)
    return self._images(_keys(seed)[1], z, e), num_steps

  def mix(self, seed, conds, weights, *, per_row=10):
    """Rows: each condition alone, then their embeddings mixed with
    `weights` (normalised to sum 1); column j shares one latent."""
    emb = self.embed(conds)
    w = np.asarray(weights, np.float32)
    if w.shape != (emb.shape[0],) or np.any(w < 0) or w.sum() <= 0:
      raise errors.InputError(f'mixing needs {emb.shape[0]} non-negative '
                              f'weights with a positive sum, got {weights}.')
    mixed = jnp.tensordot(jnp.asarray(w / w.sum()), emb, 1)[None]
    rows = jnp.concatenate([emb, mixed])
    e = jnp.repeat(rows, per_row, axis=0)
    z = jnp.tile(self._latents(seed, per_row), (rows.shape[0], 1))
    return self._images(_keys(seed)[1], z, e), per_row

  def generate(self, seed, conds):
    """Images [N, H, W, C] in [0, 1] for conditions [N, ...], one sample
    each, in fixed-size jitted chunks."""
    conds = np.asarray(conds)
    out = []
    for i, start in enumerate(range(0, len(conds), self.chunk)):
      c = conds[start:start + self.chunk]
      pad = self.chunk - len(c)
      c = np.concatenate([c, np.repeat(c[-1:], pad, axis=0)])
      key = jax.random.fold_in(jax.random.key(seed), i)
      z_key, x_key = jax.random.split(key)
      images = self._sample_chunk(x_key, z_key, c)
      out.append(self._to_unit(images)[:self.chunk - pad])
    return np.concatenate(out)

  def _sample_chunk(self, key, z_key, c):
    """One chunk of images for conditions c (model output range)."""
    z = self._normal(z_key, len(c))
    return self._gen_chunk(self._params, key, z, jnp.asarray(c))


def _path_labels(classes, num_paths, num_steps):
  if classes is None:
    return None
  per_path = np.resize(np.asarray(classes), num_paths)
  return np.repeat(per_path, num_steps).astype(np.int32)


class GANModel(_Conditioned):
  """The EMA generator of a GAN run."""
  kind = 'gan'

  def __init__(self, config, workdir, *, step=None, candidates=1,
               select='logit'):
    _, state, self.info = runs.load_gan(config, workdir, step=step)
    self.candidates = candidates
    self.config, self.step = config, int(state.step)
    self.spec = state_lib.cond_spec(config, self.info['condition'])
    self.vocab = runs.vocabulary(self.info) if self.spec else None
    self.num_classes = state_lib.gan_classes(
        config, self.info['num_classes'], self.info['condition'])
    self._params = state.ema_params
    g_apply = state.g_apply
    self._generate = jax.jit(functools.partial(gan_steps.generate, g_apply))
    self._embed = jax.jit(lambda p, c: g_apply(
        {'params': p}, jnp.zeros((c.shape[0], config.model.latent_dim)), c,
        embed_only=True))
    self._from_embedding = jax.jit(lambda p, key, z, e: g_apply(
        {'params': p}, z, None, emb=e))
    self._gen_chunk = jax.jit(lambda p, key, z, c: g_apply({'params': p}, z,
                                                           c))
    if candidates > 1:
      gan_eval.check_candidates(candidates, select, self.spec is not None
                                or bool(self.num_classes))
      self._d_vars = gan_steps.discriminator_variables(state)
      self._sample_best_of = jax.jit(functools.partial(
          gan_steps.sample_best_of, g_apply=g_apply, d_apply=state.d_apply,
          latent_dim=config.model.latent_dim, candidates=candidates,
          group=config.model.get('d_mbstd_group') or 1, select=select),
          static_argnames=('num',))

  def _best(self, z_key, num, labels):
    """`num` images (model output range), each the best of `candidates` by
    D; candidate 0 is the plain sampler's latent for z_key."""
    return self._sample_best_of(
        self._params, self._d_vars, z_key,
        None if labels is None else jnp.asarray(labels), num=num,
        latent_scale=self.latent_scale)

  def _sample_chunk(self, key, z_key, c):
    if self.candidates == 1:
      return super()._sample_chunk(key, z_key, c)
    return self._best(z_key, len(c), c)

  def _no_candidates(self, what):
    if self.candidates != 1:
      raise errors.InputError(
          f'candidates={self.candidates}: {what} has no single condition per '
          'image for the discriminator to judge; candidates apply to rows of '
          'conditions (--mode=text or --mode=vector) and to --fidelity.')

  def conditioned(self, seed, conds, *, per_row=10):
    if self.candidates == 1:
      return super().conditioned(seed, conds, per_row=per_row)
    self._need_spec()
    rows = np.repeat(np.asarray(conds), per_row, axis=0)
    return self._to_unit(self._best(_keys(seed)[2], len(rows), rows)), per_row

  def condition_path(self, seed, conds, **kw):
    self._no_candidates('an interpolation between two conditions')
    return super().condition_path(seed, conds, **kw)

  def mix(self, seed, conds, weights, **kw):
    self._no_candidates('a mix of conditions')
    return super().mix(seed, conds, weights, **kw)

  @staticmethod
  def _to_unit(x):
    return (np.asarray(x) + 1.0) / 2.0

  def _class_images(self, z, labels):
    return self._to_unit(self._generate(self._params, z, labels))

  def grid(self, seed, *, classes=None, per_class=10, rows=8):
    if self.spec is not None:
      raise errors.InputError(
          f'this GAN is {self.spec["kind"]}-conditioned: use --mode=text or '
          '--mode=vector.')
    labels = _grid_labels(classes, per_class)
    n = per_class * rows if labels is None else len(labels)
    if self.candidates > 1:
      return self._to_unit(self._best(_keys(seed)[2], n, labels)), per_class
    z = self._normal(_keys(seed)[2], n)
    return self._class_images(z, labels), per_class

  def interpolate(self, seed, *, classes=None, num_paths=4, num_steps=10,
                  method='spherical', ends=None):
    del ends  # A GAN has no encoder: paths run between random latents.
    if self.candidates != 1:
      raise errors.InputError(
          f'candidates={self.candidates}: an interpolation moves one latent '
          'along a path; choosing among samples per image would break it. '
          'Leave candidates at 1.')
    z = _path_latents(seed, num_paths, num_steps,
                      self.config.model.latent_dim, method,
                      self.latent_scale)
    return self._class_images(z, _path_labels(classes, num_paths,
                                              num_steps)), num_steps


class VAEModel(_Conditioned):
  """The decoder (and encoder) of a VAE run."""
  kind = 'vae'

  def __init__(self, config, workdir, *, step=None, temperature=1.0,
               guidance=0.0):
    if guidance and not config.loss.get('cond_dropout', 0.0):
      raise errors.InputError(
          f'guidance={guidance}: {workdir!r} was trained without condition '
          'dropout (config.loss.cond_dropout=0), so it has no null '
          'condition to guide against; retrain with --config.loss.'
          'cond_dropout=0.1 or sample with guidance 0.')
    state, self.info = runs.load_vae(config, workdir, step=step)
    self.config, self.step = config, int(state.step)
    self.spec = state_lib.cond_spec(config, self.info['condition'])
    self.vocab = runs.vocabulary(self.info) if self.spec else None
    self.num_classes = (self.info['num_classes'] if config.model.conditional
                        and self.spec is None else 0)
    self._params = state.params
    apply_fn = state.apply_fn
    self._embed = jax.jit(lambda p, c: apply_fn(
        {'params': p}, c, method='embed_condition'))
    opts = dict(apply_fn=state.apply_fn, likelihood=config.model.likelihood,
                image_shape=tuple(self.info['image_shape']),
                autoregressive=bool(config.model.ar_channels))
    self._decode = jax.jit(functools.partial(
        vae_steps.decode_latents, temperature=temperature, guidance=guidance,
        **opts))
    # Samples from condition embeddings (conditioned rows, paths, mixes),
    # with an autoregressive head too.
    self._from_embedding = jax.jit(functools.partial(
        vae_steps.decode_latents, temperature=temperature, guidance=guidance,
        embedded=True, **opts))
    self._fuse = jax.jit(functools.partial(latent.vae_fuse, **opts))
    self._interp = jax.jit(functools.partial(latent.vae_interpolate, **opts),
                           static_argnames=('num', 'method'))
    self._minus_one_one = config.data.value_range == 'minus_one_one'
    self._gen_chunk = self._decode

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
    if self.spec is not None:
      raise errors.InputError(
          f'this VAE is {self.spec["kind"]}-conditioned: use --mode=text or '
          '--mode=vector.')
    labels = _grid_labels(classes, per_class)
    n = per_class * rows if labels is None else len(labels)
    _, k1, k2 = _keys(seed)
    z = self._normal(k2, n)
    return self._to_unit(self._decode(self._params, k1, z,
                                      self._labels(labels))), per_class

  def interpolate(self, seed, *, classes=None, num_paths=4, num_steps=10,
                  method='spherical', ends=None):
    """Paths between random latents, or (ends=(images [2, ...], labels))
    one path between the encodings of two images."""
    _, k1, _ = _keys(seed)
    if ends is None:
      z = _path_latents(seed, num_paths, num_steps,
                        self.config.model.latent_dim, method,
                        self.latent_scale)
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

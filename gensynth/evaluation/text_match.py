"""R-precision of text-conditioned samples, from an evaluator text-image
encoder trained on real (image, caption) pairs only.

The evaluator is a small dual encoder (a conv image tower and the same kind
of transformer text tower the generators use, each projected to a shared
unit sphere) trained with the symmetric contrastive loss of CLIP on the
training split's real pairs, from a fixed seed, inside the evaluation. No
generator ever sees it, so a generator cannot learn to please it.

R-precision (Xu et al., AttnGAN 2018): for each image, its own caption and
`num_candidates - 1` captions of other test images are ranked by cosine
similarity; the score is the fraction of images whose own caption ranks
first (chance: 1 / num_candidates). It is reported for generated images and
for the real test images (the ceiling).

Captions that leave attributes out ("a disc") also describe other images
("a small red disc" is one), so a random other caption can be just as true
of an image as its own. With `describes` (bool [N, N]: caption j is true of
image i) candidates are drawn only from captions that are false of the
image, the "mismatched" captions AttnGAN's protocol means; without it, from
any other row. For generated images the evaluation passes two such masks
(gensynth.evaluation.conditions): captions false of the real image the
condition came from, and captions that contradict the condition itself
(`metrics.conditions.captions_compatible`). A sample is asked only for what
its caption names, so the second mask is the one that never counts a
caption the sample faithfully obeys as a wrong answer.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gensynth import errors
from gensynth.models import conditioning


class _ImageTower(nn.Module):
  dim: int

  @nn.compact
  def __call__(self, x):
    h = x * 2.0 - 1.0
    for width in (32, 64, 128):
      h = nn.silu(nn.Conv(width, (3, 3), strides=(2, 2))(h))
    # Keep where things are: flatten the last map, do not pool it away.
    h = nn.silu(nn.Dense(256)(h.reshape(h.shape[0], -1)))
    return _unit(nn.Dense(self.dim)(h))


class _TextTower(nn.Module):
  vocab_size: int
  max_len: int
  dim: int

  @nn.compact
  def __call__(self, tokens):
    h = conditioning.TextEncoder(self.vocab_size, self.max_len, width=64,
                                 num_layers=2, num_heads=4)(tokens)
    return _unit(nn.Dense(self.dim)(h))


class DualEncoder(nn.Module):
  """(images [N, H, W, C] in [0, 1], token ids [N, L]) -> unit embeddings
  and the learned similarity scale."""
  vocab_size: int
  max_len: int
  dim: int = 64

  def setup(self):
    self.image_tower = _ImageTower(self.dim)
    self.text_tower = _TextTower(self.vocab_size, self.max_len, self.dim)
    self.log_scale = self.param('log_scale',
                                lambda _: jnp.log(jnp.asarray(10.0)))

  def image(self, x):
    return self.image_tower(x)

  def text(self, tokens):
    return self.text_tower(tokens)

  def __call__(self, x, tokens):
    return self.image(x), self.text(tokens), jnp.exp(self.log_scale)


def _unit(v):
  return v / jnp.sqrt(jnp.sum(v * v, -1, keepdims=True) + 1e-12)


def contrastive_loss(img, txt, scale):
  """Symmetric InfoNCE over a batch of matching (image, text) rows."""
  logits = scale * img @ txt.T
  labels = jnp.arange(logits.shape[0])
  return 0.5 * (optax.softmax_cross_entropy_with_integer_labels(
      logits, labels).mean() + optax.softmax_cross_entropy_with_integer_labels(
          logits.T, labels).mean())


def train(images, tokens, vocab_size, *, steps=800, batch_size=128, seed=0,
          lr=2e-3):
  """(model, params) fitted on real pairs: images uint8 [N, H, W, C], token
  ids [N, L]. Batches are a pure function of (seed, step)."""
  images, tokens = np.asarray(images), np.asarray(tokens)
  if len(images) != len(tokens) or len(images) < 2:
    raise errors.InputError(
        f'the evaluator needs matching (image, caption) pairs, at least 2; '
        f'got {len(images)} images and {len(tokens)} captions.')
  batch_size = min(batch_size, len(images))
  model = DualEncoder(vocab_size, tokens.shape[1])
  params = model.init(jax.random.key(seed), jnp.zeros((1,) + images.shape[1:]),
                      jnp.ones((1, tokens.shape[1]), jnp.int32))['params']
  tx = optax.adam(optax.cosine_decay_schedule(lr, steps))
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, t):
    def loss_fn(p):
      return contrastive_loss(*model.apply({'params': p}, x, t))
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(seed)
  for _ in range(steps):
    idx = rng.choice(len(images), batch_size, replace=False)
    params, opt_state, _ = step(params, opt_state,
                                images[idx].astype(np.float32) / 255.0,
                                tokens[idx])
  return model, params


def embed(model, params, images=None, tokens=None, *, batch_size=500):
  """Unit image or text embeddings [N, dim] in fixed-size jitted batches."""
  fn = jax.jit(functools.partial(
      model.apply, method='image' if images is not None else 'text'))
  data = np.asarray(images if images is not None else tokens)
  out = []
  for start in range(0, len(data), batch_size):
    chunk = data[start:start + batch_size]
    pad = batch_size - len(chunk)
    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
    if images is not None:
      chunk = chunk.astype(np.float32) / (255.0 if data.dtype == np.uint8
                                          else 1.0)
    out.append(np.asarray(fn({'params': params}, chunk))[:batch_size - pad])
  return np.concatenate(out)


def r_precision(image_emb, text_emb, *, num_candidates=100, seed=0,
                describes=None):
  """Fraction of rows i whose own text (row i of text_emb) is the most
  similar to image i among it and num_candidates - 1 other rows' texts
  (with `describes`, only rows j whose caption is false of image i)."""
  image_emb, text_emb = np.asarray(image_emb), np.asarray(text_emb)
  n = len(image_emb)
  if text_emb.shape != image_emb.shape or n < num_candidates:
    raise errors.InputError(
        f'r_precision needs matching [N, D] embeddings with N >= '
        f'num_candidates={num_candidates}; got {image_emb.shape} and '
        f'{text_emb.shape}.')
  rng = np.random.default_rng(seed)
  if describes is None:
    # Candidates: other rows, drawn without the row itself.
    others = rng.integers(0, n - 1, (n, num_candidates - 1))
    others += others >= np.arange(n)[:, None]
  else:
    allowed = ~np.asarray(describes, bool)
    if allowed.shape != (n, n):
      raise errors.InputError(f'describes must be [{n}, {n}], got '
                              f'{allowed.shape}.')
    allowed[np.arange(n), np.arange(n)] = False
    count = allowed.sum(1)
    if count.min() < num_candidates - 1:
      raise errors.InputError(
          f'row {int(count.argmin())} has {int(count.min())} mismatched '
          f'captions, fewer than num_candidates - 1 = {num_candidates - 1}.')
    # A uniform draw k among each row's allowed columns: the first column
    # whose running count reaches k + 1. Offsetting row i's counts by
    # i * (n + 1) makes one sorted array, searched for all rows at once.
    picks = (rng.random((n, num_candidates - 1)) * count[:, None]).astype(int)
    offset = np.arange(n)[:, None] * (n + 1)
    flat = (np.cumsum(allowed, 1) + offset).ravel()
    others = np.searchsorted(flat, picks + 1 + offset) - offset // (n + 1) * n
  cand = np.concatenate([np.arange(n)[:, None], others], 1)
  sims = np.einsum('nd,nkd->nk', image_emb, text_emb[cand])
  return float(np.mean(np.argmax(sims, 1) == 0))

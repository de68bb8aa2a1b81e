"""Condition encoders: class ids, vectors or captions -> one embedding.

Every conditional model takes its condition through a `ConditionEncoder`
built from the data's condition spec (gensynth.data.conditions.spec_of):

  label   int32 [N]        -> embedding table
  vector  float32 [N, D]   -> MLP
  text    int32 [N, L] ids -> token + position embeddings, a small pre-norm
                              transformer (padding masked out), mean pooling
                              over the words

and consumes the embedding [N, features] through FiLM / conditional
normalisation (generators, decoders) or projection (discriminators).
"""

from typing import Any

import flax
import flax.linen as nn
import jax.numpy as jnp

from gensynth import errors

KINDS = ('label', 'vector', 'text')


class TextEncoder(nn.Module):
  """Token ids [N, L] (0 = padding) -> pooled features [N, width]."""
  vocab_size: int
  max_len: int
  width: int = 64
  num_layers: int = 2
  num_heads: int = 4

  @nn.compact
  def __call__(self, tokens):
    if tokens.ndim != 2 or tokens.shape[1] != self.max_len:
      raise errors.InputError(
          f'text conditions must be token ids [N, {self.max_len}], got shape '
          f'{tokens.shape}.')
    mask = tokens > 0
    h = nn.Embed(self.vocab_size, self.width,
                 embedding_init=nn.initializers.normal(0.02))(tokens)
    pos = self.param('position', nn.initializers.normal(0.02),
                     (self.max_len, self.width))
    h = h + pos[None]
    attn_mask = nn.make_attention_mask(mask, mask)
    for _ in range(self.num_layers):
      y = nn.LayerNorm()(h)
      # No projection biases: a key bias adds the same q.b to every logit
      # of a query, which the softmax cancels; its gradient is round-off
      # that Adam would amplify into full-size steps (the pre-norm
      # LayerNorm's bias already shifts the inputs).
      h = h + nn.MultiHeadDotProductAttention(
          num_heads=self.num_heads, qkv_features=self.width, use_bias=False)(
              y, y, mask=attn_mask)
      y = nn.LayerNorm()(h)
      h = h + nn.Dense(self.width)(nn.gelu(nn.Dense(2 * self.width)(y)))
    h = nn.LayerNorm()(h)
    weights = mask.astype(h.dtype)[..., None]
    return jnp.sum(h * weights, 1) / jnp.maximum(jnp.sum(weights, 1), 1.0)


class ConditionEncoder(nn.Module):
  """A condition of `spec['kind']` -> embedding [N, features]."""
  spec: Any  # a frozen condition spec (freeze)
  features: int
  text_width: int = 64
  text_layers: int = 2
  text_heads: int = 4

  @nn.compact
  def __call__(self, cond):
    kind = self.spec['kind']
    if kind == 'label':
      return nn.Embed(self.spec['num_classes'], self.features)(cond)
    if kind == 'vector':
      dim = self.spec['dim']
      if cond.ndim != 2 or cond.shape[-1] != dim:
        raise errors.InputError(
            f'vector conditions must be [N, {dim}], got shape {cond.shape}.')
      if 'mean' in self.spec:
        cond = (cond - jnp.asarray(self.spec['mean'], cond.dtype)) / \
            jnp.asarray(self.spec['std'], cond.dtype)
      h = nn.silu(nn.Dense(2 * self.features)(cond))
      return nn.Dense(self.features)(h)
    if kind == 'text':
      h = TextEncoder(len(self.spec['words']) + 1, self.spec['max_len'],
                      self.text_width, self.text_layers, self.text_heads)(cond)
      return nn.Dense(self.features)(h)
    raise errors.ConfigError(f'condition kind {kind!r} unknown; expected one '
                             f'of {KINDS}.')


def freeze(spec):
  """A hashable copy of a condition spec (lists become tuples), fit for a
  module field; None stays None."""
  if spec is None:
    return None
  return flax.core.FrozenDict({k: tuple(v) if isinstance(v, list) else v
                               for k, v in dict(spec).items()})


def resolve(conditional, num_classes, spec):
  """(class count, frozen vector/text spec or None) a model is built with:
  class ids for label specs (and for no spec), an encoder for the others,
  nothing for an unconditional model."""
  if not conditional:
    return 0, None
  if spec is None or spec['kind'] == 'label':
    return (spec or {}).get('num_classes', num_classes), None
  return 0, freeze(spec)


def dummy(spec, n=1):
  """A zero condition batch of `spec`'s shape (for model initialisation)."""
  kind = spec['kind']
  if kind == 'label':
    return jnp.zeros((n,), jnp.int32)
  if kind == 'vector':
    return jnp.zeros((n, spec['dim']), jnp.float32)
  return jnp.ones((n, spec['max_len']), jnp.int32)



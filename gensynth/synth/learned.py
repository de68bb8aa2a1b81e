"""Learned fusion as a pure function of (params, sources).

The network (gensynth.models.fusion.FusionNet) predicts per-pixel weights of
each source and applies them through a pyramid (or per-pixel) blend. Train
one with `python -m launch.train --config=gensynth/configs/fusion_exposure.py`
(or fusion_multifocus.py) and load it with
gensynth.evaluation.runs.load_fusion, which returns the model and its
parameters:

  model, params, _ = runs.load_fusion('runs/fusion_exposure')
  fuse = jax.jit(functools.partial(learned.learned_fusion, model=model))
  fused = fuse(params, sources)
"""

import jax.numpy as jnp

from gensynth import errors
from gensynth.synth import checks
from gensynth.synth import compiled

MIN_SIDE = 8


def _prepare(sources, model):
  x, _ = checks.stack_raw(sources, 'sources')  # [K, ..., H, W, C]
  if x.shape[0] < 2:
    raise errors.InputError(
        f'sources: {x.shape[0]} image; learned fusion needs K >= 2 sources.')
  if min(x.shape[-3:-1]) < MIN_SIDE:
    raise errors.InputError(
        f'sources: {x.shape[-3]}x{x.shape[-2]} pixels; learned fusion needs '
        f'at least {MIN_SIDE}x{MIN_SIDE}.')
  if model.prior == 'mertens' and x.shape[-1] != 3:
    raise errors.InputError(
        f'sources: {x.shape[-1]} channels; this network (Mertens prior) '
        'fuses RGB images.')
  lead = x.shape[1:-3]
  flat = x.reshape((x.shape[0], -1) + x.shape[-3:])
  return jnp.moveaxis(flat, 0, 1), lead  # [B, K, H, W, C]


@compiled.op
def learned_fusion(params, sources, *, model):
  """Fuses K >= 2 sources with a trained FusionNet.

  Args:
    params: the network's parameters.
    sources: K images [..., H, W, C] (list or [K, ..., H, W, C] array; uint8,
      uint16 or float in [0, 1]), any K >= 2 and any size >= 8x8.
    model: the FusionNet the parameters belong to.

  Returns:
    fused float image [..., H, W, C] (not clipped).
  """
  return fusion_and_weights(params, sources, model=model)[0]


@compiled.op
def fusion_and_weights(params, sources, *, model):
  """(fused [..., H, W, C], weights [K, ..., H, W]): the fused image and the
  per-pixel weights the network gave each source (non-negative, summing to
  one over K)."""
  x, lead = _prepare(sources, model)
  fused, w = model.apply({'params': params}, x)
  w = jnp.moveaxis(w, 1, 0).reshape((w.shape[1],) + lead + w.shape[-2:])
  return fused.reshape(lead + fused.shape[-3:]), w

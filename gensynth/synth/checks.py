"""Argument validation shared by the synthesis ops and metrics (trace time)."""

import jax
import jax.numpy as jnp
import numpy as np

from gensynth import errors

_FLOATS = (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64)


def image(x, name, *, min_hw=1, channels=None):
  """Checks an [..., H, W, C] image; integer images are scaled to [0, 1].

  uint8 and uint16 map by their maximum (255, 65535); float images pass
  through as they are (float16/bfloat16 are computed in float32).
  """
  x = image_layout(x, name, min_hw=min_hw, channels=channels)
  if x.dtype == jnp.uint8 or x.dtype == jnp.uint16:
    return x.astype(jnp.float32) / float(np.iinfo(x.dtype).max)
  finite(x, name)
  if x.dtype in (jnp.float16, jnp.bfloat16):
    return x.astype(jnp.float32)
  return x


def image_layout(x, name, *, min_hw=1, channels=None):
  """`image`'s checks of shape and dtype alone: x as it came (an array), its
  pixels neither read nor converted. For callers that convert integer
  images later, on the device (`panorama.stitch`)."""
  x = jnp.asarray(x) if not hasattr(x, 'dtype') else x
  if x.ndim < 3:
    raise errors.InputError(
        f'{name}: expected an image shaped [..., H, W, C], got '
        f'shape {tuple(x.shape)}.')
  h, w, c = x.shape[-3:]
  if h < min_hw or w < min_hw:
    raise errors.InputError(
        f'{name}: image of {h}x{w} pixels is too small; this op '
        f'needs at least {min_hw}x{min_hw}.')
  if channels is not None and c not in channels:
    raise errors.InputError(
        f'{name}: {c} channels, expected one of {channels}.')
  if not (x.dtype in (jnp.uint8, jnp.uint16) or x.dtype in _FLOATS):
    raise errors.InputError(
        f'{name}: dtype {x.dtype} unsupported; expected uint8, '
        'uint16 or a float dtype.')
  return x


def values(x, name, *, shape=None, min_ndim=0, expected=''):
  """Checks a numeric non-image array (points, latents, weights, matrices).

  shape: the exact shape required, with None for any size on that axis.
  Integers and float16/bfloat16 become float32; float32/64 stay as they are.
  NaN/Inf are refused as in `finite`.
  """
  x = jnp.asarray(x) if not hasattr(x, 'dtype') else x
  what = f' ({expected})' if expected else ''
  if x.dtype == jnp.bool_ or not (jnp.issubdtype(x.dtype, jnp.integer) or
                                  jnp.issubdtype(x.dtype, jnp.floating)):
    raise errors.InputError(
        f'{name}: dtype {x.dtype} unsupported; expected integer '
        f'or float values{what}.')
  bad_shape = x.ndim < min_ndim
  if shape is not None:
    bad_shape |= x.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(x.shape, shape))
  if bad_shape:
    raise errors.InputError(f'{name}: shape {tuple(x.shape)} unexpected{what}.')
  if x.dtype not in (jnp.float32, jnp.float64):
    x = x.astype(jnp.float32)
  finite(x, name)
  return x


def finite(x, name):
  """Raises a ValueError if a concrete float array holds NaN or Inf.

  Called eagerly, every public op checks its pixels (one scalar read back).
  Inside the caller's own jax.jit traced values are unknown at trace time
  and the check is skipped: compiled code never syncs with the host (a
  concrete constant the trace closes over is still checked, once).
  """
  if isinstance(x, jax.core.Tracer) or x.size == 0:
    return
  if isinstance(x, np.ndarray):
    ok = np.all(np.isfinite(x))
  else:
    # A concrete array met while the caller traces (e.g. a constant closed
    # over by their jax.jit): evaluate now rather than stage the check.
    with jax.ensure_compile_time_eval():
      ok = bool(jnp.all(jnp.isfinite(x)))
  if not ok:
    raise errors.InputError(
        f'{name}: holds NaN or Inf values; expected finite '
        'values (e.g. replace them with np.nan_to_num first).')


def same_shape(arrays, names):
  shapes = [tuple(a.shape) for a in arrays]
  if len(set(shapes)) > 1:
    listed = ', '.join(f'{n}={s}' for n, s in zip(names, shapes))
    raise errors.InputError(f'inputs must share one shape, got {listed}.')


def stack(images, name):
  """A sequence of images, or one array with the image index first, -> [N, ...]."""
  if isinstance(images, (list, tuple)):
    if not images:
      raise errors.InputError(f'{name}: no images given.')
    arrs = [image(x, f'{name}[{i}]') for i, x in enumerate(images)]
    same_shape(arrs, [f'{name}[{i}]' for i in range(len(arrs))])
    return jnp.stack(arrs)
  x = image(images, name)
  if x.ndim < 4:
    raise errors.InputError(
        f'{name}: expected a list of images or an array [N, ..., '
        f'H, W, C], got shape {tuple(x.shape)}.')
  return x


def stack_raw(images, name):
  """Like `stack`, but integer images stay integer: (x [N, ...], to_float).

  For ops that visit the N images one at a time (a lax.scan), converting
  each slice there reads 1 byte per uint8 value instead of materialising a
  float copy of the whole stack first. to_float(x[i]) equals stack(...)[i].
  """
  if isinstance(images, (list, tuple)):
    if not images:
      raise errors.InputError(f'{name}: no images given.')
    raw = [jnp.asarray(x) if not hasattr(x, 'dtype') else x for x in images]
    kinds = {x.dtype for x in raw}
    if len(kinds) == 1 and next(iter(kinds)) in (jnp.uint8, jnp.uint16):
      for i, x in enumerate(raw):
        image(x, f'{name}[{i}]')  # shape checks only: integers are finite
      same_shape(raw, [f'{name}[{i}]' for i in range(len(raw))])
      x = jnp.stack(raw)
    else:
      return stack(images, name), lambda v: v
  else:
    x = jnp.asarray(images) if not hasattr(images, 'dtype') else images
    if x.dtype not in (jnp.uint8, jnp.uint16):
      return stack(images, name), lambda v: v
    image(x, name)
    if x.ndim < 4:
      raise errors.InputError(
          f'{name}: expected a list of images or an array [N, '
          f'..., H, W, C], got shape {tuple(x.shape)}.')
  top = float(np.iinfo(x.dtype).max)
  return x, lambda v: v.astype(jnp.float32) / top


def mask_like(mask, img_shape, name):
  """A [..., H, W] or [..., H, W, 1|C] weight map for images of img_shape.

  Leading axes are broadcast to the images'; a single channel stays single
  (it broadcasts in arithmetic, and filtering one channel is cheaper).
  Boolean masks become 0/1 floats.
  """
  mask = jnp.asarray(mask)
  if mask.dtype == jnp.bool_:
    mask = mask.astype(jnp.float32)
  m = image(mask[..., None] if mask.ndim == len(img_shape) - 1 else mask, name)
  if m.shape[-3:-1] != tuple(img_shape[-3:-1]) or m.shape[-1] not in (
      1, img_shape[-1]):
    raise errors.InputError(
        f'{name}: shape {tuple(mask.shape)} does not match the '
        f'images {tuple(img_shape)}; expected [H, W] or '
        '[H, W, 1|C] with the same H, W.')
  return jnp.broadcast_to(m, tuple(img_shape[:-1]) + m.shape[-1:])

"""Public ops that run as one compiled program when called eagerly.

Called outside any trace, a JAX function runs op by op: each primitive at
each new shape is compiled on its own, and a pyramid fusion is hundreds of
them. `op` makes such a call compile the whole function once per input
shape and setting (`jax.jit`, cached for the process and, under the launch
scripts, on disk), which is how the caller would have run it under their own
`jax.jit` anyway. Inside a caller's trace (their `jit`, `vmap`, `grad`) the
op is traced inline, exactly as before.

Which arguments are static: Python and NumPy scalars, strings, None, tuples
of them and other hashable objects such as a Flax module (levels, radii,
out_hw, model=...): a new value compiles anew, as under
`jax.jit(functools.partial(op, levels=...))`. Arrays, lists (of images,
weights) and dicts (parameters) are traced, so new values of the same shape
reuse the program. A call with an unhashable setting, or with 64-bit
integer arrays (which jit would narrow), runs op by op.

The value checks that `checks` makes on concrete inputs (no NaN or Inf) run
on the host before the compiled call, naming the argument as the op does
(`images[1]: holds NaN or Inf values ...`); shape and dtype checks run
while the op is traced, as before. An op with other value checks passes
them as `host_check` (warp_perspective: the homography is invertible).
"""

import functools
import inspect

import jax
import numpy as np

from gensynth.synth import checks


def _is_static(value):
  if isinstance(value, np.generic):
    return True  # a NumPy scalar setting (levels=np.int64(4)), as a number
  if isinstance(value, (list, dict)) or hasattr(value, 'dtype'):
    return False  # arrays, lists of images, parameter trees
  if isinstance(value, tuple):
    return all(_is_static(v) for v in value)
  return True  # Python scalars, strings, None, a model's module


def _key(value):
  """A hashable key that tells 1, 1.0 and True apart."""
  if isinstance(value, tuple):
    return ('tuple',) + tuple(_key(v) for v in value)
  return (type(value).__name__, value)


class _Static:
  """The static arguments of one call, hashable for jax.jit's cache."""

  def __init__(self, values):
    self.values = values
    self._key = tuple(sorted((k, _key(v)) for k, v in values.items()))

  def __hash__(self):
    return hash(self._key)

  def __eq__(self, other):
    return isinstance(other, _Static) and self._key == other._key


def _check_finite(name, value):
  """checks.finite on every float leaf of a traced argument, host side."""
  if isinstance(value, (list, tuple)):
    for i, v in enumerate(value):
      _check_finite(f'{name}[{i}]', v)
    return
  if isinstance(value, (float, np.floating)):
    value = np.asarray(value)
  if hasattr(value, 'dtype') and np.issubdtype(value.dtype, np.floating):
    checks.finite(value, name)


def _narrowed(leaf):
  """Whether jit would pass this array on with another dtype (64-bit
  integers without jax_enable_x64); float64 -> float32 is what the ops do
  anyway."""
  dtype = getattr(leaf, 'dtype', None)
  if dtype is None or dtype == np.float64:
    return False
  return jax.dtypes.canonicalize_dtype(dtype) != dtype


def op(fn=None, *, host_check=None):
  """Decorator: see the module docstring.

  host_check: optional fn(arguments) called with the bound arguments of
  every call, for an op's value checks beyond NaN/Inf, which a compiled
  program cannot make; it checks the arguments that are concrete (not
  tracers; a constant closed over by the caller's jit is concrete) and
  raises or returns.
  """
  if fn is None:
    return functools.partial(op, host_check=host_check)
  signature = inspect.signature(fn)
  for p in signature.parameters.values():
    if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
      raise TypeError(f'{fn.__name__}: compiled.op needs named parameters.')

  @functools.partial(jax.jit, static_argnums=1)
  def run(traced, static):
    return fn(**traced, **static.values)

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    try:
      bound = signature.bind(*args, **kwargs)
    except TypeError:
      return fn(*args, **kwargs)  # Python's own message for a bad call
    bound.apply_defaults()
    if host_check is not None:
      host_check(bound.arguments)
    if any(isinstance(leaf, jax.core.Tracer)
           for leaf in jax.tree.leaves((args, kwargs))):
      return fn(*args, **kwargs)  # part of the caller's trace
    traced, static = {}, {}
    for name, value in bound.arguments.items():
      if _is_static(value):
        static[name] = value
      else:
        _check_finite(name, value)
        traced[name] = value
    if any(_narrowed(leaf) for leaf in jax.tree.leaves(traced)):
      # e.g. int64: jit would see int32, and a dtype error would name that.
      return fn(*args, **kwargs)
    static = _Static(static)
    try:
      hash(static)
    except TypeError:
      return fn(*args, **kwargs)
    return run(traced, static)

  wrapper.compiled = run  # for tests that count compilations
  return wrapper

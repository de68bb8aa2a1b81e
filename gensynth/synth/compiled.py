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

The trace cache. JAX's persistent compilation cache saves the XLA compile
of a program, but every new process still traces and lowers the Python
function before it can look the program up, and for a panorama's stages
that was most of a warm command's time (BUILD_NOTES.md, "Start-up,
compile latency"). `jit` (and so every `op`) can keep the traced program
too: with `set_trace_cache(directory)` a call at a new shape and setting
exports the traced function (`jax.export`, StableHLO, no pickle) into the
directory, and later processes load it instead of tracing. Keys name the
function, the argument shapes, dtypes and tree, the static settings, the
JAX version and backend, and a digest of gensynth's own source, so an edited
gensynth never runs a stale program. Off unless a caller turns it on (the
launch scripts do, beside the compilation cache). Settings that are not
plain values (a Flax module), and functions JAX cannot export, run through
`jax.jit` as before.
"""

import functools
import hashlib
import inspect
import logging
import os
import pathlib
import tempfile
import threading

import jax
import jaxlib
import numpy as np

from gensynth import errors
from gensynth.synth import checks

_log = logging.getLogger(__name__)


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
    self.key = tuple(sorted((k, _key(v)) for k, v in values.items()))

  def __hash__(self):
    return hash(self.key)

  def __eq__(self, other):
    return isinstance(other, _Static) and self.key == other.key


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

  def traced_call(traced, static):
    return fn(**traced, **static.values)

  traced_call.__qualname__ = fn.__qualname__
  traced_call.__module__ = fn.__module__
  run = jit(traced_call, static_argnums=1, key_of_static=lambda s: s.key)

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


# ---------------------------------------------------------------- trace cache


class _TraceCache:
  """Where exported programs live (process-wide, like JAX's compilation
  cache directory), and a count of what this process did with it."""

  def __init__(self):
    self.directory = None
    self.max_bytes = 0
    self.counts = {'exported': 0, 'loaded': 0}
    self.lock = threading.RLock()  # an op may call an op while traced


_CACHE = _TraceCache()
_PLAIN = (bool, int, float, str, bytes, type(None), np.generic)


def set_trace_cache(directory, *, max_mb=256):
  """Turns the trace cache on in `directory` (created; None turns it off).
  The directory is bounded to `max_mb`: the least recently used programs go
  first. Several processes may share it (entries are written atomically)."""
  if directory is not None:
    directory = os.path.expanduser(str(directory))
    os.makedirs(directory, exist_ok=True)
  _CACHE.directory = directory
  _CACHE.max_bytes = int(max_mb * 2**20)


def trace_cache_counts():
  """{'exported': n, 'loaded': n}: programs this process traced and saved,
  and programs it loaded instead of tracing."""
  return dict(_CACHE.counts)


@functools.cache
def _source_digest():
  """sha256 of gensynth's Python source: an edited gensynth keys anew."""
  root = pathlib.Path(__file__).resolve().parents[1]
  h = hashlib.sha256()
  for path in sorted(root.rglob('*.py')):
    h.update(str(path.relative_to(root)).encode())
    h.update(path.read_bytes())
  return h.hexdigest()


@functools.cache
def _file_digest(filename):
  try:
    return hashlib.sha256(pathlib.Path(filename).read_bytes()).hexdigest()
  except OSError:
    return None


def _plain_key(value):
  """A stable text for a static setting, or None when it has none (an
  object whose repr may hold an address or leave out state)."""
  if isinstance(value, tuple):
    parts = [_plain_key(v) for v in value]
    return None if None in parts else '(' + ','.join(parts) + ')'
  if isinstance(value, _PLAIN):
    return f'{type(value).__name__}:{value!r}'
  return None


def _spread(x):
  """An array laid out over several devices: programs are exported for one
  device, so such calls run through jax.jit."""
  sharding = getattr(x, 'sharding', None)
  return sharding is not None and len(sharding.device_set) > 1


def _entry_key(fn, avals, tree, static_key):
  code = getattr(fn, '__code__', None)
  parts = [
      f'{fn.__module__}.{fn.__qualname__}', _source_digest(),
      _file_digest(code.co_filename) if code else None,
      jax.__version__, jaxlib.__version__, jax.default_backend(),
      str(jax.config.jax_enable_x64),
      str(jax.config.jax_default_matmul_precision), str(tree),
      ';'.join(f'{a.shape}{a.dtype}{int(a.weak_type)}' for a in avals),
      static_key]
  return hashlib.sha256('\n'.join(map(str, parts)).encode()).hexdigest()


def _evict(directory, max_bytes):
  """Removes the least recently used entries until `directory` holds at
  most max_bytes of them."""
  entries = []
  try:
    listing = list(os.scandir(directory))
  except OSError:
    return
  for entry in listing:
    if entry.name.endswith('.exported'):
      try:
        st = entry.stat()
      except FileNotFoundError:
        continue
      entries.append((st.st_mtime, st.st_size, entry.path))
  total = sum(size for _, size, _ in entries)
  for _, size, path in sorted(entries):
    if total <= max_bytes:
      break
    try:
      os.remove(path)
    except FileNotFoundError:
      pass
    total -= size


def _load_or_export(jitted, fn, args, kwargs, key):
  path = os.path.join(_CACHE.directory, key + '.exported')
  try:
    with open(path, 'rb') as f:
      blob = f.read()
    exported = jax.export.deserialize(bytearray(blob))
    os.utime(path)  # recently used
    _CACHE.counts['loaded'] += 1
    return exported
  except FileNotFoundError:
    pass
  except Exception as e:  # pylint: disable=broad-except
    # A damaged entry (a full disk, another JAX's format): trace anew.
    _log.warning('trace cache: %s unreadable (%s); tracing anew.', path, e)
  try:
    exported = jax.export.export(jitted)(*args, **kwargs)
    blob = exported.serialize()
  except errors.Error:
    raise  # bad input, found while tracing: the caller's error
  except Exception as e:  # pylint: disable=broad-except
    # JAX cannot export this program (a host callback, say). jax.jit runs
    # it, and re-raises here if the function itself is at fault.
    _log.info('trace cache: %s not exported (%s).', fn.__qualname__, e)
    return None
  tmp = None
  try:
    os.makedirs(_CACHE.directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=_CACHE.directory, suffix='.tmp')
    with os.fdopen(fd, 'wb') as f:
      f.write(blob)
    os.replace(tmp, path)  # atomic: readers see all of it or nothing
  except OSError as e:  # a full disk, a directory removed meanwhile
    _log.warning('trace cache: cannot write %s (%s).', path, e)
    if tmp and os.path.exists(tmp):
      os.remove(tmp)
  _CACHE.counts['exported'] += 1
  _evict(_CACHE.directory, _CACHE.max_bytes)
  return exported


def jit(fn, *, static_argnums=(), static_argnames=(), key_of_static=None):
  """`jax.jit(fn, static_argnums=..., static_argnames=...)` that, with the
  trace cache on (`set_trace_cache`), loads a program another process
  traced instead of tracing it again. The result is the same program.

  key_of_static: maps a static argument to a plain value (numbers, strings,
    tuples) for the cache key; by default the argument itself must be one.

  The key covers gensynth's source and the file that defines `fn`, not
  other code `fn` calls: a function defined outside gensynth that calls
  code in other files outside gensynth should use jax.jit (or empty the
  cache after editing those files).
  """
  static_argnums = ((static_argnums,) if isinstance(static_argnums, int)
                    else tuple(static_argnums))
  static_argnames = ((static_argnames,) if isinstance(static_argnames, str)
                     else tuple(static_argnames))
  jitted = jax.jit(fn, static_argnums=static_argnums,
                   static_argnames=static_argnames)
  programs = {}  # call signature -> jax.jit(exported.call), or None: jit
  to_key = key_of_static or (lambda v: v)

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    if _CACHE.directory is None:
      return jitted(*args, **kwargs)
    static = [(i, args[i]) for i in static_argnums if i < len(args)]
    static += sorted((k, v) for k, v in kwargs.items()
                     if k in static_argnames)
    settings = _plain_key(tuple(to_key(v) for _, v in static))
    dynamic = ([a for i, a in enumerate(args) if i not in static_argnums],
               {k: v for k, v in kwargs.items() if k not in static_argnames})
    leaves, tree = jax.tree.flatten(dynamic)
    if settings is None or any(
        isinstance(x, jax.core.Tracer) or _spread(x) for x in leaves):
      return jitted(*args, **kwargs)
    try:
      avals = [jax.typeof(x) for x in leaves]
    except TypeError:
      return jitted(*args, **kwargs)
    settings = f'{[i for i, _ in static]}{settings}'  # positions and values
    local = (tree, tuple(avals), settings, _CACHE.directory)
    if local not in programs:
      key = _entry_key(fn, avals, tree, settings)
      with _CACHE.lock:
        exported = _load_or_export(jitted, fn, args, kwargs, key)
      programs[local] = None if exported is None else jax.jit(exported.call)
    program = programs[local]
    if program is None:
      return jitted(*args, **kwargs)
    return program(*dynamic[0], **dynamic[1])

  wrapper.jitted = jitted
  wrapper._cache_size = jitted._cache_size  # pylint: disable=protected-access
  return wrapper

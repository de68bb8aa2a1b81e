"""Process-level tuning for the launch scripts, each piece called explicitly.

Nothing here changes what gensynth computes, only how fast this process runs
it. Each piece names the benchmark that justifies it; the figures are in
BUILD_NOTES.md.

* Huge pages are not a launch setting. The scripts used to re-execute
  themselves with GLIBC_TUNABLES=glibc.malloc.hugetlb=1; on current JAX the
  train steps gained nothing from it (`--bench=gan_throughput`,
  `--bench=vae_throughput`) and one panorama set lost, so no script restarts
  (BUILD_NOTES.md, "Huge pages and the restart").
  Whoever wants it sets the variable when starting the command; benchmark
  records name the tunables they ran with.
* `limit_malloc_arenas(n)`: few glibc malloc arenas keep RSS flat across
  thousands of asynchronous checkpoints (`--bench=checkpoint_rss`).
* `reuse_freed_memory()`: glibc serves every block from two heaps and
  keeps what is freed there (no mmap per large block, no trimming), so the
  next image-sized buffer reuses pages instead of faulting fresh ones in:
  warm synthesis in one process runs much faster (`--bench=panorama`,
  `--bench=pyramid_blend`). The process's RSS never shrinks, and a command
  on a few small photos gains nothing measurable from it (the CLI
  benchmark's cases), so it is opt-in (--reuse_freed_memory for the
  synthesis CLIs and the in-process synthesis benchmarks; a program of
  one's own calls it first thing). Training never calls it (its RSS record,
  `--bench=checkpoint_rss`, is with the arena limit alone).
* `enable_compilation_cache()`: JAX's persistent compilation cache, on by
  default in a per-user directory (--compilation_cache_dir; '' turns it
  off), so a second command on the same shapes loads its programs instead
  of compiling them, and gensynth's trace cache in its `gensynth-traces`
  subdirectory, so it does not trace them either. Several processes may
  share it: entries are read and written under a file lock (jax's
  size-bounded cache). With
  GENSYNTH_COMPILE_REPORT=1 the process logs at exit how many programs it
  compiled and how many it loaded from the cache.
* `configure_xla_cpu()`: the XLA:CPU YNNPACK switch (--xla_cpu_ynn_fusion_type;
  off by default: `--bench=gan_throughput` measured jaxlib's default slower
  for gensynth's models). Only XLA:CPU reads it.
"""

import ctypes
import ctypes.util
import os
import sys

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def default_cache_dir():
  """$XDG_CACHE_HOME/gensynth/jax (default ~/.cache/gensynth/jax), or
  $JAX_COMPILATION_CACHE_DIR where that is set."""
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    return os.environ['JAX_COMPILATION_CACHE_DIR']
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(
      os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'gensynth', 'jax')


flags.DEFINE_string(
    'compilation_cache_dir', default_cache_dir(),
    "JAX's persistent compilation cache: compiled programs are stored here "
    "and reused by later commands ('' = off).")
flags.DEFINE_integer('compilation_cache_max_mb', 2048,
                     'Size bound of the compilation cache (least recently '
                     'used entries go first).')

TRACE_SUBDIR = 'gensynth-traces'


def limit_malloc_arenas(n):
  """mallopt(M_ARENA_MAX, n): glibc otherwise gives every thread that
  allocates (orbax's async checkpoint writers among them) its own arena, and
  the host copies of each saved state fragment them; RSS then creeps up with
  every checkpoint. No-op off glibc."""
  if n <= 0:
    return
  _mallopt((_M_ARENA_MAX, n))


flags.DEFINE_bool(
    'reuse_freed_memory', False,
    'Synthesis CLIs and in-process synthesis benchmarks: two glibc heaps '
    'that keep freed memory (no mmap per large block, no trimming): faster '
    'work on large images, RSS stays at its peak (launch/runtime.py).')

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def _mallopt(*settings):
  name = ctypes.util.find_library('c')
  try:
    libc = ctypes.CDLL(name) if name else None
  except OSError:
    return False
  if libc is None or not hasattr(libc, 'mallopt'):
    return False
  return all(libc.mallopt(param, value) == 1 for param, value in settings)


def reuse_freed_memory(arenas=2):
  """mallopt: at most `arenas` arenas, no mmap for large blocks, no trimming
  of the heaps. Each image-sized buffer XLA:CPU frees then serves the next
  one from pages already mapped, instead of a fresh mmap whose pages fault
  in one by one. Two arenas, not one: with a single arena a cold command
  compiles slower (XLA's compiler threads contend for it); with two it
  compiles as fast as with glibc's defaults and keeps most of the warm gain
  (`--bench=panorama`, `--bench=cli_wall_time`; BUILD_NOTES.md, issue 18).
  Call it before JAX starts its threads (an arena a thread already has
  stays its own). RSS stays at the
  process's peak: for short commands, not for long training runs. Returns
  whether glibc took the settings (False off glibc)."""
  if arenas < 1:
    raise ValueError(f'arenas={arenas}: expected at least 1.')
  return _mallopt((_M_ARENA_MAX, arenas), (_M_MMAP_MAX, 0),
                  (_M_TRIM_THRESHOLD, 2**31 - 1))


_YNN = 'xla_cpu_experimental_ynn_fusion_type'
_TYPES = ('dot', 'eltwise', 'reduce', 'individual_dot',
          'individual_convolution')

flags.DEFINE_string(
    'xla_cpu_ynn_fusion_type', '',
    "Ops XLA:CPU hands to YNNPACK: '' (none, gensynth's default: faster for "
    "its models), 'default' (jaxlib's own choice), or a comma-separated list "
    'of dot, eltwise, reduce, individual_dot, individual_convolution. An '
    f'explicit --{_YNN} in XLA_FLAGS wins.')

def configure_xla_cpu():
  """Adds --xla_cpu_experimental_ynn_fusion_type to XLA_FLAGS.

  Call before the first JAX computation: XLA reads XLA_FLAGS once, when the
  backend starts. Returns the XLA_FLAGS value now in effect.
  """
  current = os.environ.get('XLA_FLAGS', '')
  choice = FLAGS.xla_cpu_ynn_fusion_type
  if choice == 'default' or _YNN in current:
    return current
  unknown = [t for t in choice.split(',') if t and t not in _TYPES]
  if unknown:
    raise app.UsageError(f'--xla_cpu_ynn_fusion_type: {unknown} unknown; '
                         f"expected '', 'default' or a comma-separated list "
                         f'of {_TYPES}.')
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  if xla_bridge.backends_are_initialized():
    logging.warning('JAX backend already started; --xla_cpu_ynn_fusion_type='
                    '%r not applied.', choice)
    return current
  os.environ['XLA_FLAGS'] = f'{current} --{_YNN}={choice}'.strip()
  return os.environ['XLA_FLAGS']


def enable_compilation_cache(multi_process=False):
  """Points JAX's persistent compilation cache at --compilation_cache_dir
  (every program is cached, however fast it compiled). Returns the directory,
  or None when the flag is '' or the run is one of several processes.

  Several cooperating processes (jax.distributed) run without it: with jax
  0.12.1 on CPU, processes that load their program from the cache hang in
  its first cross-process collective (a second identical two-process run
  never finishes its first step; 0.12.0.1 did not), and a long multi-process
  run gains little from skipping one compile (BUILD_NOTES.md)."""
  import jax  # pylint: disable=g-import-not-at-top
  path = FLAGS.compilation_cache_dir
  if os.environ.get('GENSYNTH_COMPILE_REPORT') == '1':
    _report_compiles_at_exit()
  if path and multi_process:
    logging.info('Persistent compilation cache off: one of several processes '
                 '(programs loaded from it can hang in their first '
                 'collective).')
    path = ''
  if not path:
    jax.config.update('jax_enable_compilation_cache', False)
    return None
  path = os.path.expanduser(path)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise app.UsageError(
        f'--compilation_cache_dir={path!r}: cannot create it ({e.strerror}); '
        "pass another directory or '' to turn the cache off.") from e
  repair_compilation_cache(path)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)
  # A size bound turns on jax's file lock around every read and write, which
  # is what makes one directory safe for several processes at once.
  jax.config.update('jax_compilation_cache_max_size',
                    FLAGS.compilation_cache_max_mb * 2**20)
  # Beside it, the traced programs (gensynth.synth.compiled's trace cache):
  # a warm command then neither traces nor compiles. jax's size bound counts
  # only its own *-cache files, so the subdirectory is bounded on its own.
  from gensynth.synth import compiled  # pylint: disable=g-import-not-at-top
  compiled.set_trace_cache(os.path.join(path, TRACE_SUBDIR),
                           max_mb=max(FLAGS.compilation_cache_max_mb // 8, 1))
  return path


def repair_compilation_cache(path):
  """Removes the entries of `path` that a killed process left half-written.

  JAX's size-bounded cache writes an entry's program (KEY-cache), then its
  access time (KEY-atime). A process killed between the two (a SIGKILL, an
  out-of-memory kill) leaves a program without an access time, possibly
  truncated; from then on every write into the directory fails, in every
  process, because making room reads every entry's access time (jax warns
  "Error writing persistent compilation cache entry" and compiles on
  without caching). Called under JAX's own lock file, before JAX uses the
  directory. Returns the keys removed.
  """
  import filelock  # pylint: disable=g-import-not-at-top
  lock = filelock.FileLock(os.path.join(path, '.lockfile'))
  try:
    lock.acquire(timeout=10)
  except filelock.Timeout:
    logging.warning('Compilation cache %s is locked; not checked.', path)
    return []
  program, atime = '-cache', '-atime'  # jax's file names: KEY + suffix
  try:
    names = set(os.listdir(path))
    keys = [n[:-len(program)] for n in sorted(names) if n.endswith(program)]
    removed = [k for k in keys if k + atime not in names]
    for key in removed:
      try:
        os.remove(os.path.join(path, key + program))
      except FileNotFoundError:
        pass
  finally:
    lock.release()
  if removed:
    logging.warning('Compilation cache %s: removed %d entries left '
                    'half-written by a killed process.', path, len(removed))
  return removed


def _report_compiles_at_exit():
  """Logs at exit: programs compiled, and programs loaded from the cache."""
  import atexit  # pylint: disable=g-import-not-at-top
  from jax import monitoring  # pylint: disable=g-import-not-at-top
  # Every XLA program goes through one timed "backend compile" (a cache hit
  # included); a hit also records its own event.
  counts = {'compiles_or_loads': 0, 'hits': 0}

  def on_duration(name, duration, **kwargs):
    del duration, kwargs
    if name == '/jax/core/compile/backend_compile_duration':
      counts['compiles_or_loads'] += 1

  def on_event(name, **kwargs):
    del kwargs
    if name == '/jax/compilation_cache/cache_hits':
      counts['hits'] += 1

  monitoring.register_event_duration_secs_listener(on_duration)
  monitoring.register_event_listener(on_event)

  def report():
    from gensynth.synth import compiled  # pylint: disable=g-import-not-at-top
    hits = counts['hits']
    traces = compiled.trace_cache_counts()
    sys.stderr.write('gensynth compile report: compiled='
                     f'{counts["compiles_or_loads"] - hits} '
                     f'cache_hits={hits} traced={traces["exported"]} '
                     f'traces_loaded={traces["loaded"]}\n')

  atexit.register(report)

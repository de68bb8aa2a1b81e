"""Flags and start-up shared by the launch scripts (multi-process included)."""

import ctypes
import ctypes.util
import json
import os
import sys

import jax
from absl import flags
from absl import logging

from launch import xla_cpu

flags.DEFINE_string('coordinator_address', None,
                    'host:port of process 0 for jax.distributed.initialize.')
flags.DEFINE_integer('num_processes', None, 'Processes in the job.')
flags.DEFINE_integer('process_id', None, 'This process index (0-based).')
flags.DEFINE_integer('heartbeat_timeout_seconds', 100,
                     'A peer silent this long is declared dead and the job '
                     'stops with an error instead of hanging.')
flags.DEFINE_string('compilation_cache_dir', None,
                    'Persistent XLA compilation cache directory.')
flags.DEFINE_integer('malloc_arena_max', 2,
                     'glibc malloc arenas (0 = glibc default). Few arenas '
                     'keep RSS flat across thousands of asynchronous '
                     'checkpoints (BUILD_NOTES.md, Soak).')

FLAGS = flags.FLAGS


class _QuietLibraries(logging.logging.Filter):
  """Drops the INFO chatter of orbax's internals; warnings still show."""

  def filter(self, record):
    return record.levelno >= logging.logging.WARNING or (
        '/orbax/' not in record.pathname)


def _limit_malloc_arenas(n):
  """mallopt(M_ARENA_MAX, n): glibc otherwise gives every thread that
  allocates (orbax's async checkpoint writers among them) its own arena, and
  the host copies of each saved state fragment them; RSS then creeps up with
  every checkpoint. No-op off glibc."""
  if n <= 0:
    return
  name = ctypes.util.find_library('c')
  try:
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, 'mallopt'):
      libc.mallopt(-8, n)  # -8 = M_ARENA_MAX
  except OSError:
    pass


def initialize():
  """XLA:CPU flags, then jax.distributed when asked for (flags or cluster
  env), then log devices."""
  xla_flags = xla_cpu.configure()
  _limit_malloc_arenas(FLAGS.malloc_arena_max)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if FLAGS.compilation_cache_dir:
    jax.config.update('jax_compilation_cache_dir', FLAGS.compilation_cache_dir)
  if FLAGS.coordinator_address or (FLAGS.num_processes or 1) > 1:
    if jax.config.jax_platforms in (None, '', 'cpu'):
      # CPU devices of several processes talk through gloo.
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(
        coordinator_address=FLAGS.coordinator_address,
        num_processes=FLAGS.num_processes, process_id=FLAGS.process_id,
        heartbeat_timeout_seconds=FLAGS.heartbeat_timeout_seconds)
  logging.info('JAX process %d/%d; local devices: %s; XLA_FLAGS=%r; '
               'GLIBC_TUNABLES=%r', jax.process_index(), jax.process_count(),
               jax.local_devices(), xla_flags,
               os.environ.get('GLIBC_TUNABLES', ''))


def emit_json(record, output=None):
  """Prints a JSON record and, with `output`, writes it there too."""
  text = json.dumps(record, indent=2)
  print(text)
  if output:
    with open(output, 'w') as f:
      f.write(text + '\n')


def run_config(workdir):
  """The ConfigDict launch.train saved in `workdir` (config.json), upgraded
  to the current fields (`gensynth.configs.common.upgrade`)."""
  from absl import app  # pylint: disable=g-import-not-at-top

  from gensynth.configs import common  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise app.UsageError(f'{path} not found: --workdir must be a run written '
                         'by launch.train (or pass --config).')
  with open(path) as f:
    return common.upgrade(json.load(f))


def script_main(body):
  """absl `main` for a script without positional arguments: refuse extra
  arguments, `initialize()`, run `body()`; a known error (bad file,
  checkpoint or data: FileNotFoundError/ValueError) becomes one logged line
  and exit status 1."""
  from absl import app  # pylint: disable=g-import-not-at-top

  def go(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    initialize()
    body()

  return lambda argv: exit_on_known_errors(go, argv)


def exit_on_known_errors(main_fn, argv):
  """Runs main_fn(argv); a known error (bad file, checkpoint or data: all
  FileNotFoundError/ValueError) becomes one logged line and exit status 1."""
  try:
    main_fn(argv)
  except (FileNotFoundError, ValueError) as e:
    logging.error('%s: %s', type(e).__name__, e)
    sys.exit(1)

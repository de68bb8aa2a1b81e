"""Flags and start-up shared by the launch scripts (multi-process included)."""

import json
import os
import re
import sys

from absl import flags
from absl import logging

from launch import runtime

flags.DEFINE_string('coordinator_address', None,
                    'host:port of process 0 for jax.distributed.initialize.')
flags.DEFINE_integer('num_processes', None, 'Processes in the job.')
flags.DEFINE_integer('process_id', None, 'This process index (0-based).')
flags.DEFINE_integer('heartbeat_timeout_seconds', 100,
                     'A peer silent this long is declared dead and the job '
                     'stops with an error instead of hanging.')
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


def initialize():
  """XLA:CPU flags, the compilation cache, then jax.distributed when asked
  for (flags or cluster env), then log devices. JAX is imported here, not at
  module level, so that --help answers without loading it."""
  import jax  # pylint: disable=g-import-not-at-top
  xla_flags = runtime.configure_xla_cpu()
  runtime.limit_malloc_arenas(FLAGS.malloc_arena_max)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  multi_process = bool(FLAGS.coordinator_address or
                       (FLAGS.num_processes or 1) > 1)
  runtime.enable_compilation_cache(multi_process=multi_process)
  if multi_process:
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


def script_main(body):
  """absl `main` for a script without positional arguments: refuse extra
  arguments, `initialize()`, run `body()` under `one_line_errors`."""
  from absl import app  # pylint: disable=g-import-not-at-top

  def go(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    initialize()
    one_line_errors(body)

  return go


def parse_flags(argv):
  """absl's flag parsing (app.run's flags_parser) for scripts with a
  --config file: an override of a field the config does not have
  (--config.FIELD=...), which ml_collections raises from deep inside the
  parser, becomes one line and exit status 1, as absl reports its own flag
  errors."""
  from absl import app  # pylint: disable=g-import-not-at-top
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    msg = e
    while isinstance(msg, BaseException) and msg.args:
      msg = msg.args[0]
    found = re.match(r"'([^']+)'(.*)", str(msg), re.S)
    field = found.group(1) if found else ''
    bad = [a.split('=')[0] for a in argv[1:]
           if a.startswith('--config.') and field and
           field in a.split('=')[0][len('--config.'):].split('.')]
    if not bad:
      raise
    hint = ' '.join(found.group(2).split())
    sys.stderr.write(
        f'FATAL Flags parsing error: {bad[0]}: the config has no field '
        f'{field!r}.{" " + hint if hint else ""} Read the config file for '
        'its fields.\n')
    sys.exit(1)


def one_line_errors(fn):
  """Returns fn(); a gensynth user-facing error (gensynth.errors.Error: bad
  config, data, input, checkpoint or workdir) becomes one logged line and
  exit status 1. Any other exception keeps its traceback."""
  from gensynth import errors  # pylint: disable=g-import-not-at-top
  try:
    return fn()
  except errors.Error as e:
    logging.error('%s: %s', type(e).__name__, e)
    sys.exit(1)

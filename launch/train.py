r"""Trains a gensynth model.

  python -m launch.train --config=gensynth/configs/vae_shapes.py \
      --workdir=runs/vae_shapes [--config.optim.lr=3e-4 ...]

Re-running the same command resumes from the newest checkpoint in --workdir.
"""

import importlib
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from launch import distributed

flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs, images.')
config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS
TRAINERS = ('vae', 'gan', 'classifier', 'fusion')


def _trainer(name):
  if name not in TRAINERS:
    raise app.UsageError(f'config.trainer={name!r} unknown; expected one of '
                         f'{TRAINERS}.')
  module = importlib.import_module(f'gensynth.train.{name}')
  return module.train_and_evaluate


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  distributed.initialize()
  # gensynth's own errors (bad config, data, checkpoint, workdir; a
  # non-finite loss) become one line; anything else keeps its traceback.
  result = distributed.one_line_errors(
      lambda: _trainer(FLAGS.config.trainer)(FLAGS.config, FLAGS.workdir))
  if result.get('preempted'):
    sys.exit(143)  # 128 + SIGTERM, as if the signal had ended the process.


if __name__ == '__main__':
  app.run(main, flags_parser=distributed.parse_flags)

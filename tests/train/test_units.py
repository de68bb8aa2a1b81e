import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from gensynth import errors
from gensynth.train import loop
from gensynth.train import reporting
from gensynth.train import workdir


def test_metrics_buffer_averages_and_flags_non_finite():
  buf = loop.MetricsBuffer()
  buf.push(0, {'loss': jnp.array(1.0)})
  buf.push(1, {'loss': jnp.array(3.0)})
  assert buf.flush() == {'loss': 2.0}
  buf.push(7, {'loss': jnp.array(1.0), 'grad_norm': jnp.array(np.inf)})
  with pytest.raises(errors.NonFiniteError, match='grad_norm=inf at step 7'):
    buf.flush()


def test_check_workdir_rejects_unwritable(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  with pytest.raises(errors.WorkdirError, match='not writable'):
    workdir.check_writable(str(blocker / 'sub'))
  workdir.check_writable(str(tmp_path / 'ok'))
  assert os.listdir(tmp_path / 'ok') == []


def test_image_grid_layout():
  imgs = np.stack([np.full((2, 3, 1), i / 4) for i in range(5)])
  grid = reporting.image_grid(imgs, ncols=3, pad=1, pad_value=1.0)
  assert grid.shape == (2 * 3 + 1, 3 * 4 + 1, 1)
  np.testing.assert_allclose(grid[1:3, 5:8, 0], 0.25)  # tile 1: row 0, col 1
  np.testing.assert_allclose(grid[4:6, 5:8, 0], 1.0)  # tile 4: row 1, col 1
  np.testing.assert_allclose(grid[4:6, 9:12, 0], 1.0)  # empty slot = pad


def test_reporter_resume_truncates_stale_records(tmp_path):
  rep = reporting.Reporter(str(tmp_path), total_steps=10)
  for s in (2, 4, 6):
    rep.scalars(s, {'loss': s})
  rep.close()
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 8, "los')  # cut short by a kill
  rep = reporting.Reporter(str(tmp_path), total_steps=10, start_step=4)
  rep.close()
  lines = (tmp_path / 'metrics.jsonl').read_text().splitlines()
  assert [eval(l)['step'] for l in lines] == [2, 4]  # pylint: disable=eval-used
  assert os.listdir(tmp_path / 'tensorboard')


def test_reporter_leaves_out_values_that_cannot_be_measured(tmp_path):
  """A run resumed at its last step compiles no step: its final compile
  count is None, which the final report leaves out instead of failing."""
  rep = reporting.Reporter(str(tmp_path), total_steps=10)
  rep.scalars(10, {'accuracy': 0.5, 'train_step_compiles': None},
              prefix='final')
  rep.close()
  line, = (tmp_path / 'metrics.jsonl').read_text().splitlines()
  record = json.loads(line)
  assert record['accuracy'] == 0.5 and 'train_step_compiles' not in record

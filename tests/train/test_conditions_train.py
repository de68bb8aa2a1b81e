"""Text-conditioned training keeps the trainers' guarantees: data-parallel
runs equal single-device runs, and a resumed run equals an uninterrupted one
(conditions travel with their images through the same deterministic
batches)."""

import jax
import numpy as np

from tests import helpers

ARGS = ['--config=gensynth/configs/gan_shapes.py:smoke,text',
        '--config.checkpoint_every=2', '--config.image_every=0']


def _close(a, b, rel):
  """Every leaf within `rel` of its own largest magnitude (a sum over two
  devices rounds differently from one: near-zero entries differ by
  round-off relative to the tensor, not to themselves)."""
  def check(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    assert np.abs(x - y).max() <= rel * np.abs(x).max() + 1e-9
  jax.tree.map(check, a, b)


def test_text_gan_two_devices_and_resume_match_one_run(tmp_path):
  ref, two, resumed = (str(tmp_path / n) for n in ('ref', 'two', 'resumed'))
  helpers.run_launch('train', *ARGS, '--config.num_steps=8',
                     f'--workdir={ref}')
  helpers.run_launch('train', *ARGS, '--config.num_steps=8',
                     f'--workdir={two}', devices=2)
  # Stop after 4 steps (the schedule is constant, so num_steps changes
  # nothing else), then resume to 8 in the same workdir.
  helpers.run_launch('train', *ARGS, '--config.num_steps=4',
                     f'--workdir={resumed}')
  helpers.run_launch('train', *ARGS, '--config.num_steps=8',
                     f'--workdir={resumed}')
  s_ref, p_ref = helpers.restore_params(ref)
  s_two, p_two = helpers.restore_params(two)
  s_res, p_res = helpers.restore_params(resumed)
  assert s_ref == s_two == s_res == 8
  assert 'condition' in p_ref['g_params'] and 'condition' in p_ref['d_params']
  _close(p_ref, p_two, 1e-4)
  _close(p_ref, p_res, 0.0)  # a resumed run is bit-identical
  moved = jax.tree.leaves(jax.tree.map(
      lambda a, b: float(np.abs(a - b).max()), p_ref['g_params']['condition'],
      helpers.restore_params(ref, step=4)[1]['g_params']['condition']))
  assert max(moved) > 1e-5  # the text encoder did train

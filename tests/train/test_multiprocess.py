"""Two cooperating processes (jax.distributed, gloo), 2 CPU devices each."""

import os
import socket
import subprocess
import time

import jax
import numpy as np

from tests import helpers

ARGS = ['--config=gensynth/configs/vae_mnist.py:smoke', '--config.num_steps=8',
        '--config.image_every=0', '--config.checkpoint_every=4']


def _port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _start(workdir, port, pid, *extra):
  return subprocess.Popen(
      helpers.launch_cmd('train', *ARGS, f'--workdir={workdir}',
                         f'--coordinator_address=127.0.0.1:{port}',
                         '--num_processes=2', f'--process_id={pid}', *extra),
      cwd=helpers.REPO, env=helpers.env(devices=2), stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE, text=True)


def test_two_processes_match_one_process_four_devices(tmp_path):
  single, multi = str(tmp_path / 'single'), str(tmp_path / 'multi')
  helpers.run_launch('train', *ARGS, f'--workdir={single}', devices=4)
  port = _port()
  procs = [_start(multi, port, p) for p in (0, 1)]
  errs = [p.communicate(timeout=300)[1] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], errs[0][-3000:]
  assert 'process 0/2' in errs[0] or 'process 0/2' in errs[1]
  s1, p1 = helpers.restore_params(single)
  s2, p2 = helpers.restore_params(multi)
  assert s1 == s2 == 8
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4,
                                                       atol=2e-5), p1, p2)
  # Only process 0 reports.
  lines = open(os.path.join(multi, 'metrics.jsonl')).read().splitlines()
  assert len([l for l in lines if '"train"' in l]) == 4


def test_killing_one_process_stops_the_other(tmp_path):
  workdir = str(tmp_path / 'killed')
  port = _port()
  extra = ['--config.num_steps=100000', '--heartbeat_timeout_seconds=10']
  procs = [_start(workdir, port, p, *extra) for p in (0, 1)]
  t0 = time.time()
  while not os.path.exists(os.path.join(workdir, 'metrics.jsonl')):
    assert time.time() - t0 < 240 and procs[0].poll() is None
    time.sleep(0.1)
  procs[1].kill()
  t_kill = time.time()
  try:
    _, err = procs[0].communicate(timeout=120)
  except subprocess.TimeoutExpired:
    procs[0].kill()
    raise AssertionError('the surviving process hung after its peer died')
  assert procs[0].returncode != 0
  assert time.time() - t_kill < 120
  procs[1].wait()
  del err


def test_killing_both_then_restarting_resumes(tmp_path):
  args = ['--config.num_steps=30', '--config.checkpoint_every=10']
  single, multi = str(tmp_path / 'single'), str(tmp_path / 'multi')
  helpers.run_launch('train', *ARGS, *args, f'--workdir={single}', devices=4)
  port = _port()
  procs = [_start(multi, port, p, *args) for p in (0, 1)]
  ckpt = os.path.join(multi, 'checkpoints', '10', 'commit_success.txt')
  t0 = time.time()
  while not os.path.exists(ckpt):
    assert time.time() - t0 < 240, 'no checkpoint in time'
    assert all(p.poll() is None for p in procs), procs[0].stderr.read()[-2000:]
    time.sleep(0.05)
  for p in procs:
    p.kill()
    p.wait()
  port = _port()
  procs = [_start(multi, port, p, *args) for p in (0, 1)]
  errs = [p.communicate(timeout=300)[1] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], errs[0][-3000:]
  assert 'Restored checkpoint step' in errs[0] + errs[1]
  s1, p1 = helpers.restore_params(single)
  s2, p2 = helpers.restore_params(multi)
  assert s1 == s2 == 30
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4,
                                                       atol=2e-5), p1, p2)

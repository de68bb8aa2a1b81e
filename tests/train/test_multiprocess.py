"""Two cooperating processes (jax.distributed, gloo), 2 CPU devices each."""

import os
import re
import socket
import subprocess
import time

import jax
import numpy as np
import pytest

from tests import helpers
from tests.train import test_multidevice

# The single-process reference (4 devices) is shared with test_multidevice.
ARGS = test_multidevice.ARGS


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


@pytest.fixture
def single(tmp_path_factory):
  return test_multidevice.vae_run(tmp_path_factory, 4)


def test_two_processes_match_one_process_four_devices(single, tmp_path):
  multi = str(tmp_path / 'multi')
  port = _port()
  procs = [_start(multi, port, p) for p in (0, 1)]
  errs = [p.communicate(timeout=300)[1] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], errs[0][-3000:]
  assert 'process 0/2' in errs[0] or 'process 0/2' in errs[1]
  # Cooperating processes run without the persistent compilation cache
  # (launch.runtime.enable_compilation_cache: with jax 0.12.1 programs loaded
  # from it hang in their first collective; the next test would then hang).
  assert all('Persistent compilation cache off' in e for e in errs)
  s1, p1 = helpers.restore_params(single)
  s2, p2 = helpers.restore_params(multi)
  assert s1 == s2 == 12
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4,
                                                       atol=2e-5), p1, p2)
  # Only process 0 reports (every 2 steps).
  lines = open(os.path.join(multi, 'metrics.jsonl')).read().splitlines()
  assert len([l for l in lines if '"train"' in l]) == 6


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


def test_killing_both_then_restarting_resumes(single, tmp_path):
  multi = str(tmp_path / 'multi')
  port = _port()
  procs = [_start(multi, port, p) for p in (0, 1)]
  ckpt = os.path.join(multi, 'checkpoints', '4', 'commit_success.txt')
  t0 = time.time()
  while not os.path.exists(ckpt):
    assert time.time() - t0 < 240, 'no checkpoint in time'
    assert all(p.poll() is None for p in procs), procs[0].stderr.read()[-2000:]
    time.sleep(0.05)
  # Killed mid-run: had both already finished, the restart below would only
  # reload the final checkpoint and test nothing.
  assert all(p.poll() is None for p in procs), 'the run ended before the kill'
  for p in procs:
    p.kill()
    p.wait()
  port = _port()
  procs = [_start(multi, port, p) for p in (0, 1)]
  errs = [p.communicate(timeout=300)[1] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], errs[0][-3000:]
  restored = re.search(r'Restored checkpoint step (\d+)', errs[0] + errs[1])
  assert restored and int(restored.group(1)) < 12, errs[0][-3000:]
  s1, p1 = helpers.restore_params(single)
  s2, p2 = helpers.restore_params(multi)
  assert s1 == s2 == 12
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4,
                                                       atol=2e-5), p1, p2)

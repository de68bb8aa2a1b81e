"""Interruption tests: SIGKILL resume, SIGTERM checkpoint, damaged checkpoints."""

import os
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gensynth.models import vae
from gensynth.steps import vae as steps
from gensynth.train import checkpoint
from tests import helpers

ARGS = ['--config=gensynth/configs/vae_mnist.py:smoke',
        '--config.num_steps=40', '--config.checkpoint_every=5',
        '--config.log_every=5', '--config.image_every=0']


def _steps_on_disk(workdir):
  d = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(d):
    return []
  return sorted(int(s) for s in os.listdir(d) if s.isdigit() and
                os.path.exists(os.path.join(d, s, 'commit_success.txt')))


def _start(workdir, *extra):
  return subprocess.Popen(
      helpers.launch_cmd('train', *ARGS, f'--workdir={workdir}', *extra),
      cwd=helpers.REPO, env=helpers.env(), stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE, text=True)


def _wait_for_step(proc, workdir, step, timeout=120):
  t0 = time.time()
  while time.time() - t0 < timeout:
    if any(s >= step for s in _steps_on_disk(workdir)):
      return
    if proc.poll() is not None:
      raise AssertionError(f'run ended early: {proc.stderr.read()[-3000:]}')
    time.sleep(0.05)
  raise AssertionError('no checkpoint in time')


def _assert_same_params(a, b):
  sa, ta = helpers.restore_params(a)
  sb, tb = helpers.restore_params(b)
  assert sa == sb == 40
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6,
                                                       atol=1e-7), ta, tb)


@pytest.fixture(scope='module')
def reference_run(tmp_path_factory):
  return helpers.shared_run(tmp_path_factory, 'vae_smoke_resume_reference',
                            *ARGS)


def test_sigkill_then_restart_matches_uninterrupted(reference_run, tmp_path):
  workdir = str(tmp_path / 'killed')
  for kill_after in (10, 25):
    proc = _start(workdir)
    _wait_for_step(proc, workdir, kill_after)
    proc.kill()
    proc.wait()
  helpers.run_launch('train', *ARGS, f'--workdir={workdir}')
  _assert_same_params(reference_run, workdir)


def test_sigterm_writes_checkpoint_and_resumes(reference_run, tmp_path):
  workdir = str(tmp_path / 'term')
  proc = _start(workdir, '--config.checkpoint_every=1000')
  # No periodic checkpoint exists before 40; wait for training to run.
  t0 = time.time()
  while not os.path.exists(os.path.join(workdir, 'metrics.jsonl')):
    assert time.time() - t0 < 120 and proc.poll() is None
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 143, err[-2000:]
  saved = _steps_on_disk(workdir)
  assert saved and 0 < saved[-1] < 40
  assert 'Preempted at step' in err
  helpers.run_launch('train', *ARGS, f'--workdir={workdir}',
                     '--config.checkpoint_every=1000')
  _assert_same_params(reference_run, workdir)


GAN_ARGS = ['--config=gensynth/configs/gan_mnist.py:smoke,cond',
            '--config.num_steps=40', '--config.checkpoint_every=5',
            '--config.log_every=5', '--config.image_every=0',
            '--config.model.spectral_norm=true']


def test_gan_random_sigkills_then_restart_match_uninterrupted(tmp_path):
  """SIGKILL at random moments (some during an async checkpoint write),
  restarting with the same command each time: never a partial restore, and
  the final state equals an uninterrupted run's."""
  ref = str(tmp_path / 'ref')
  helpers.run_launch('train', *GAN_ARGS, f'--workdir={ref}')
  workdir = str(tmp_path / 'killed')
  rng = np.random.default_rng(int(time.time()))
  kills = 0
  for _ in range(4):
    proc = subprocess.Popen(
        helpers.launch_cmd('train', *GAN_ARGS, f'--workdir={workdir}'),
        cwd=helpers.REPO, env=helpers.env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    done = _steps_on_disk(workdir)
    target = (done[-1] if done else 0) + int(rng.integers(1, 10))
    try:
      _wait_for_step(proc, workdir, min(target, 39))
    except AssertionError:
      pass  # the run finished first: nothing left to interrupt
    time.sleep(float(rng.uniform(0, 0.3)))  # often mid-write of the next step
    if proc.poll() is None:
      proc.kill()
      kills += 1
    proc.wait()
  assert kills >= 2
  helpers.run_launch('train', *GAN_ARGS, f'--workdir={workdir}')
  _assert_same_params(ref, workdir)


def _small_state(widths=(4, 8)):
  model = vae.VAE(image_shape=(8, 8, 1), latent_dim=2, widths=widths)
  return steps.create_state(jax.random.key(0), model, optax.adam(1e-3),
                            (8, 8, 1))


@pytest.mark.parametrize('use_ocdbt', [True, False])
def test_corrupted_latest_step_falls_back(tmp_path, caplog, use_ocdbt):
  state = _small_state()
  ckpt = checkpoint.Checkpointer(str(tmp_path), save_every=1,
                                 use_ocdbt=use_ocdbt)
  ckpt.save(1, state.replace(step=jnp.asarray(1)))
  ckpt.save(2, state.replace(step=jnp.asarray(2)))
  ckpt.wait()
  step2 = tmp_path / 'checkpoints' / '2' / 'default'
  for root, _, files in os.walk(step2):
    for f in files:
      if not f.endswith('.txt'):
        with open(os.path.join(root, f), 'r+b') as fh:
          fh.truncate(max(os.path.getsize(os.path.join(root, f)) // 3, 1))
  fresh = checkpoint.Checkpointer(str(tmp_path), save_every=1)
  with caplog.at_level('WARNING'):
    restored = fresh.restore_or_init(state)
  assert int(restored.step) == 1
  for a, b in zip(jax.tree.leaves(restored.params),
                  jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(a, b)
  assert any('step 2' in r.getMessage() for r in caplog.records)
  assert (tmp_path / 'checkpoints' / '2').exists()  # nothing deleted


def test_restore_into_other_model_names_paths(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), save_every=1)
  ckpt.save(1, _small_state())
  ckpt.wait()
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match=r"shape .* in checkpoint.*\['params'\]"):
    checkpoint.Checkpointer(str(tmp_path), save_every=1).restore_or_init(
        _small_state(widths=(4, 16)))

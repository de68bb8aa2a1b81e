"""Data parallelism on 4 fake CPU devices equals the 1-device run."""

import os

import jax
import numpy as np
import pytest

from tests import helpers

# The VAE runs are shared with tests/train/test_multiprocess.py.
ARGS = ['--config=gensynth/configs/vae_mnist.py:smoke', '--config.num_steps=12',
        '--config.image_every=0', '--config.checkpoint_every=4']


def vae_run(tmp_path_factory, devices):
  return helpers.shared_run(tmp_path_factory, f'vae_smoke_{devices}_devices',
                            *ARGS, devices=devices)


@pytest.fixture
def vae_one(tmp_path_factory):
  return vae_run(tmp_path_factory, 1)


@pytest.fixture
def vae_four(tmp_path_factory):
  return vae_run(tmp_path_factory, 4)


def test_four_devices_match_one(vae_one, vae_four):
  stderr = open(os.path.join(vae_four, 'launch.stderr')).read()
  assert 'Devices: 4 global' in stderr
  s1, p1 = helpers.restore_params(vae_one)
  s4, p4 = helpers.restore_params(vae_four)
  assert s1 == s4 == 12
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4,
                                                       atol=2e-5), p1, p4)
  moved = jax.tree.leaves(jax.tree.map(
      lambda a, b: float(np.abs(a - b).max()), p1['params'],
      helpers.restore_params(vae_one, step=4)[1]['params']))
  assert max(moved) > 1e-3  # the runs did train


def test_batch_not_divisible_by_devices(tmp_path):
  proc = helpers.run_launch('train', *ARGS, '--config.batch_size=6',
                            f'--workdir={tmp_path}', devices=4, check=False)
  assert proc.returncode != 0
  assert 'batch_size=6 must be a positive multiple of the device count 4' in \
      proc.stderr


GAN_ARGS = ['--config=gensynth/configs/gan_mnist.py:smoke,cond',
            '--config.num_steps=8', '--config.image_every=0',
            '--config.checkpoint_every=4', '--config.loss.d_steps=2',
            '--config.model.spectral_norm=true', '--config.loss.r1_weight=1',
            '--config.loss.r1_every=2']


def test_gan_four_devices_match_one(tmp_path):
  one, four = str(tmp_path / 'one'), str(tmp_path / 'four')
  helpers.run_launch('train', *GAN_ARGS, f'--workdir={one}', devices=1)
  proc = helpers.run_launch('train', *GAN_ARGS, f'--workdir={four}', devices=4)
  assert 'Devices: 4 global' in proc.stderr
  s1, p1 = helpers.restore_params(one)
  s4, p4 = helpers.restore_params(four)
  assert s1 == s4 == 8
  assert set(p1) >= {'g_params', 'd_params', 'ema_params', 'd_stats',
                     'g_opt_state', 'd_opt_state'}
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4,
                                                       atol=2e-5), p1, p4)
  moved = jax.tree.leaves(jax.tree.map(
      lambda a, b: float(np.abs(a - b).max()), p1['g_params'],
      helpers.restore_params(one, step=4)[1]['g_params']))
  assert max(moved) > 1e-4  # the runs did train

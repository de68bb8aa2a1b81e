"""Learned fusion through the real launch path: a smoke run trained by
launch.train fuses files with launch.fuse --method=learned; resumed training
equals an uninterrupted run; bad checkpoints and inputs get one-line errors."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

from gensynth.data import stacks
from gensynth.evaluation import runs
from gensynth.synth import io
from gensynth.synth import learned
from tests import helpers


@pytest.fixture(scope='module')
def exposure_run(tmp_path_factory):
  return helpers.shared_run(tmp_path_factory, 'fusion_exposure_smoke',
                            '--config=gensynth/configs/fusion_exposure.py:smoke')


@pytest.fixture
def exposures(tmp_path):
  photo = stacks.bundled_photos()[0][100:160, 200:276]  # 60x76
  x = stacks.simulate_exposures(np.random.default_rng(0), photo, 3)
  paths = []
  for i, img in enumerate(x):
    paths.append(str(tmp_path / f'e{i}.png'))
    Image.fromarray(np.uint8(np.round(img * 255))).save(paths[-1])
  return paths


def test_learned_cli_fuses_files_as_the_library_does(exposure_run, exposures,
                                                     tmp_path):
  info = json.load(open(os.path.join(exposure_run, 'info.json')))
  assert info['task'] == 'exposure'
  final = json.load(open(os.path.join(exposure_run, 'final_metrics.json')))
  assert 0 < final['mef_ssim'] <= 1 and final['step'] == 4
  out = str(tmp_path / 'fused.png')
  proc = helpers_run('--method=learned', f'--checkpoint={exposure_run}',
                     '--inputs=' + ','.join(exposures), f'--output={out}')
  assert 'learned: fused 3 images of 60x76x3' in proc.stdout
  assert 'MEF-SSIM = ' in proc.stdout
  got = np.asarray(Image.open(out), np.float32) / 255
  model, params, _ = runs.load_fusion(exposure_run)
  x = np.stack([io.read_image(p)[0] for p in exposures])
  want = np.clip(np.asarray(jax.jit(
      lambda p, s: learned.learned_fusion(p, s, model=model))(params, x)),
                 0, 1)
  assert np.abs(got - want).max() <= 1 / 255 + 1e-6


def helpers_run(*args, check=True):
  return helpers.run_launch('fuse', *args, check=check)


@pytest.mark.parametrize('args,message', [
    (['--checkpoint={run}'], 'needs at least two images'),
    ([], '--method=learned needs --checkpoint'),
    (['--checkpoint={d}/nowhere'], 'config.json not found'),
    (['--checkpoint={d}/vae_run'], "holds a 'vae' run, not a fusion network"),
])
def test_learned_cli_errors(exposure_run, exposures, tmp_path, args, message):
  os.makedirs(tmp_path / 'vae_run')
  (tmp_path / 'vae_run' / 'config.json').write_text('{"trainer": "vae"}')
  inputs = exposures[:1] if 'two images' in message else exposures
  args = [a.format(d=tmp_path, run=exposure_run) for a in args]
  proc = helpers_run('--method=learned', '--inputs=' + ','.join(inputs),
                     *args, f'--output={tmp_path}/o.png', check=False)
  assert proc.returncode != 0
  assert message in proc.stderr
  assert 'Traceback' not in proc.stderr


def test_resumed_training_equals_an_uninterrupted_run(exposure_run, tmp_path):
  """A copy of the shared run stopped after step 2 (its last checkpoint
  removed), restarted with the same command: it resumes at 2 and ends at 4
  with the uninterrupted run's parameters, bit for bit."""
  resumed = str(tmp_path / 'resumed')
  shutil.copytree(exposure_run, resumed)
  shutil.rmtree(os.path.join(resumed, 'checkpoints', '4'))
  helpers.run_launch('train',
                     '--config=gensynth/configs/fusion_exposure.py:smoke',
                     f'--workdir={resumed}')
  a = runs.load_fusion(exposure_run)[1]
  b = runs.load_fusion(resumed)[1]
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert float(np.abs(np.asarray(a['head']['kernel'])).max()) > 0


def test_batches_are_a_pure_function_of_seed_and_step():
  photos = [stacks.bundled_photos()[1]]
  one = stacks.FusionBatches('exposure', photos=photos, crop=48, ks=(2, 3),
                             global_batch_size=4, seed=3)
  # Two processes, each with its half of the same global batch.
  halves = [stacks.FusionBatches('exposure', photos=photos, crop=48,
                                 ks=(2, 3), global_batch_size=4, seed=3,
                                 process_index=i, process_count=2)
            for i in range(2)]
  for step in (0, 7):
    full = one.batch(step)['sources']
    np.testing.assert_array_equal(full, one.batch(step)['sources'])
    np.testing.assert_array_equal(full, np.concatenate(
        [h.batch(step)['sources'] for h in halves]))
  assert not np.array_equal(one.batch(0)['sources'][:, :2],
                            one.batch(1)['sources'][:, :2])


def test_simulated_sets_are_what_their_docstrings_say():
  rng = np.random.default_rng(0)
  photo = stacks.bundled_photos()[0][:96, :96]
  x = stacks.simulate_exposures(rng, photo, 4)
  means = x.mean(axis=(1, 2, 3))
  assert np.all(np.diff(means) > 0)  # darkest to brightest
  assert np.allclose(x * 255, np.round(x * 255), atol=1e-4)  # 8-bit levels
  src, target = stacks.simulate_defocus(rng, photo, 2)
  np.testing.assert_allclose(target, photo / 255, atol=1e-6)
  err = np.abs(src - target[None]).mean(-1)  # [2, H, W]
  # Every pixel is (nearly) sharp in one source, and each source is blurred
  # somewhere.
  assert np.mean(err.min(0) < 0.01) > 0.95
  assert np.all(err.max(axis=(1, 2)) > 0.05)

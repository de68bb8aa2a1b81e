"""Runs written by gensynth before the restructuring (conv code in layers.py,
no conv_impl field, sampling in gensynth.train) still restore and sample the
same images. The fixtures under tests/fixtures/old_layout were written with
commit 8c5ad64 (`launch.train` on the `:smoke` configs) together with the
images that code sampled from them (reference_grid.npy)."""

import os
import shutil

import numpy as np
import pytest

from gensynth.evaluation import sampling
from gensynth.train import workdir

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'fixtures', 'old_layout')


@pytest.mark.parametrize('name,grid_kw', [
    ('vae_shapes_py_smoke', {}),
    ('gan_mnist_py_smoke_cond', {'classes': [0, 1, 2]})])
def test_old_run_restores_and_samples_the_same_images(tmp_path, name, grid_kw):
  run = tmp_path / name
  shutil.copytree(os.path.join(FIXTURES, name), run)
  config = workdir.load_config(str(run))
  assert config.model.conv_impl == 'auto'  # filled in by the upgrade
  model = sampling.load(config, str(run))
  assert model.step == 6
  images, _ = model.grid(0, per_class=2, rows=3, **grid_kw)
  want = np.load(run / 'reference_grid.npy')
  assert images.shape == want.shape
  np.testing.assert_allclose(images, want, atol=2e-5)

"""Text- and vector-conditioned runs through the real launch path:
train, sample from prompts and vectors, and score condition fidelity."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from tests import helpers


def _train(tmp_path_factory, name, config, *extra):
  workdir = str(tmp_path_factory.mktemp(name))
  helpers.run_launch('train', f'--config={config}', f'--workdir={workdir}',
                     *extra)
  return workdir


@pytest.fixture(scope='module')
def gan_text(tmp_path_factory):
  return _train(tmp_path_factory, 'gan_text',
                'gensynth/configs/gan_shapes.py:smoke,text,heldout')


@pytest.fixture(scope='module')
def vae_vector(tmp_path_factory):
  return _train(tmp_path_factory, 'vae_vector',
                'gensynth/configs/vae_shapes.py:smoke,vector')


def _sample(workdir, *args, check=True):
  proc = helpers.run_launch('sample', f'--workdir={workdir}', *args,
                            check=check)
  return (json.loads(proc.stdout) if check else proc)


def test_text_run_saves_its_vocabulary_and_samples_prompts(gan_text):
  info = json.load(open(os.path.join(gan_text, 'info.json')))
  assert info['condition']['kind'] == 'text'
  assert {'large', 'blue', 'ring', 'bottom'} <= set(info['condition']['words'])
  out = _sample(gan_text, '--mode=text', '--per_class=5', '--zoom=2',
                '--prompts=a large blue ring at the bottom;a small green '
                'cross;red disc')
  grid = np.asarray(Image.open(out['path']))
  assert out['shape'] == [15, 32, 32, 3]
  assert grid.shape == (3 * 65 + 1, 5 * 65 + 1, 3)  # a row per prompt
  # Zoom repeats pixels: every 2x2 block of a tile is one colour.
  tile = grid[1:65, 1:65].astype(int)
  np.testing.assert_array_equal(tile[::2, ::2], tile[1::2, 1::2])
  path = _sample(gan_text, '--mode=text', '--combine=interpolate',
                 '--num_paths=2', '--num_steps=4',
                 '--prompts=a red disc;a blue square')
  assert path['shape'] == [8, 32, 32, 3]
  assert path['path'].endswith('text_interpolate.png')
  mix = _sample(gan_text, '--mode=text', '--combine=mix', '--per_class=3',
                '--weights=1,3', '--prompts=a red disc;a blue square')
  assert mix['shape'] == [9, 32, 32, 3]


def test_prompt_errors_name_the_problem(gan_text):
  proc = _sample(gan_text, '--mode=text', '--prompts=a purple disc',
                 check=False)
  assert proc.returncode != 0
  assert "['purple']" in proc.stderr and 'known words' in proc.stderr
  assert 'Traceback' not in proc.stderr
  ok = _sample(gan_text, '--mode=text', '--prompts=a purple disc',
               '--unknown_words=drop', '--per_class=2')
  assert ok['shape'] == [2, 32, 32, 3]
  proc = _sample(gan_text, '--mode=vector', '--vectors=1,2', check=False)
  assert proc.returncode != 0 and 'text-conditioned' in proc.stderr
  proc = _sample(gan_text, '--mode=grid', check=False)
  assert proc.returncode != 0 and '--mode=text' in proc.stderr


def test_fidelity_reports_generated_real_and_heldout(gan_text):
  out = json.loads(helpers.run_launch(
      'evaluate', f'--workdir={gan_text}', '--fidelity',
      '--num_generated=40', '--r_precision_steps=5').stdout)
  run = out['run']
  assert run['condition'] == 'text' and run['scored_as'] == 'text'
  for split in ('test', 'heldout'):
    real = run[split]['real']
    # The ceiling: real images obey their own captions exactly.
    assert real['joint_accuracy'] == 1.0 and real['kind_accuracy'] == 1.0
    gen = run[split]['generated']
    assert gen['num_samples'] == 40
    assert 0.0 <= gen['joint_accuracy'] <= gen['kind_accuracy'] <= 1.0
    assert gen['r_precision_candidates'] == 40
    assert 0.0 <= gen['r_precision'] <= 1.0
  assert set(out['summary']) == {'test_generated', 'test_real',
                                 'heldout_generated', 'heldout_real'}


def test_vector_run_samples_vectors_from_text_and_npy(vae_vector, tmp_path):
  info = json.load(open(os.path.join(vae_vector, 'info.json')))
  spec = info['condition']
  assert spec['kind'] == 'vector' and spec['dim'] == 12
  assert spec['names'][:2] == ['kind_disc', 'kind_square']
  assert len(spec['mean']) == len(spec['std']) == 12 and min(spec['std']) > 0
  rows = ['1,0,0,0,0,0,0.9,0.15,0.15,0.25,0.5,0.5',
          '0,0,0,1,0,0,0.2,0.35,0.95,0.14,0.28,0.72']
  out = _sample(vae_vector, '--mode=vector', '--per_class=4',
                '--vectors=' + ';'.join(rows))
  assert out['shape'] == [8, 32, 32, 3]
  npy = tmp_path / 'v.npy'
  np.save(npy, np.array([[float(v) for v in r.split(',')] for r in rows]))
  again = _sample(vae_vector, '--mode=vector', '--per_class=4',
                  f'--vectors={npy}')
  np.testing.assert_array_equal(np.asarray(Image.open(out['path'])),
                                np.asarray(Image.open(again['path'])))
  proc = _sample(vae_vector, '--mode=vector', '--vectors=1,2,3', check=False)
  assert proc.returncode != 0 and '12 values' in proc.stderr
  out = json.loads(helpers.run_launch(
      'evaluate', f'--workdir={vae_vector}', '--fidelity',
      '--num_generated=16').stdout)
  gen = out['run']['test']['generated']
  assert out['run']['scored_as'] == 'vector'
  assert {'red_r', 'radius_mae', 'x_r', 'position_accuracy'} <= set(gen)

"""GAN, classifier and sampling through the real launch path (subprocesses)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from gensynth import errors
from gensynth.evaluation import conditions
from gensynth.train import workdir as workdir_lib
from tests import helpers

GAN = 'gensynth/configs/gan_mnist.py:smoke,cond'


@pytest.fixture(scope='module')
def classifier(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('cls'))
  helpers.run_launch('train',
                     '--config=gensynth/configs/classifier_mnist.py:smoke',
                     f'--workdir={workdir}')
  final = json.load(open(os.path.join(workdir, 'final_metrics.json')))
  assert 0.0 <= final['accuracy'] <= 1.0 and final['num_examples'] == 32
  return workdir


@pytest.fixture(scope='module')
def gan_run(tmp_path_factory, classifier):
  workdir = str(tmp_path_factory.mktemp('gan'))
  proc = helpers.run_launch('train', f'--config={GAN}', f'--workdir={workdir}',
                            f'--config.eval.classifier={classifier}')
  return workdir, proc


def test_gan_train_writes_everything(gan_run):
  workdir, proc = gan_run
  assert 'steps/s' in proc.stderr and 'ETA' in proc.stderr
  files = set(os.listdir(workdir))
  assert {'checkpoints', 'config.json', 'info.json', 'metrics.jsonl',
          'tensorboard', 'final_metrics.json', 'samples_0000006.png'} <= files
  final = json.load(open(os.path.join(workdir, 'final_metrics.json')))
  assert final['train_step_compiles'] == 1
  for k in ('fid', 'fid_floor', 'kid', 'kid_floor', 'precision', 'recall',
            'precision_floor', 'recall_floor', 'class_accuracy'):
    assert np.isfinite(final[k]), k
  assert len(final['class_accuracy_per_class']) == 6  # shapes has 6 classes
  assert sum(final['samples_per_class']) == final['num_samples']
  records = [json.loads(l) for l in open(os.path.join(workdir,
                                                      'metrics.jsonl'))]
  train = [r for r in records if r['split'] == 'train']
  assert [r['step'] for r in train] == [2, 4, 6]
  assert {'d_loss', 'g_loss', 'd_grad_norm', 'g_grad_norm'} <= set(train[0])
  grid = Image.open(os.path.join(workdir, 'samples_0000006.png'))
  assert grid.size == (10 * 29 + 1, 6 * 29 + 1)  # a row per class


def test_evaluate_reports_metrics_next_to_floors(gan_run, classifier):
  workdir, _ = gan_run
  out = json.loads(helpers.run_launch(
      'evaluate', f'--workdir={workdir}', f'--classifier={classifier}',
      '--num_generated=40', '--batch_size=8').stdout)
  assert out['step'] == 6 and out['num_samples'] == 40
  assert out['fid_over_floor'] == pytest.approx(out['fid'] / out['fid_floor'])
  assert 0 <= out['recall_floor'] <= 1 and 0 <= out['precision'] <= 1
  # Each image the best of 3 by D: other images, the same floors.
  best = json.loads(helpers.run_launch(
      'evaluate', f'--workdir={workdir}', f'--classifier={classifier}',
      '--num_generated=40', '--batch_size=8', '--candidates=3').stdout)
  assert best['candidates'] == 3 and best['fid_floor'] == out['fid_floor']
  assert np.isfinite(best['fid']) and best['fid'] != out['fid']


@pytest.mark.parametrize('args,message', [
    (['--num_generated=8'], 'N=8 for D=8'),
    (['--classifier=/nonexistent/cls'], 'Train one with python -m '
     'launch.train --config=gensynth/configs/classifier_mnist.py'),
    (['--config=gensynth/configs/gan_mnist.py:smoke',
      '--config.model.conditional=true', '--config.model.g_widths=(16,8)'],
     "in model: ['g_params']['Dense_0']['kernel']"),
])
def test_evaluate_errors(gan_run, classifier, args, message):
  workdir, _ = gan_run
  proc = helpers.run_launch('evaluate', f'--workdir={workdir}',
                            f'--classifier={classifier}', '--batch_size=8',
                            *args, check=False)
  assert proc.returncode == 1
  assert message in proc.stderr
  assert 'Traceback' not in proc.stderr


def test_sample_grid_and_interpolation(gan_run, tmp_path):
  workdir, _ = gan_run
  out = json.loads(helpers.run_launch(
      'sample', f'--workdir={workdir}', '--classes=1,4', '--per_class=3',
      f'--output={tmp_path}').stdout)
  assert out['shape'] == [6, 28, 28, 1]
  assert Image.open(out['path']).size == (3 * 29 + 1, 2 * 29 + 1)
  out = json.loads(helpers.run_launch(
      'sample', f'--workdir={workdir}', '--mode=interpolate', '--num_paths=2',
      '--num_steps=5', '--method=linear', f'--output={tmp_path}').stdout)
  assert out['shape'] == [10, 28, 28, 1]
  out = json.loads(helpers.run_launch(
      'sample', f'--workdir={workdir}', '--classes=1,4', '--per_class=3',
      '--candidates=2', f'--output={tmp_path}/best').stdout)
  assert out['shape'] == [6, 28, 28, 1]
  proc = helpers.run_launch('sample', f'--workdir={workdir}',
                            '--mode=interpolate', '--candidates=2',
                            check=False)
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  assert 'candidates=2' in proc.stderr
  proc = helpers.run_launch('sample', f'--workdir={workdir}', '--classes=6',
                            check=False)
  assert proc.returncode != 0
  assert 'class id 6 out of range' in proc.stderr
  proc = helpers.run_launch('sample', f'--workdir={workdir}', '--mode=fuse',
                            '--test_indices=0,1', check=False)
  assert proc.returncode != 0 and 'needs a VAE' in proc.stderr


def test_missing_classifier_fails_before_training(tmp_path):
  proc = helpers.run_launch('train', f'--config={GAN}',
                            f'--workdir={tmp_path}/w',
                            '--config.eval.classifier=/nonexistent',
                            check=False)
  assert proc.returncode == 1 and 'no classifier at' in proc.stderr
  assert not os.path.exists(tmp_path / 'w' / 'checkpoints')


def test_shared_fakes_with_several_d_steps_is_rejected(tmp_path):
  proc = helpers.run_launch('train', f'--config={GAN}',
                            f'--workdir={tmp_path}/w',
                            '--config.loss.shared_fakes=true',
                            '--config.loss.d_steps=2', check=False)
  assert proc.returncode == 1
  assert 'shared_fakes=True needs config.loss.d_steps=1' in proc.stderr


def test_digit_fidelity_of_a_morphometry_vector_run(tmp_path, classifier):
  idx = helpers.make_idx_dir(str(tmp_path / 'idx'), n_train=64, n_test=16)
  workdir = str(tmp_path / 'run')
  helpers.run_launch('train', '--config=gensynth/configs/gan_mnist.py:smoke,'
                     'vector', '--config.data.source=idx',
                     f'--config.data.path={idx}', '--config.num_steps=2',
                     f'--workdir={workdir}')
  info = json.load(open(os.path.join(workdir, 'info.json')))
  assert info['condition']['names'][:2] == ['digit_0', 'digit_1']
  assert info['condition']['dim'] == 15
  out = json.loads(helpers.run_launch(
      'evaluate', f'--workdir={workdir}', '--fidelity', '--num_generated=12',
      f'--classifier={classifier}', '--diversity_conditions=5',
      '--diversity_samples=4').stdout)
  gen, real = out['run']['test']['generated'], out['run']['test']['real']
  assert gen['num_samples'] == real['num_samples'] == 12
  assert 0.0 <= gen['digit_accuracy'] <= 1.0
  # The real digits are measured by the same function that set the request.
  assert real['thickness_r'] == pytest.approx(1.0)
  assert real['thickness_word_accuracy'] == real['slant_word_accuracy'] == 1.0
  assert set(out['summary']['test_generated']) >= {
      'digit_accuracy', 'thickness_r', 'slant_mae', 'joint_accuracy', 'fid'}
  # FID against the test digits, next to its train-vs-test floor.
  assert gen['fid'] > 0 and real['fid'] > 0
  assert out['run']['test']['fid_over_floor'] == pytest.approx(
      gen['fid'] / real['fid'])
  # Diversity within a condition: 4 samples per vector beside the 4
  # training digits with the nearest vectors, in classifier features.
  div = out['run']['test']['diversity']
  assert div['conditions'] == 5 and div['samples_per_condition'] == 4
  assert div['real']['feature_distance'] > 0
  assert div['feature_distance_ratio'] == pytest.approx(
      div['generated']['feature_distance'] / div['real']['feature_distance'])
  assert 'feature_distance_ratio' in out['summary']['test_diversity']
  # Without a classifier to read the digit: one clear error (in-process;
  # the CLI's error path is tested for other errors above).
  with pytest.raises(errors.InputError, match='pass --classifier=WORKDIR'):
    conditions.fidelity(workdir_lib.load_config(workdir), workdir)
  # Vectors by field name: a row per vector.
  out = json.loads(helpers.run_launch(
      'sample', f'--workdir={workdir}', '--mode=vector', '--per_class=3',
      '--vectors=digit=7,thickness=4.5;digit=1,slant=0.3',
      f'--output={tmp_path}').stdout)
  assert out['shape'] == [6, 28, 28, 1]


def test_guided_cvae_scored_on_validation_digits(tmp_path, classifier,
                                                gan_run):
  """A vector CVAE trained with condition dropout samples with classifier-
  free guidance through evaluate and sample; --fidelity_split=validation
  scores the last training digits' conditions instead of the test split's."""
  idx = helpers.make_idx_dir(str(tmp_path / 'idx'), n_train=64, n_test=16)
  workdir = str(tmp_path / 'run')
  helpers.run_launch('train', '--config=gensynth/configs/vae_mnist.py:smoke,'
                     'vector', '--config.data.source=idx',
                     f'--config.data.path={idx}', '--config.num_steps=2',
                     '--config.loss.cond_dropout=0.5', f'--workdir={workdir}')
  out = json.loads(helpers.run_launch(
      'evaluate', f'--workdir={workdir}', '--fidelity', '--num_generated=12',
      f'--classifier={classifier}', '--diversity_conditions=0',
      '--guidance=2', '--fidelity_split=validation').stdout)
  run = out['run']
  assert run['guidance'] == 2.0 and 'test' not in run
  gen, real = run['validation']['generated'], run['validation']['real']
  assert gen['num_samples'] == real['num_samples'] == 12
  assert real['thickness_r'] == pytest.approx(1.0)
  assert 'digit_accuracy' in out['summary']['validation_generated']
  # The validation digits are the last 12 training digits.
  assert run['validation']['rows'] == 'train[52:64]'
  sample = json.loads(helpers.run_launch(
      'sample', f'--workdir={workdir}', '--mode=vector', '--per_class=2',
      '--vectors=digit=7,thickness=4.5', '--guidance=3',
      f'--output={tmp_path}').stdout)
  assert sample['shape'] == [2, 28, 28, 1]
  # --temperature reaches the autoregressive head: at psi = 0 (z = 0) greedy
  # decoding draws the same digit for any seed; T = 1 draws pixels.
  def draw(seed, *flags):
    out = json.loads(helpers.run_launch(
        'sample', f'--workdir={workdir}', '--mode=vector', '--per_class=2',
        '--vectors=digit=7', '--latent_scale=0', f'--seed={seed}', *flags,
        f'--output={tmp_path}/T{seed}{len(flags)}').stdout)
    return np.asarray(Image.open(out['path']))
  np.testing.assert_array_equal(draw(1, '--temperature=0'),
                                draw(2, '--temperature=0'))
  assert not np.array_equal(draw(1), draw(2))
  for flag, message in (('--guidance=1', 'holds a GAN run'),
                        ('--temperature=0.5', 'autoregressive head')):
    proc = helpers.run_launch('sample', f'--workdir={gan_run[0]}', flag,
                              check=False)
    assert proc.returncode != 0 and message in proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('config', ['gan_shapes.py:smoke',
                                    'gan_cifar10.py:smoke,cond',
                                    'gan_mnist.py:smoke'])
def test_other_gan_configs_train(tmp_path, config):
  workdir = str(tmp_path / 'run')
  helpers.run_launch('train', f'--config=gensynth/configs/{config}',
                     f'--workdir={workdir}', '--config.num_steps=2')
  final = json.load(open(os.path.join(workdir, 'final_metrics.json')))
  assert final['step'] == 2


def test_lazy_r1_through_the_launch_path(tmp_path):
  # Lazy R1 runs as two jitted variants picked on the host: each compiles
  # once, and R1 shows up in the logged means of the windows that hold an
  # R1 step (steps 0 and 4 with r1_every=4, logged every 2 steps).
  workdir = str(tmp_path / 'run')
  # The benchmark recipe's variants (shared fakes, Adam(0, 0.99)) included.
  helpers.run_launch('train', f'--config={GAN},smooth,r1,adam0,shared,wide',
                     f'--workdir={workdir}', '--config.num_steps=6',
                     '--config.loss.r1_every=4')
  config = json.load(open(os.path.join(workdir, 'config.json')))
  assert (config['loss']['kind'], config['loss']['r1_weight']) == ('hinge', 1)
  assert config['loss']['shared_fakes'] and config['g_optim']['b1'] == 0.0
  final = json.load(open(os.path.join(workdir, 'final_metrics.json')))
  assert final['step'] == 6 and final['train_step_compiles'] == 1
  train = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  r1 = [r['r1'] for r in train if r['split'] == 'train']
  assert len(r1) == 3 and r1[0] > 0 and r1[1] == 0 and r1[2] > 0


def test_vae_latent_fusion_cli(tmp_path):
  workdir = str(tmp_path / 'vae')
  helpers.run_launch('train', '--config=gensynth/configs/vae_shapes.py:smoke',
                     f'--workdir={workdir}')
  a, b = tmp_path / 'a.png', tmp_path / 'b.png'
  Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(a)
  Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(b)
  out = json.loads(helpers.run_launch(
      'sample', f'--workdir={workdir}', '--mode=fuse', f'--inputs={a},{b}',
      '--weights=0.3,0.7').stdout)
  assert out['shape'] == [3, 32, 32, 3]  # both inputs and the fusion
  out = json.loads(helpers.run_launch(
      'sample', f'--workdir={workdir}', '--mode=interpolate',
      f'--inputs={a},{b}', '--num_steps=4').stdout)
  assert out['shape'] == [4, 32, 32, 3]
  small = tmp_path / 'small.png'
  Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(small)
  proc = helpers.run_launch('sample', f'--workdir={workdir}', '--mode=fuse',
                            f'--inputs={a},{small}', check=False)
  assert proc.returncode != 0 and 'the model takes 32x32x3' in proc.stderr

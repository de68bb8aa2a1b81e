"""Smoke tests of the real launch path (subprocesses, as a user runs it)."""

import json
import os

import pytest

from tests import helpers

SMOKE = 'gensynth/configs/vae_mnist.py:smoke'


def test_train_then_evaluate(tmp_path):
  workdir = str(tmp_path / 'run')
  proc = helpers.run_launch('train', f'--config={SMOKE}', f'--workdir={workdir}')
  assert 'steps/s' in proc.stderr and 'ETA' in proc.stderr
  files = os.listdir(workdir)
  assert {'checkpoints', 'config.json', 'metrics.jsonl', 'tensorboard',
          'final_metrics.json'} <= set(files)
  assert any(f.startswith('samples_') and f.endswith('.png') for f in files)
  assert any(f.startswith('reconstructions_') for f in files)
  assert os.listdir(os.path.join(workdir, 'tensorboard'))
  assert '6' in os.listdir(os.path.join(workdir, 'checkpoints'))
  records = [json.loads(l) for l in open(os.path.join(workdir,
                                                      'metrics.jsonl'))]
  assert [r['step'] for r in records if r['split'] == 'train'] == [2, 4, 6]
  final = json.load(open(os.path.join(workdir, 'final_metrics.json')))
  assert final['nll_nats'] <= final['neg_elbo_nats'] + 1e-3
  assert final['train_step_compiles'] == 1  # no retracing after step one
  assert final['rss_mib_end'] > 0

  proc = helpers.run_launch('evaluate', f'--workdir={workdir}',
                            '--num_samples=8', '--chunk_size=4',
                            '--batch_size=8')
  out = json.loads(proc.stdout)
  assert out['step'] == 6 and out['iwae_samples'] == 8
  assert out['num_examples'] == 16
  assert 0 < out['nll_nats'] <= out['neg_elbo_nats'] + 1e-3


def test_periodic_evaluation_compiles_once(tmp_path):
  workdir = str(tmp_path / 'run')
  helpers.run_launch('train', f'--config={SMOKE}', '--config.eval_every=2',
                     f'--workdir={workdir}')
  records = [json.loads(l) for l in open(os.path.join(workdir,
                                                      'metrics.jsonl'))]
  assert [r['step'] for r in records if r['split'] == 'test'] == [2, 4, 6]
  final = json.load(open(os.path.join(workdir, 'final_metrics.json')))
  assert final['periodic_eval_compiles'] == 1


def test_embedded_default_config_smoke(tmp_path):
  workdir = str(tmp_path / 'run')
  helpers.run_launch('train', '--config=gensynth/configs/vae_shapes.py:smoke',
                     f'--workdir={workdir}')
  final = json.load(open(os.path.join(workdir, 'final_metrics.json')))
  assert 'nll_bits_per_dim' in final


@pytest.mark.parametrize('args,message', [
    (['--config.optim.lrr=1'], 'lrr'),
    (['--no_such_flag=1'], 'no_such_flag'),
    (['--config.batch_size=0'], 'batch_size=0 must be positive'),
    (['--config.micro_batches=3'], 'batch_size=8 must be a multiple of '
     'config.micro_batches=3'),
    (['--config.data.source=nfs'], "source='nfs' unknown"),
])
def test_bad_flags_and_config_fields(tmp_path, args, message):
  proc = helpers.run_launch('train', f'--config={SMOKE}',
                            f'--workdir={tmp_path}/w', *args, check=False)
  assert proc.returncode != 0
  assert message in proc.stderr


def test_evaluate_without_checkpoint(tmp_path):
  proc = helpers.run_launch('evaluate', f'--workdir={tmp_path}', check=False)
  assert proc.returncode != 0 and 'config.json' in proc.stderr


def test_non_finite_run_stops_cleanly_and_keeps_last_checkpoint(tmp_path):
  workdir = tmp_path / 'nan'
  proc = helpers.run_launch('train', f'--config={SMOKE}',
                            '--config.optim.lr=1e30', '--config.optim.grad_clip=0',
                            '--config.checkpoint_every=1',
                            f'--workdir={workdir}', check=False)
  assert proc.returncode == 1
  assert 'non-finite' in proc.stderr and 'at step' in proc.stderr
  assert 'Traceback' not in proc.stderr
  ckpts = os.listdir(workdir / 'checkpoints')
  assert ckpts and all(c.isdigit() for c in ckpts)  # no half-written tmp dir
  assert all(os.path.exists(workdir / 'checkpoints' / c / 'commit_success.txt')
             for c in ckpts)

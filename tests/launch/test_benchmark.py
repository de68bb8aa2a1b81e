"""launch.benchmark: where the PyTorch twins run (no torch needed: a stub)."""

import json
import subprocess
import sys

from tests import helpers

# A stand-in `torch` with no CUDA device, so the check runs without PyTorch.
_PROBE = r'''
import json, sys, types
torch = types.ModuleType('torch')
torch.cuda = types.SimpleNamespace(is_available=lambda: False)
torch.device = lambda name: 'device:' + name
sys.modules['torch'] = torch
from absl import app, flags
from launch import benchmark
from launch.bench import train_steps
flags.FLAGS(['probe'] + sys.argv[1:])
try:
  print(json.dumps({'device': train_steps.torch_device()}))
except app.UsageError as e:
  print(json.dumps({'usage_error': str(e)}))
'''


def _probe(*flags):
  proc = subprocess.run([sys.executable, '-c', _PROBE, *flags],
                        cwd=helpers.REPO, env=helpers.env(),
                        capture_output=True, text=True, timeout=120,
                        check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_torch_twins_run_on_the_cpu_by_default():
  assert _probe() == {'device': 'device:cpu'}


def test_cuda_twins_without_a_cuda_device_is_a_usage_error():
  out = _probe('--torch_device=cuda')
  assert '--torch_device=cuda' in out['usage_error']
  assert 'no CUDA device' in out['usage_error']


def test_unknown_torch_device_is_rejected_by_the_flag():
  proc = subprocess.run([sys.executable, '-c', _PROBE, '--torch_device=tpu'],
                        cwd=helpers.REPO, env=helpers.env(),
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert 'torch_device' in proc.stderr and 'cpu' in proc.stderr


_LAYERS = r'''
import json
import jax, jax.numpy as jnp
from launch.bench import train_steps
from gensynth.configs import vae_mnist
from gensynth.models import vae
model = vae.from_config(vae_mnist.get_config().model, (28, 28, 1), 10)
x = jnp.zeros((2, 28, 28, 1))
params = model.init(jax.random.key(0), x)['params']
rows = []
for module, shape in train_steps.conv_layers_of(model, params, x):
  p = module.init(jax.random.key(0), jnp.zeros(shape))['params']
  rows.append([type(module).__name__, list(shape), list(p['kernel'].shape)])
print(json.dumps(rows))
'''


def test_vae_layers_times_every_conv_of_the_config_at_its_own_shapes():
  proc = subprocess.run([sys.executable, '-c', _LAYERS], cwd=helpers.REPO,
                        env=helpers.env(), capture_output=True, text=True,
                        timeout=300, check=True)
  rows = json.loads(proc.stdout.strip().splitlines()[-1])
  # vae_mnist: encoder 16-32-64, transposed-conv trunk, PixelCNN head (mask
  # A 5x5 on the image, 1x1 from the trunk, two 3x3 mask-B convs, 1x1 out).
  assert rows == [
      ['Conv', [2, 28, 28, 1], [3, 3, 1, 16]],
      ['Conv', [2, 28, 28, 16], [4, 4, 16, 32]],
      ['Conv', [2, 14, 14, 32], [4, 4, 32, 64]],
      ['ConvTranspose', [2, 7, 7, 64], [4, 4, 32, 64]],
      ['ConvTranspose', [2, 14, 14, 32], [4, 4, 16, 32]],
      ['MaskedConv', [2, 28, 28, 1], [5, 5, 1, 16]],
      ['Conv', [2, 28, 28, 16], [1, 1, 16, 16]],
      ['MaskedConv', [2, 28, 28, 16], [3, 3, 16, 16]],
      ['MaskedConv', [2, 28, 28, 16], [3, 3, 16, 16]],
      ['Conv', [2, 28, 28, 16], [1, 1, 16, 1]]]


def test_multifocus_validation_scores_a_run_at_each_working_scale(tmp_path):
  """--bench=learned_multifocus_validation: a smoke multi-focus run on
  512-px synthetic sets (random regions and segment regions, lossless and
  JPEG sources) at two working scales."""
  # pylint: disable=g-import-not-at-top
  from gensynth.configs import fusion_multifocus
  from gensynth.train import fusion as fusion_train
  # pylint: enable=g-import-not-at-top
  bench = [sys.executable, '-m', 'launch.benchmark',
           '--bench=learned_multifocus_validation']
  proc = subprocess.run(bench, cwd=helpers.REPO, env=helpers.env(),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0 and 'needs --checkpoints' in proc.stderr
  config = fusion_multifocus.get_config('smoke')
  config.num_steps = 2
  workdir = str(tmp_path / 'run')
  fusion_train.train_and_evaluate(config, workdir)
  out = tmp_path / 'record.json'
  subprocess.run(bench + [f'--checkpoints={workdir}', '--sets=1',
                          '--down_levels=2,3', '--regions=fields,segments',
                          f'--output={out}'],
                 cwd=helpers.REPO, env=helpers.env(), capture_output=True,
                 text=True, timeout=600, check=True)
  record = json.loads(out.read_text())
  assert record['sets'] == 1 and record['crop'] == 512
  rows = record['mean']
  # scales x regions x source kinds x (learned, prior)
  assert len(rows) == 2 * 2 * 2 * 2
  kinds = [f'regions={r} | {c}' for r in ('fields', 'segments')
           for c in ('lossless', 'jpeg75')]
  for level in (2, 3):
    for kind in kinds:
      for name in ('learned', 'prior'):
        row = rows[f'{workdir} | down_levels={level} | {kind} | {name}']
        assert 0.2 < row['qabf'] < 1 and 0.2 < row['qabf_reencoded'] < 1
        assert row['mi'] > 1 and 0.5 < row['ssim_to_photo'] <= 1
  # The prior alone does not depend on the working scale; JPEG sources
  # lower the fused image's similarity to the lossless photo.
  def prior(level, kind, regions='fields'):
    return rows[f'{workdir} | down_levels={level} | regions={regions} | '
                f'{kind} | prior']
  assert prior(2, 'lossless') == prior(3, 'lossless')
  assert (prior(2, 'jpeg75')['ssim_to_photo'] <
          prior(2, 'lossless')['ssim_to_photo'])
  # The two kinds of regions are different sets.
  assert prior(2, 'lossless') != prior(2, 'lossless', 'segments')
  bad = subprocess.run(bench + [f'--checkpoints={workdir}', '--regions=blobs'],
                       cwd=helpers.REPO, env=helpers.env(),
                       capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0 and "--regions='blobs'" in bad.stderr

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
flags.FLAGS(['probe'] + sys.argv[1:])
try:
  print(json.dumps({'device': benchmark._torch_device()}))
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

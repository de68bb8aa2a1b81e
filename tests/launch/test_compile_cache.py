"""launch.runtime.enable_compilation_cache: every launch script keeps its
compiled programs in a persistent cache, so a second command on the same
shapes compiles nothing."""

import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image

from tests import helpers


def _inputs(tmp_path):
  rng = np.random.default_rng(0)
  paths = []
  for i in range(2):
    p = tmp_path / f'in{i}.png'
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), np.uint8)).save(p)
    paths.append(str(p))
  return ','.join(paths)


def _fuse(tmp_path, *flags, stderr=None, traces=None, **env_extra):
  env = helpers.env(GENSYNTH_COMPILE_REPORT='1', **env_extra)
  env.pop('JAX_COMPILATION_CACHE_DIR', None)
  proc = subprocess.run(
      helpers.launch_cmd('fuse', '--method=exposure', '--levels=3',
                         f'--inputs={_inputs(tmp_path)}',
                         f'--output={tmp_path / "out.png"}', *flags),
      cwd=helpers.REPO, env=env, capture_output=True, text=True, timeout=300,
      check=True)
  m = re.search(r'compile report: compiled=(\d+) cache_hits=(\d+) '
                r'traced=(\d+) traces_loaded=(\d+)', proc.stderr)
  assert m, proc.stderr[-2000:]
  if stderr is not None:
    stderr.append(proc.stderr)
  if traces is not None:
    traces.append((int(m.group(3)), int(m.group(4))))
  return int(m.group(1)), int(m.group(2))


def test_second_run_loads_every_program_from_the_cache(tmp_path):
  cache = tmp_path / 'cache'
  traces = []
  compiled, _ = _fuse(tmp_path, f'--compilation_cache_dir={cache}',
                      traces=traces)
  assert compiled > 0 and os.listdir(cache)
  compiled, hits = _fuse(tmp_path, f'--compilation_cache_dir={cache}',
                         traces=traces)
  assert compiled == 0 and hits > 0
  # Nor does it trace them: the fusion and the metrics it prints come from
  # the trace cache beside the programs.
  (traced, loaded), (traced_again, loaded_again) = traces
  assert traced > 0 and loaded == 0
  assert traced_again == 0 and loaded_again == traced
  assert len(os.listdir(cache / 'gensynth-traces')) == traced
  # A process killed between writing an entry and its access time leaves
  # the program alone; without the repair every later write to the
  # directory fails (here: the programs of another pyramid depth). The next
  # command removes it, and its own programs are cached: run again, it
  # compiles nothing.
  programs = sorted(n for n in os.listdir(cache) if n.endswith('-cache'))
  os.remove(cache / (programs[0][:-len('-cache')] + '-atime'))
  err = []
  compiled, _ = _fuse(tmp_path, f'--compilation_cache_dir={cache}',
                      '--levels=2', stderr=err)
  assert compiled > 0
  assert 'left half-written by a killed process' in err[0]
  assert 'Error writing persistent compilation cache' not in err[0]
  # The orphan is gone (or written again whole, when this run needed the
  # same program): every program has its access time.
  names = set(os.listdir(cache))
  assert all(n[:-len('-cache')] + '-atime' in names
             for n in names if n.endswith('-cache'))
  compiled, _ = _fuse(tmp_path, f'--compilation_cache_dir={cache}',
                      '--levels=2')
  assert compiled == 0


def test_default_cache_is_per_user_and_empty_flag_turns_it_off(tmp_path):
  home_cache = tmp_path / 'xdg'
  _fuse(tmp_path, XDG_CACHE_HOME=str(home_cache))
  assert os.listdir(home_cache / 'gensynth' / 'jax')
  off = tmp_path / 'xdg_off'
  for _ in range(2):
    compiled, hits = _fuse(tmp_path, '--compilation_cache_dir=',
                           XDG_CACHE_HOME=str(off))
    assert compiled > 0 and hits == 0
  assert not off.exists()


def test_launch_scripts_define_their_flags_without_importing_jax():
  # What makes `python -m launch.X --help` answer without loading JAX.
  for module in ('fuse', 'stitch', 'train', 'evaluate', 'sample'):
    code = (f'import sys, launch.{module}; '
            "print('jax' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], cwd=helpers.REPO,
                         env=helpers.env(), capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ['False', 'False'], (module, out)


def test_stitch_cli_choices_match_the_library():
  code = ('from gensynth.synth import stitch; from launch import stitch as cli; '
          'print(cli.POLICIES == stitch.POLICIES and '
          'cli.ALIGNS == stitch.ALIGNS)')
  out = subprocess.run([sys.executable, '-c', code], cwd=helpers.REPO,
                       env=helpers.env(), capture_output=True, text=True,
                       timeout=120, check=True).stdout.split()
  assert out == ['True']

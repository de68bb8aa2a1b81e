"""Every launch command runs in the process it was started in: no script
re-executes itself (the huge-page restart is gone; BUILD_NOTES.md, "Huge
pages and the restart"), and a tunable the caller sets is what the process
runs with."""

import json
import pathlib
import subprocess

from tests import helpers


def test_no_launch_script_re_executes_itself():
  for path in sorted(pathlib.Path(helpers.REPO, 'launch').rglob('*.py')):
    text = path.read_text()
    for call in ('os.exec', 'execve', 'execv('):
      assert call not in text, f'{path} calls {call}'


def _benchmark_tunables(tmp_path, **env_extra):
  out = tmp_path / 'r.json'
  env = helpers.env(**env_extra)
  if 'GLIBC_TUNABLES' not in env_extra:
    env.pop('GLIBC_TUNABLES', None)
  subprocess.run(helpers.launch_cmd('benchmark', '--bench=weighted_blend',
                                    '--rounds=1', f'--output={out}'),
                 cwd=helpers.REPO, env=env, capture_output=True, text=True,
                 timeout=300, check=True)
  return json.loads(out.read_text())['glibc_tunables']


def test_benchmark_runs_with_the_tunables_it_was_started_with(tmp_path):
  assert _benchmark_tunables(tmp_path) == ''
  assert _benchmark_tunables(
      tmp_path, GLIBC_TUNABLES='glibc.malloc.hugetlb=1') == (
          'glibc.malloc.hugetlb=1')

"""launch.runtime.restart_with_huge_pages: launch scripts restart with
huge-page malloc."""

import os
import subprocess
import sys

import pytest

from launch import runtime
from tests import helpers


@pytest.fixture
def execs(monkeypatch):
  calls = []
  monkeypatch.setattr(os, 'execve', lambda *a: calls.append(a))
  monkeypatch.delenv('GLIBC_TUNABLES', raising=False)
  monkeypatch.delenv('GENSYNTH_HUGETLB', raising=False)
  return calls


def _as_if_run(monkeypatch, orig_argv, argv0='-m'):
  monkeypatch.setattr(sys, 'orig_argv', orig_argv)
  monkeypatch.setattr(sys, 'argv', [argv0])
  runtime.restart_with_huge_pages()


def test_python_m_launch_restarts_with_the_tunable(execs, monkeypatch):
  _as_if_run(monkeypatch, ['py', '-m', 'launch.fuse', '--method=weighted'])
  (exe, argv, env), = execs
  assert exe == sys.executable
  assert argv == [sys.executable, '-m', 'launch.fuse', '--method=weighted']
  assert env['GLIBC_TUNABLES'] == 'glibc.malloc.hugetlb=1'


def test_other_tunables_are_kept(execs, monkeypatch):
  monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.arena_max=2')
  _as_if_run(monkeypatch, ['py', '-X', 'dev', '-m', 'launch.train'])
  (_, argv, env), = execs
  assert argv[1:] == ['-X', 'dev', '-m', 'launch.train']
  assert env['GLIBC_TUNABLES'] == ('glibc.malloc.arena_max=2:'
                                   'glibc.malloc.hugetlb=1')


@pytest.mark.parametrize('orig_argv,argv0,env', [
    (['py', '-m', 'launch.fuse'], '-m', {'GENSYNTH_HUGETLB': '0'}),  # opt out
    (['py', '-m', 'launch.fuse'], '-m',
     {'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'}),  # the user's choice wins
])
def test_no_restart(execs, monkeypatch, orig_argv, argv0, env):
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  _as_if_run(monkeypatch, orig_argv, argv0)
  assert not execs


def test_restarted_benchmark_records_the_tunable(tmp_path):
  # End to end: a real `python -m launch.benchmark` run (a cheap bench)
  # reports the tunable it ran with.
  out = tmp_path / 'r.json'
  env = helpers.env()
  env.pop('GLIBC_TUNABLES', None)
  env.pop('GENSYNTH_HUGETLB', None)
  subprocess.run(helpers.launch_cmd('benchmark', '--bench=weighted_blend',
                                    '--rounds=1', f'--output={out}'),
                 cwd=helpers.REPO, env=env, capture_output=True, text=True,
                 timeout=300, check=True)
  import json  # pylint: disable=g-import-not-at-top
  assert 'glibc.malloc.hugetlb=1' in json.loads(out.read_text())[
      'glibc_tunables']


def test_importing_a_launch_script_restarts_nothing(execs):
  import importlib  # pylint: disable=g-import-not-at-top
  importlib.import_module('launch.fuse')
  assert not execs

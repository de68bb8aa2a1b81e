"""The launch scripts print gensynth's user-facing errors as one line and keep
the traceback of everything else."""

import pytest

from gensynth import errors
from launch import distributed
from tests import helpers


def test_gensynth_errors_become_exit_status_one():
  def bad_config():
    raise errors.ConfigError('config.batch_size=0 must be positive.')
  with pytest.raises(SystemExit) as exit_info:
    distributed.one_line_errors(bad_config)
  assert exit_info.value.code == 1


@pytest.mark.parametrize('exc', [ZeroDivisionError, ValueError, OSError])
def test_any_other_exception_keeps_its_traceback(exc):
  def bug():
    raise exc('a bug')
  with pytest.raises(exc, match='a bug'):
    distributed.one_line_errors(bug)


def test_train_cli_bad_config_is_one_line(tmp_path):
  proc = helpers.run_launch(
      'train', '--config=gensynth/configs/vae_shapes.py:smoke',
      f'--workdir={tmp_path}', '--config.batch_size=0', check=False)
  assert proc.returncode == 1
  assert 'ConfigError: config.batch_size=0 must be positive.' in proc.stderr
  assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('module,override,message', [
    ('train', '--config.num_stepz=5',
     "--config.num_stepz: the config has no field 'num_stepz'. Did you mean "
     '"num_steps"'),
    ('train', '--config.optim.lr=0.1',
     "--config.optim.lr: the config has no field 'optim'."),
    ('evaluate', '--config.eval_every=3',
     "--config.eval_every: the config has no field 'eval_every'."),
])
def test_an_override_of_a_field_the_config_lacks_is_one_line(
    tmp_path, module, override, message):
  proc = helpers.run_launch(
      module, '--config=gensynth/configs/gan_shapes.py:smoke',
      f'--workdir={tmp_path}', override, check=False)
  assert proc.returncode == 1
  assert message in proc.stderr and 'Traceback' not in proc.stderr


@pytest.mark.parametrize('config,args,message', [
    ('gan_shapes.py:smoke', ['--config.loss.mismatch_weight=1'],
     'config.loss.mismatch_weight=1.0 needs a conditional GAN'),
    ('gan_shapes.py:smoke,text', ['--config.loss.mode_seeking_weight=-1'],
     'config.loss.mode_seeking_weight=-1.0 must be >= 0.'),
    ('gan_shapes.py:smoke,text', ['--config.loss.mode_seeking_weight=1',
                                  '--config.batch_size=7'],
     'config.batch_size must be even (got 7)'),
    ('fusion_multifocus.py:smoke', ['--config.data.defocus_blur=box'],
     "config.data.defocus_blur='box'; expected one of"),
    ('fusion_multifocus.py:smoke', ['--config.loss.qabf_weight=-0.5'],
     'config.loss.qabf_weight=-0.5 must be >= 0.'),
    ('gan_shapes.py:smoke', ['--config.loss.contrastive_weight=1'],
     'config.loss.contrastive_weight=1.0 needs a conditional GAN'),
    ('gan_shapes.py:smoke,text', ['--config.loss.contrastive_weight=-1'],
     'config.loss.contrastive_weight=-1.0 must be >= 0.'),
    ('vae_shapes.py:smoke,vector', ['--config.loss.cond_dropout=1'],
     'config.loss.cond_dropout=1.0: expected a probability in [0, 1)'),
    ('vae_shapes.py:smoke', ['--config.loss.cond_dropout=0.1'],
     'config.loss.cond_dropout=0.1 needs a vector or text condition'),
])
def test_new_loss_and_data_settings_are_checked_before_training(
    tmp_path, config, args, message):
  proc = helpers.run_launch('train', f'--config=gensynth/configs/{config}',
                            f'--workdir={tmp_path}', *args, check=False)
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert message in proc.stderr
  assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('flag', ['--temperature=0', '--guidance=2',
                                  '--fidelity_split=validation',
                                  '--latent_scale=0.5'])
def test_evaluate_sampling_flags_need_fidelity(tmp_path, flag):
  proc = helpers.run_launch(
      'evaluate', f'--workdir={tmp_path}', flag,
      '--config=gensynth/configs/vae_shapes.py:smoke', check=False)
  assert proc.returncode != 0
  assert f'{flag.split("=")[0]} goes with --fidelity' in proc.stderr
  assert 'Traceback' not in proc.stderr

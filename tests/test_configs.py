"""gensynth.configs.common: the one variant parser and the config upgrade."""

import pytest

from gensynth import errors
from gensynth.configs import common
from gensynth.configs import gan_common
from gensynth.configs import gan_mnist
from gensynth.configs import vae_shapes


def test_parse_variants_accepts_known_and_names_unknown():
  assert common.parse_variants('x', 'a,b', ('a', 'b', 'c')) == {'a', 'b'}
  assert common.parse_variants('x', None, ('a',)) == set()
  with pytest.raises(errors.ConfigError, match=r"x variants \['z'\] unknown"):
    common.parse_variants('x', 'a,z', ('a', 'b'))


@pytest.mark.parametrize('get_config,arg', [(vae_shapes.get_config, 'nope'),
                                            (gan_mnist.get_config, 'cond,x')])
def test_every_config_file_rejects_unknown_variants(get_config, arg):
  with pytest.raises(errors.ConfigError, match='variants .* unknown'):
    get_config(arg)


def test_upgrade_fills_fields_an_older_run_lacked_and_keeps_the_rest():
  old = gan_common.base_config().to_dict()
  for section, field in (('model', 'conv_impl'), ('model', 'g_upsample'),
                         ('loss', 'shared_fakes')):
    del old[section][field]
  del old['skip_nonfinite']
  old['model']['latent_dim'] = 7
  new = common.upgrade(old)
  assert new.model.conv_impl == 'auto'
  assert new.model.g_upsample == 'transpose'
  assert new.loss.shared_fakes is False
  assert new.skip_nonfinite is False
  assert new.model.latent_dim == 7  # present fields are kept
  # Today's configs carry every field the upgrade knows.
  assert common.upgrade(gan_common.base_config()).to_dict() == \
      gan_common.base_config().to_dict()


def test_upgrade_rejects_a_config_of_no_known_trainer():
  with pytest.raises(errors.ConfigError, match="trainer='bogus'"):
    common.upgrade({'trainer': 'bogus'})


def test_mnist_condition_variants():
  from gensynth.configs import vae_mnist  # pylint: disable=g-import-not-at-top
  c = gan_mnist.get_config('idx,vector,smooth')
  assert c.model.conditional and c.data.condition == 'vector'
  assert c.data.source == 'idx'
  assert vae_mnist.get_config('text').data.condition == 'text'
  assert gan_mnist.get_config('cond').data.condition == 'label'
  with pytest.raises(errors.ConfigError, match='each pick the condition'):
    gan_mnist.get_config('cond,text')

import numpy as np
import pytest
import skimage.data
from PIL import Image

from tests import helpers


@pytest.fixture
def files(tmp_path):
  a = skimage.data.astronaut()[:64, :64]
  b = skimage.data.chelsea()[:64, :64]
  Image.fromarray(a).save(tmp_path / 'a.png')
  Image.fromarray(b).save(tmp_path / 'b.jpg')
  mask = np.zeros((64, 64), np.uint8)
  mask[:, 32:] = 255
  Image.fromarray(mask).save(tmp_path / 'm.png')
  Image.fromarray(skimage.data.camera()[:40, :50]).save(tmp_path / 'small.png')
  return tmp_path


def test_pyramid_fuse_mask_selects_second_image(files):
  out = files / 'out.png'
  proc = helpers.run_launch('fuse', '--method=pyramid',
                            f'--inputs={files}/a.png,{files}/b.jpg',
                            f'--mask={files}/m.png', '--levels=4',
                            f'--output={out}')
  assert 'Q^AB/F' in proc.stdout and 'pyramid: fused 2 images' in proc.stdout
  res = np.asarray(Image.open(out)).astype(float)
  a = skimage.data.astronaut()[:64, :64].astype(float)
  b = np.asarray(Image.open(files / 'b.jpg')).astype(float)
  assert np.abs(res[:, :8] - a[:, :8]).mean() < 6
  assert np.abs(res[:, -8:] - b[:, -8:]).mean() < 6


def test_poisson_cli_keeps_target_outside_mask(files):
  out = files / 'p.png'
  helpers.run_launch('fuse', '--method=poisson',
                     f'--inputs={files}/a.png,{files}/b.jpg',
                     f'--mask={files}/m.png', f'--output={out}')
  res = np.asarray(Image.open(out)).astype(int)
  a = skimage.data.astronaut()[:64, :64].astype(int)
  np.testing.assert_array_equal(res[:, :31], a[:, :31])


def test_sixteen_bit_and_alpha(files):
  g16 = (np.linspace(0, 65535, 48 * 48).reshape(48, 48)).astype(np.uint16)
  Image.fromarray(g16).save(files / 'g1.png')
  Image.fromarray(g16[::-1].copy()).save(files / 'g2.png')
  helpers.run_launch('fuse', '--method=weighted', '--weights=0.5,0.5',
                     f'--inputs={files}/g1.png,{files}/g2.png',
                     f'--output={files}/g.png')
  out = np.asarray(Image.open(files / 'g.png'))
  assert out.dtype in (np.uint16, np.int32) and out.max() > 255
  np.testing.assert_allclose(out, (g16.astype(float) + g16[::-1]) / 2, atol=1.5)
  rgba = np.dstack([skimage.data.astronaut()[:48, :48],
                    np.full((48, 48), 128, np.uint8)])
  Image.fromarray(rgba).save(files / 'r.png')
  helpers.run_launch('fuse', '--method=weighted',
                     f'--inputs={files}/r.png,{files}/g1.png',
                     f'--output={files}/rg.png')
  assert np.asarray(Image.open(files / 'rg.png')).shape == (48, 48, 4)


@pytest.mark.parametrize('args,message', [
    (['--method=pyramid', '--inputs={d}/a.png,{d}/small.png', '--mask={d}/m.png'],
     'inputs differ in size'),
    (['--method=pyramid', '--inputs={d}/a.png,{d}/b.jpg'], 'needs --mask'),
    (['--method=weighted', '--inputs={d}/a.png,{d}/trunc.png'], 'trunc.png'),
    (['--method=weighted', '--inputs={d}/a.png,{d}/missing.png'],
     'missing.png: no such image file'),
    (['--method=poisson', '--inputs={d}/a.png,{d}/b.jpg'], 'needs --mask'),
    (['--method=panorama', '--inputs={d}/a.png,{d}/b.jpg'], 'panorama'),
    (['--method=weighted', '--inputs={d}/a.png,{d}/b.jpg', '--weights=1'],
     '--weights has 1 values for 2 inputs'),
    (['--method=weighted', '--inputs={d}/a.png,{d}/trunc.jpg'], 'trunc.jpg'),
    (['--method=weighted', '--inputs={d}/a.png,{d}/notes.png'],
     'notes.png: not a readable image'),
    (['--method=weighted', '--inputs={d}/a.png,{d}'], 'no such image file'),
    (['--method=weighted', '--inputs={d}/a.png,{d}/b.jpg', '--bogus=1'],
     'bogus'),
])
def test_fuse_errors(files, args, message):
  data = (files / 'a.png').read_bytes()
  (files / 'trunc.png').write_bytes(data[:len(data) // 3])
  jpg = (files / 'b.jpg').read_bytes()
  (files / 'trunc.jpg').write_bytes(jpg[:len(jpg) // 2])
  (files / 'notes.png').write_text('not an image at all')
  args = [a.format(d=files) for a in args]
  proc = helpers.run_launch('fuse', *args, f'--output={files}/o.png',
                            check=False)
  assert proc.returncode != 0
  assert message in proc.stderr
  assert 'Traceback' not in proc.stderr


def test_stitch_concat_and_grid(files):
  helpers.run_launch('stitch', '--mode=concat', '--direction=horizontal',
                     f'--inputs={files}/a.png,{files}/small.png',
                     '--policy=pad', '--spacing=2', f'--output={files}/s.png')
  assert np.asarray(Image.open(files / 's.png')).shape == (64, 64 + 2 + 50, 3)
  helpers.run_launch('stitch', '--mode=grid', '--cols=2',
                     f'--inputs={files}/a.png,{files}/b.jpg,{files}/small.png',
                     f'--output={files}/g.png')
  assert np.asarray(Image.open(files / 'g.png')).shape == (128, 128, 3)
  proc = helpers.run_launch('stitch', '--mode=concat', '--policy=error',
                            f'--inputs={files}/a.png,{files}/small.png',
                            f'--output={files}/e.png', check=False)
  assert proc.returncode != 0 and 'heights differ' in proc.stderr


def test_stitch_rejects_corrupt_input(files):
  (files / 'bad.jpg').write_bytes(b'\xff\xd8\xff' + b'\0' * 40)
  proc = helpers.run_launch('stitch', '--mode=panorama',
                            f'--inputs={files}/a.png,{files}/bad.jpg',
                            f'--output={files}/p.png', check=False)
  assert proc.returncode != 0 and 'bad.jpg' in proc.stderr
  assert 'Traceback' not in proc.stderr

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from gensynth.synth import io
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


def _write_png16_bgr(path, rgb):
  """An independent 16-bit colour PNG writer: OpenCV, BGR(A) order."""
  bgr = rgb[..., 2::-1]
  if rgb.shape[-1] == 4:
    bgr = np.concatenate([bgr, rgb[..., 3:]], -1)
  assert cv2.imwrite(str(path), np.ascontiguousarray(bgr))


def _read_png16_rgb(path):
  arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
  assert arr.dtype == np.uint16
  rgb = arr[..., 2::-1]
  return np.concatenate([rgb, arr[..., 3:]], -1) if arr.shape[-1] == 4 else rgb


@pytest.mark.parametrize('channels', [3, 4])
def test_sixteen_bit_colour_png_read_and_written_at_full_depth(tmp_path,
                                                               channels):
  rng = np.random.default_rng(channels)
  # Values whose low byte matters: an 8-bit round trip would be off by ~128.
  a = rng.integers(0, 65536, (20, 24, channels), dtype=np.uint16)
  _write_png16_bgr(tmp_path / 'a.png', a)
  x, bits = io.read_image(str(tmp_path / 'a.png'))
  assert bits == 16 and x.shape == a.shape
  np.testing.assert_array_equal(np.round(x * 65535).astype(np.uint16), a)
  io.write_image(str(tmp_path / 'b.png'), x, bits=16)
  np.testing.assert_array_equal(_read_png16_rgb(tmp_path / 'b.png'), a)
  # Truncated 16-bit colour PNG: a clear error naming the file.
  data = (tmp_path / 'a.png').read_bytes()
  (tmp_path / 'cut.png').write_bytes(data[:len(data) // 2])
  with pytest.raises(ValueError, match='cut.png'):
    io.read_image(str(tmp_path / 'cut.png'))


def test_cli_keeps_sixteen_bit_rgb(tmp_path):
  rng = np.random.default_rng(0)
  a = rng.integers(0, 65536, (16, 16, 3), dtype=np.uint16)
  b = rng.integers(0, 65536, (16, 16, 3), dtype=np.uint16)
  _write_png16_bgr(tmp_path / 'a.png', a)
  _write_png16_bgr(tmp_path / 'b.png', b)
  out = helpers.run_launch('fuse', '--method=weighted', '--weights=0.5,0.5',
                           f'--inputs={tmp_path}/a.png,{tmp_path}/b.png',
                           f'--output={tmp_path}/f.png')
  assert '(16-bit)' in out.stdout
  fused = _read_png16_rgb(tmp_path / 'f.png').astype(float)
  np.testing.assert_allclose(fused, (a.astype(float) + b) / 2, atol=1.0)
  out = helpers.run_launch('stitch', '--mode=concat',
                           f'--inputs={tmp_path}/a.png,{tmp_path}/b.png',
                           f'--output={tmp_path}/s.png')
  assert '(16-bit)' in out.stdout
  np.testing.assert_array_equal(_read_png16_rgb(tmp_path / 's.png'),
                                np.concatenate([a, b], 1))
  out = helpers.run_launch('stitch', '--mode=concat', '--bits=8',
                           f'--inputs={tmp_path}/a.png,{tmp_path}/b.png',
                           f'--output={tmp_path}/s8.png')
  assert np.asarray(Image.open(tmp_path / 's8.png')).dtype == np.uint8

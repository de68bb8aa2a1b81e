"""PyTorch twins of gensynth models, used only by launch.benchmark.

Same layers, widths, activations and loss as gensynth.models.vae so that the
throughput comparison is like for like. Not part of the package's API.
"""

import torch
from torch import nn
from torch.nn import functional as F


class MaskedConv(nn.Conv2d):

  def __init__(self, cin, cout, k, include_center):
    super().__init__(cin, cout, k, padding=k // 2)
    mask = torch.zeros(k, k)
    mask[:k // 2] = 1
    mask[k // 2, :k // 2 + int(include_center)] = 1
    self.register_buffer('mask', mask[None, None])

  def forward(self, x):
    return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


# gensynth activation names (config.model.act) -> PyTorch modules.
_ACTIVATIONS = {'silu': nn.SiLU, 'relu': nn.ReLU, 'gelu': nn.GELU,
                'identity': nn.Identity}


class VAE(nn.Module):
  """Conv VAE (+ optional AR head), Bernoulli likelihood, 28x28x1."""

  def __init__(self, cfg):
    super().__init__()
    w = list(cfg.widths)
    self.latent = cfg.latent_dim
    self.base = 28 // 2**(len(w) - 1)
    name = cfg.act
    if name not in _ACTIVATIONS:
      raise ValueError(f'activation {name!r} has no PyTorch twin here; '
                       f'expected one of {sorted(_ACTIVATIONS)}.')
    act = _ACTIVATIONS[name]
    # flax.linen.gelu defaults to the tanh approximation.
    if name == 'gelu':
      act = lambda: nn.GELU(approximate='tanh')  # pylint: disable=unnecessary-lambda-assignment
    self.act = act()
    enc = [nn.Conv2d(1, w[0], 3, padding=1)]
    for a, b in zip(w[:-1], w[1:]):
      enc += [act(), nn.Conv2d(a, b, 4, 2, 1)]
    self.enc = nn.Sequential(*enc, act(), nn.Flatten())
    self.enc_out = nn.Linear(w[-1] * self.base**2, 2 * cfg.latent_dim)
    self.dec_in = nn.Linear(cfg.latent_dim, w[-1] * self.base**2)
    dec = []
    for a, b in zip(w[::-1][:-1], w[::-1][1:]):
      dec += [act(), nn.ConvTranspose2d(a, b, 4, 2, 1)]
    self.dec = nn.Sequential(*dec, act())
    self.ar = cfg.ar_channels
    if self.ar:
      self.a_in = MaskedConv(1, self.ar, 5, False)
      self.cond = nn.Conv2d(w[0], self.ar, 1)
      self.a_layers = nn.ModuleList(MaskedConv(self.ar, self.ar, 3, True)
                                    for _ in range(cfg.ar_layers))
      self.out = nn.Conv2d(self.ar, 1, 1)
    else:
      self.out = nn.Conv2d(w[0], 1, 3, padding=1)

  def loss(self, x):
    mean, logvar = self.enc_out(self.enc(x)).chunk(2, dim=1)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    h = self.dec(self.dec_in(z).view(-1, self.dec_in.out_features //
                                     self.base**2, self.base, self.base))
    if self.ar:
      a = self.a_in(x) + self.cond(h)
      for layer in self.a_layers:
        a = a + layer(self.act(a))
      logits = self.out(self.act(a))
    else:
      logits = self.out(h)
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction='none').sum(
        (1, 2, 3))
    kl = 0.5 * (logvar.exp() + mean**2 - 1 - logvar).sum(1)
    return (rec + kl).mean()


class _CondGroupNorm(nn.Module):

  def __init__(self, c, num_classes, groups=8):
    super().__init__()
    self.norm = nn.GroupNorm(min(groups, c), c, affine=False)
    self.num_classes = num_classes
    if num_classes:
      self.scale = nn.Embedding(num_classes, c)
      self.bias = nn.Embedding(num_classes, c)
      nn.init.zeros_(self.scale.weight)
      nn.init.zeros_(self.bias.weight)
    else:
      self.scale = nn.Parameter(torch.ones(c))
      self.bias = nn.Parameter(torch.zeros(c))

  def forward(self, x, y):
    h = self.norm(x)
    if self.num_classes:
      return h * (1 + self.scale(y)[:, :, None, None]) + self.bias(
          y)[:, :, None, None]
    return h * self.scale[:, None, None] + self.bias[:, None, None]


class Generator(nn.Module):
  """Twin of gensynth.models.gan.Generator (group norm, label embedding)."""

  def __init__(self, cfg, image_size, channels, num_classes):
    super().__init__()
    w = list(cfg.g_widths)
    self.base, self.w0 = image_size // 2**len(w), w[0]
    self.num_classes = num_classes if cfg.conditional else 0
    zin = cfg.latent_dim + (cfg.embed_dim if self.num_classes else 0)
    if self.num_classes:
      self.embed = nn.Embedding(self.num_classes, cfg.embed_dim)
    self.fc = nn.Linear(zin, self.base**2 * w[0], bias=False)
    self.norms = nn.ModuleList(_CondGroupNorm(c, self.num_classes) for c in w)
    if cfg.g_upsample == 'nearest':
      up = lambda a, b, bias: nn.Sequential(
          nn.Upsample(scale_factor=2, mode='nearest'),
          nn.Conv2d(a, b, 3, padding=1, bias=bias))
    else:
      up = lambda a, b, bias: nn.ConvTranspose2d(a, b, 4, 2, 1, bias=bias)
    self.ups = nn.ModuleList(up(a, b, False) for a, b in zip(w[:-1], w[1:]))
    self.out = up(w[-1], channels, True)

  def forward(self, z, y):
    if self.num_classes:
      z = torch.cat([z, self.embed(y)], 1)
    h = self.fc(z).view(-1, self.w0, self.base, self.base)
    h = F.relu(self.norms[0](h, y))
    for up, norm in zip(self.ups, self.norms[1:]):
      h = F.relu(norm(up(h), y))
    return torch.tanh(self.out(h))


class Discriminator(nn.Module):
  """Twin of gensynth.models.gan.Discriminator (projection head)."""

  def __init__(self, cfg, image_size, channels, num_classes):
    super().__init__()
    w = [channels] + list(cfg.d_widths)
    self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, 2, 1)
                               for a, b in zip(w[:-1], w[1:]))
    self.mbstd = cfg.d_mbstd_group
    feat = (w[-1] + (1 if self.mbstd else 0)) * (
        image_size // 2**len(cfg.d_widths))**2
    self.fc = nn.Linear(feat, 1)
    self.num_classes = num_classes if cfg.conditional else 0
    if self.num_classes:
      self.proj = nn.Embedding(self.num_classes, feat)
      nn.init.normal_(self.proj.weight, std=0.02)

  def forward(self, x, y):
    h = x
    for conv in self.convs:
      h = F.leaky_relu(conv(h), 0.2)
    if self.mbstd:
      n = h.shape[0]
      g = min(self.mbstd, n)
      std = (h.view(n // g, g, *h.shape[1:]).var(1, unbiased=False) + 1e-8
             ).sqrt().mean((1, 2, 3)).repeat_interleave(g)
      h = torch.cat([h, std[:, None, None, None].expand(n, 1, *h.shape[2:])],
                    1)
    phi = h.flatten(1)
    out = self.fc(phi)[:, 0]
    if self.num_classes:
      out = out + (self.proj(y) * phi).sum(1)
    return out

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


class VAE(nn.Module):
  """Conv VAE (+ optional AR head), Bernoulli likelihood, 28x28x1."""

  def __init__(self, cfg):
    super().__init__()
    w = list(cfg.widths)
    self.latent = cfg.latent_dim
    self.base = 28 // 2**(len(w) - 1)
    enc = [nn.Conv2d(1, w[0], 3, padding=1)]
    for a, b in zip(w[:-1], w[1:]):
      enc += [nn.SiLU(), nn.Conv2d(a, b, 4, 2, 1)]
    self.enc = nn.Sequential(*enc, nn.SiLU(), nn.Flatten())
    self.enc_out = nn.Linear(w[-1] * self.base**2, 2 * cfg.latent_dim)
    self.dec_in = nn.Linear(cfg.latent_dim, w[-1] * self.base**2)
    dec = []
    for a, b in zip(w[::-1][:-1], w[::-1][1:]):
      dec += [nn.SiLU(), nn.ConvTranspose2d(a, b, 4, 2, 1)]
    self.dec = nn.Sequential(*dec, nn.SiLU())
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
        a = a + layer(F.silu(a))
      logits = self.out(F.silu(a))
    else:
      logits = self.out(h)
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction='none').sum(
        (1, 2, 3))
    kl = 0.5 * (logvar.exp() + mean**2 - 1 - logvar).sum(1)
    return (rec + kl).mean()

"""Spherical Fourier Neural Operator (Bonev et al. 2023) for 6-hourly global state prediction.

Follows the torch-harmonics reference design (``examples/models/sfno.py``): a pointwise encoder,
``num_layers`` SFNO blocks whose spectral convolutions act on spherical-harmonic coefficients, and a
pointwise decoder. The first block transforms down from the data grid to a coarser internal grid
(``scale_factor``), the last one transforms back up. Every spherical harmonic transform is built with
the same *explicit* ``lmax``/``mmax``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch_harmonics import InverseRealSHT, RealSHT

SHT_GRIDS = ("equiangular", "legendre-gauss")
NORMALIZATION_LAYERS = ("none", "instance_norm")


class _SpectralConvS2(nn.Module):
    """Driscoll-Healy spherical convolution: one complex weight per degree ``l``, shared over orders ``m``.

    A drop-in copy of ``torch_harmonics.examples.models._layers.SpectralConvS2`` (same parameters, so state
    dicts are interchangeable), used only if that module cannot be imported.
    """

    def __init__(
        self,
        forward_transform: nn.Module,
        inverse_transform: nn.Module,
        in_channels: int,
        out_channels: int,
        gain: float = 2.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.forward_transform = forward_transform
        self.inverse_transform = inverse_transform
        self.scale_residual = (forward_transform.nlat, forward_transform.nlon) != (
            inverse_transform.nlat,
            inverse_transform.nlon,
        )
        scale = math.sqrt(gain / in_channels)
        shape = (out_channels, in_channels, inverse_transform.lmax)
        self.weight = nn.Parameter(scale * torch.randn(*shape, dtype=torch.complex64))
        if bias:
            self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = x.dtype
        x = x.float()
        residual = x
        coeffs = self.forward_transform(x)
        if self.scale_residual:
            residual = self.inverse_transform(coeffs)
        x = self.inverse_transform(torch.einsum("...ilm,oil->...olm", coeffs, self.weight))
        if hasattr(self, "bias"):
            x = x + self.bias
        return x.type(dtype), residual


try:  # prefer torch-harmonics' own layer; the fallback above is parameter-compatible
    with warnings.catch_warnings():  # its module applies the deprecated torch.jit.script at import
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script", category=DeprecationWarning)
        from torch_harmonics.examples.models._layers import SpectralConvS2
except ImportError:  # pragma: no cover - torch-harmonics without the examples package
    SpectralConvS2 = _SpectralConvS2


def internal_shape(nlat: int, nlon: int, scale_factor: int) -> tuple[int, int]:
    """The internal (downsampled) grid shape, as in the reference SFNO (poles kept)."""
    return (nlat - 1) // scale_factor + 1, nlon // scale_factor


@dataclass
class SFNOConfig:
    """Hyper-parameters of :class:`SFNO`; ``lmax``/``mmax`` left ``None`` are resolved to explicit values.

    ``in_channels`` are the (normalised) state channels, ``forcing_channels`` extra input-only channels
    (e.g. cos zenith, orography). With ``residual_prediction`` the first ``in_channels`` outputs are the
    increment over the input state; any further outputs (``out_channels > in_channels``) are predicted
    directly. ``learn_skip`` makes the weight of that skip a learned per-channel scalar (starting at 1), so a
    channel with little memory of its own (a diagnostic one, like 2 m temperature driven by sun and cloud)
    can be predicted from the rest of the state instead of accumulating increments.
    """

    in_channels: int
    nlat: int
    nlon: int
    grid: str = "equiangular"
    grid_internal: str = "legendre-gauss"
    out_channels: int | None = None
    forcing_channels: int = 0
    embed_dim: int = 256
    num_layers: int = 4
    scale_factor: int = 1
    mlp_ratio: float = 2.0
    encoder_layers: int = 1
    lmax: int | None = None
    mmax: int | None = None
    normalization_layer: str = "none"
    residual_prediction: bool = True
    output_gain: float = 1.0
    bias: bool = False
    learn_skip: bool = False

    def __post_init__(self) -> None:
        for name in ("in_channels", "embed_dim", "num_layers", "scale_factor", "encoder_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SFNOConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.forcing_channels < 0:
            raise ValueError(f"SFNOConfig.forcing_channels must be >= 0, got {self.forcing_channels}")
        for name in ("grid", "grid_internal"):
            if getattr(self, name) not in SHT_GRIDS:
                raise ValueError(f"SFNOConfig.{name}='{getattr(self, name)}' is not one of {SHT_GRIDS}")
        if self.normalization_layer not in NORMALIZATION_LAYERS:
            raise ValueError(f"SFNOConfig.normalization_layer='{self.normalization_layer}' is not one of {NORMALIZATION_LAYERS}")
        if self.out_channels is None:
            self.out_channels = self.in_channels
        if self.out_channels < 1:
            raise ValueError(f"SFNOConfig.out_channels must be >= 1, got {self.out_channels}")
        if self.residual_prediction and self.out_channels < self.in_channels:
            raise ValueError(
                f"residual prediction needs out_channels ({self.out_channels}) >= in_channels "
                f"({self.in_channels}): the first in_channels outputs are increments of the input state"
            )
        h, w = internal_shape(self.nlat, self.nlon, self.scale_factor)
        if self.nlat < 3 or self.nlon < 4 or h < 3 or w < 4:
            raise ValueError(
                f"grid {self.nlat}x{self.nlon} with scale_factor={self.scale_factor} gives an internal grid "
                f"{h}x{w}; both grids need nlat >= 3 and nlon >= 4"
            )
        lmax_limit, mmax_limit = min(self.nlat, h), min(self.nlon // 2 + 1, w // 2 + 1)
        if self.lmax is None:
            self.lmax = min(h, w // 2)  # the reference's truncation: triangular, one mode below Nyquist
        if self.mmax is None:
            self.mmax = min(self.lmax, mmax_limit)
        self.lmax, self.mmax = int(self.lmax), int(self.mmax)
        where = f"{self.grid} {self.nlat}x{self.nlon} data grid / {self.grid_internal} {h}x{w} internal grid"
        if not 1 <= self.lmax <= lmax_limit:
            raise ValueError(
                f"lmax={self.lmax} is out of range for the {where} (scale_factor={self.scale_factor}): "
                f"need 1 <= lmax <= min(nlat, internal nlat) = {lmax_limit}"
            )
        if not 1 <= self.mmax <= mmax_limit:
            raise ValueError(
                f"mmax={self.mmax} is out of range for the {where} (scale_factor={self.scale_factor}): "
                f"need 1 <= mmax <= min(nlon//2+1, internal nlon//2+1) = {mmax_limit}"
            )

    @property
    def internal_shape(self) -> tuple[int, int]:
        return internal_shape(self.nlat, self.nlon, self.scale_factor)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SFNOConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SFNOConfig keys: {unknown}")
        return cls(**d)


def _pointwise_mlp(dims: list[int], bias: bool, gain: float = 1.0) -> nn.Sequential:
    """1x1 convolutions ``dims[0] -> ... -> dims[-1]`` with GELU between, He-style init as the reference."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        last = i == len(dims) - 2
        conv = nn.Conv2d(d_in, d_out, 1, bias=bias if last else True)
        nn.init.normal_(conv.weight, std=math.sqrt((gain if last else 2.0) / d_in))
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
        layers.append(conv)
        if not last:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class SFNOBlock(nn.Module):
    """Spectral convolution → norm → MLP (GELU) → + (resampled) input, as the reference SFNO block."""

    def __init__(
        self,
        forward_transform: nn.Module,
        inverse_transform: nn.Module,
        embed_dim: int,
        mlp_ratio: float = 2.0,
        normalization_layer: str = "none",
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.global_conv = SpectralConvS2(forward_transform, inverse_transform, embed_dim, embed_dim, gain=2.0, bias=bias)
        if normalization_layer == "instance_norm":
            self.norm: nn.Module = nn.InstanceNorm2d(embed_dim, eps=1e-6, affine=True)
        else:
            self.norm = nn.Identity()
        # outer skip is the identity, so the MLP output is initialised at half gain (as in the reference)
        self.mlp = _pointwise_mlp([embed_dim, int(embed_dim * mlp_ratio), embed_dim], bias=False, gain=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, residual = self.global_conv(x)
        return self.mlp(self.norm(x)) + residual


class SFNO(nn.Module):
    """Spherical Fourier Neural Operator mapping a normalised state (B, C, nlat, nlon) to the next one.

    ``forward(x, forcing)`` concatenates the optional forcing channels (B, F, nlat, nlon) to the input; they
    are never predicted. Build with ``SFNO(SFNOConfig(...))`` or ``SFNO(in_channels=..., nlat=..., ...)``.
    """

    config_class = SFNOConfig

    def __init__(self, config: SFNOConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = SFNOConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either an SFNOConfig or keyword arguments, not both")
        self.config = cfg = config
        h, w = cfg.internal_shape
        lmax, mmax = cfg.lmax, cfg.mmax

        self.trans_down = RealSHT(cfg.nlat, cfg.nlon, lmax=lmax, mmax=mmax, grid=cfg.grid).float()
        self.itrans_up = InverseRealSHT(cfg.nlat, cfg.nlon, lmax=lmax, mmax=mmax, grid=cfg.grid).float()
        self.trans = RealSHT(h, w, lmax=lmax, mmax=mmax, grid=cfg.grid_internal).float()
        self.itrans = InverseRealSHT(h, w, lmax=lmax, mmax=mmax, grid=cfg.grid_internal).float()
        for t in (self.trans_down, self.itrans_up, self.trans, self.itrans):
            if (t.lmax, t.mmax) != (lmax, mmax):  # torch-harmonics silently replaces falsy values
                raise ValueError(f"SHT built with lmax={t.lmax}, mmax={t.mmax}; expected {lmax}, {mmax}")

        n_in = cfg.in_channels + cfg.forcing_channels
        hidden = [int(cfg.embed_dim * cfg.mlp_ratio)] * (cfg.encoder_layers - 1)
        self.encoder = _pointwise_mlp([n_in, *hidden, cfg.embed_dim], bias=cfg.bias)
        self.blocks = nn.ModuleList(
            SFNOBlock(
                self.trans_down if i == 0 else self.trans,
                self.itrans_up if i == cfg.num_layers - 1 else self.itrans,
                cfg.embed_dim,
                mlp_ratio=cfg.mlp_ratio,
                normalization_layer=cfg.normalization_layer,
                bias=cfg.bias,
            )
            for i in range(cfg.num_layers)
        )
        self.decoder = _pointwise_mlp([cfg.embed_dim, *hidden, cfg.out_channels], bias=cfg.bias, gain=cfg.output_gain)
        if cfg.learn_skip:
            self.skip_weight = nn.Parameter(torch.ones(1, cfg.in_channels, 1, 1))

    @property
    def lmax(self) -> int:
        return self.config.lmax

    @property
    def mmax(self) -> int:
        return self.config.mmax

    def _check_inputs(self, x: torch.Tensor, forcing: torch.Tensor | None) -> None:
        cfg = self.config
        if x.dim() != 4 or x.shape[1:] != (cfg.in_channels, cfg.nlat, cfg.nlon):
            expected = f"(B, {cfg.in_channels}, {cfg.nlat}, {cfg.nlon})"
            raise ValueError(f"expected state of shape {expected}, got {tuple(x.shape)}")
        if cfg.forcing_channels == 0:
            if forcing is not None:
                raise ValueError("this SFNO takes no forcing channels, but forcing was given")
            return
        if forcing is None:
            raise ValueError(f"this SFNO needs {cfg.forcing_channels} forcing channel(s); forcing is None")
        expected = (x.shape[0], cfg.forcing_channels, cfg.nlat, cfg.nlon)
        if tuple(forcing.shape) != expected:
            raise ValueError(f"expected forcing of shape {expected}, got {tuple(forcing.shape)}")

    def forward(self, x: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the state one step (``dt_hours``) ahead from ``x`` and optional ``forcing``."""
        self._check_inputs(x, forcing)
        h = x if forcing is None else torch.cat([x, forcing.to(x.dtype)], dim=1)
        h = self.encoder(h)
        for block in self.blocks:
            h = block(h)
        out = self.decoder(h)
        if not self.config.residual_prediction:
            return out
        c = self.config.in_channels
        skip = x * self.skip_weight if self.config.learn_skip else x
        if out.shape[1] == c:
            return out + skip
        return torch.cat([out[:, :c] + skip, out[:, c:]], dim=1)

"""Adaptive Fourier Neural Operator diagnostic (Guibas et al. 2022) and the hourly irradiance head.

The design follows FourCastNet's AFNO and NVIDIA's SolarRadiationAFNO1H: patch embedding, a learnable position
embedding, AFNO blocks mixing tokens with a block-diagonal complex MLP in 2D Fourier space, and a linear head
that unpatchifies back to the grid. Grids whose size is not a multiple of the patch are padded (replicated in
latitude, periodic in longitude) and the output is cropped back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from carbonsync.physics.grid import Grid


@dataclass
class AFNOConfig:
    """Hyper-parameters of :class:`AFNODiagnostic`.

    The network input is, in this order: ``state_channels`` (the state in the middle of the accumulation hour),
    ``forcing_channels`` (e.g. cos zenith), four lat/lon encodings (sin/cos lat, sin/cos lon; built from
    the grid, if ``latlon_encoding``) and ``static_channels`` (e.g. orography, land-sea mask).
    ``max_clearness`` is used only by :class:`IrradianceDiagnostic`.

    Two options against the blocky look of a patch-wise linear head (0 = off, the original AFNO):
    ``smoothing_kernel`` (odd) adds a learned depthwise convolution over the output, started as a binomial
    smoother, that blends neighbouring patches (periodic in longitude); ``local_hidden`` adds a per-pixel
    MLP path (1x1 convolutions) from the inputs to the output, which has no patch structure at all.
    """

    state_channels: int
    nlat: int
    nlon: int
    grid: str = "equiangular"
    out_channels: int = 1
    forcing_channels: int = 1
    static_channels: int = 0
    latlon_encoding: bool = True
    patch_size: tuple[int, int] = (8, 8)
    embed_dim: int = 256
    num_layers: int = 8
    num_blocks: int = 8
    mlp_ratio: float = 4.0
    sparsity_threshold: float = 0.01
    hard_thresholding_fraction: float = 1.0
    max_clearness: float = 1.2
    smoothing_kernel: int = 0
    local_hidden: int = 0

    def __post_init__(self) -> None:
        p = self.patch_size
        self.patch_size = (int(p), int(p)) if isinstance(p, int | np.integer) else tuple(int(v) for v in p)
        if len(self.patch_size) != 2 or min(self.patch_size) < 1:
            raise ValueError(f"AFNOConfig.patch_size must be a positive int or pair, got {p}")
        Grid(self.nlat, self.nlon, self.grid)  # validates the grid
        for name in ("state_channels", "out_channels", "embed_dim", "num_layers", "num_blocks"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"AFNOConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.forcing_channels < 0 or self.static_channels < 0:
            raise ValueError("AFNOConfig.forcing_channels and static_channels must be >= 0")
        if self.embed_dim % self.num_blocks:
            raise ValueError(
                f"AFNOConfig.embed_dim={self.embed_dim} is not divisible by num_blocks={self.num_blocks}"
            )
        if not 0.0 < self.hard_thresholding_fraction <= 1.0:
            raise ValueError(
                "AFNOConfig.hard_thresholding_fraction must be in (0, 1], "
                f"got {self.hard_thresholding_fraction}"
            )
        if self.max_clearness <= 0:
            raise ValueError(f"AFNOConfig.max_clearness must be > 0, got {self.max_clearness}")
        if self.smoothing_kernel < 0 or (self.smoothing_kernel and self.smoothing_kernel % 2 == 0):
            raise ValueError(f"AFNOConfig.smoothing_kernel must be 0 (off) or odd, got {self.smoothing_kernel}")
        if self.local_hidden < 0:
            raise ValueError(f"AFNOConfig.local_hidden must be >= 0, got {self.local_hidden}")

    @property
    def in_channels(self) -> int:
        """Total network input channels (state + forcing + lat/lon encodings + static)."""
        return self.state_channels + self.forcing_channels + 4 * self.latlon_encoding + self.static_channels

    @property
    def padded_shape(self) -> tuple[int, int]:
        ph, pw = self.patch_size
        return math.ceil(self.nlat / ph) * ph, math.ceil(self.nlon / pw) * pw

    @property
    def token_shape(self) -> tuple[int, int]:
        (hp, wp), (ph, pw) = self.padded_shape, self.patch_size
        return hp // ph, wp // pw

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["patch_size"] = list(self.patch_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AFNOConfig:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown AFNOConfig keys: {unknown}")
        return cls(**d)


def binomial_kernel(size: int) -> torch.Tensor:
    """(size, size) normalised binomial smoothing kernel (size 1 is the identity)."""
    row = torch.tensor([math.comb(size - 1, i) for i in range(size)], dtype=torch.float32)
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


def patch_edge_ratio(field: torch.Tensor | np.ndarray, patch_size: tuple[int, int],
                     origin: tuple[int, int] = (0, 0)) -> float:
    """Mean absolute jump between neighbouring cells across patch edges over that inside patches.

    ``field`` is (..., nlat, nlon). About 1 for a field without patch structure; well above 1 when the
    patch grid shows ("AFNO patch edges are visible"). Longitude jumps include the periodic seam.
    """
    f = torch.as_tensor(field).detach().to(torch.float64)
    (ph, pw), (r0, c0) = patch_size, origin
    dlat = (f[..., 1:, :] - f[..., :-1, :]).abs()  # jump between rows i and i + 1
    dlon = (torch.roll(f, -1, dims=-1) - f).abs()  # between columns j and j + 1 (periodic)
    nlat, nlon = f.shape[-2:]
    edge_lat = ((torch.arange(1, nlat) - r0) % ph == 0)[:, None].expand(nlat - 1, nlon)
    edge_lon = ((torch.arange(1, nlon + 1) - c0) % pw == 0)[None, :].expand(nlat, nlon)
    across = torch.cat([dlat[..., edge_lat], dlon[..., edge_lon]], dim=-1)
    inside = torch.cat([dlat[..., ~edge_lat], dlon[..., ~edge_lon]], dim=-1)
    return float(across.mean() / inside.mean().clamp_min(1e-12))


def latlon_features(grid: Grid) -> torch.Tensor:
    """(4, nlat, nlon) float32: sin lat, cos lat, sin lon, cos lon."""
    lat = torch.as_tensor(np.deg2rad(grid.lat), dtype=torch.float64)[:, None].expand(grid.nlat, grid.nlon)
    lon = torch.as_tensor(np.deg2rad(grid.lon), dtype=torch.float64)[None, :].expand(grid.nlat, grid.nlon)
    return torch.stack([lat.sin(), lat.cos(), lon.sin(), lon.cos()]).float()


class AFNO2D(nn.Module):
    """AFNO token mixer on channels-last tokens (B, h, w, C): rfft2 → block-diagonal complex MLP → irfft2.

    Soft-shrinkage (``sparsity_threshold``) sparsifies the modes; hard thresholding keeps only the lowest
    ``hard_thresholding_fraction`` of the frequencies in each direction (both signs along ``h``).
    Returns the filtered tokens plus the input (the AFNO "bias" skip).
    """

    def __init__(
        self,
        hidden_size: int,
        num_blocks: int = 8,
        sparsity_threshold: float = 0.01,
        hard_thresholding_fraction: float = 1.0,
        hidden_size_factor: int = 1,
    ) -> None:
        super().__init__()
        if hidden_size % num_blocks:
            raise ValueError(f"hidden_size={hidden_size} is not divisible by num_blocks={num_blocks}")
        self.hidden_size, self.num_blocks = hidden_size, num_blocks
        self.block_size = bs = hidden_size // num_blocks
        self.sparsity_threshold = sparsity_threshold
        self.hard_thresholding_fraction = hard_thresholding_fraction
        scale = 0.02
        hs = bs * hidden_size_factor
        # index 0 / 1 of the leading dimension: real / imaginary parts
        self.w1 = nn.Parameter(scale * torch.randn(2, num_blocks, bs, hs))
        self.b1 = nn.Parameter(scale * torch.randn(2, num_blocks, hs))
        self.w2 = nn.Parameter(scale * torch.randn(2, num_blocks, hs, bs))
        self.b2 = nn.Parameter(scale * torch.randn(2, num_blocks, bs))

    def _mode_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        kept_h = max(1, int((h // 2 + 1) * self.hard_thresholding_fraction))
        kept_w = max(1, int((w // 2 + 1) * self.hard_thresholding_fraction))
        ky = torch.fft.fftfreq(h, 1.0 / h, device=device).abs()
        kx = torch.arange(w // 2 + 1, device=device)
        return ((ky[:, None] < kept_h) & (kx[None, :] < kept_w)).float()[None, :, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias, dtype = x, x.dtype
        x = x.float()
        b, h, w, c = x.shape
        x = torch.fft.rfft2(x, dim=(1, 2), norm="ortho").reshape(b, h, w // 2 + 1, self.num_blocks, -1)
        xr, xi = x.real, x.imag
        o1r = F.relu(
            torch.einsum("...bi,bio->...bo", xr, self.w1[0])
            - torch.einsum("...bi,bio->...bo", xi, self.w1[1])
            + self.b1[0]
        )
        o1i = F.relu(
            torch.einsum("...bi,bio->...bo", xi, self.w1[0])
            + torch.einsum("...bi,bio->...bo", xr, self.w1[1])
            + self.b1[1]
        )
        o2r = (
            torch.einsum("...bi,bio->...bo", o1r, self.w2[0])
            - torch.einsum("...bi,bio->...bo", o1i, self.w2[1])
            + self.b2[0]
        )
        o2i = (
            torch.einsum("...bi,bio->...bo", o1i, self.w2[0])
            + torch.einsum("...bi,bio->...bo", o1r, self.w2[1])
            + self.b2[1]
        )
        mask = self._mode_mask(h, w, x.device)
        o2 = F.softshrink(torch.stack([o2r, o2i], dim=-1), lambd=self.sparsity_threshold) * mask[..., None]
        x = torch.view_as_complex(o2.contiguous()).reshape(b, h, w // 2 + 1, c)
        x = torch.fft.irfft2(x, s=(h, w), dim=(1, 2), norm="ortho")
        return x.type(dtype) + bias


class AFNOBlock(nn.Module):
    """LayerNorm → AFNO mixer → residual; LayerNorm → MLP → residual (FourCastNet's double skip)."""

    def __init__(
        self,
        dim: int,
        num_blocks: int,
        mlp_ratio: float = 4.0,
        sparsity_threshold: float = 0.01,
        hard_thresholding_fraction: float = 1.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.filter = AFNO2D(dim, num_blocks, sparsity_threshold, hard_thresholding_fraction)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.filter(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class AFNODiagnostic(nn.Module):
    """AFNO mapping (state, forcing, static) on a (nlat, nlon) grid to ``out_channels`` fields on that grid.

    ``forward(x, forcing, static)`` with x (B, state_channels, nlat, nlon), forcing (B, forcing_channels,
    nlat, nlon), static (B or 1, static_channels, nlat, nlon); lat/lon encodings are added internally.
    """

    config_class = AFNOConfig

    def __init__(self, config: AFNOConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = AFNOConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either an AFNOConfig or keyword arguments, not both")
        self.config = cfg = config
        ph, pw = cfg.patch_size
        th, tw = cfg.token_shape
        if cfg.latlon_encoding:
            feats = latlon_features(Grid(cfg.nlat, cfg.nlon, cfg.grid))[None]
            self.register_buffer("latlon", feats, persistent=False)
        self.patch_embed = nn.Conv2d(cfg.in_channels, cfg.embed_dim, kernel_size=(ph, pw), stride=(ph, pw))
        self.pos_embed = nn.Parameter(torch.zeros(1, th, tw, cfg.embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            AFNOBlock(
                cfg.embed_dim,
                cfg.num_blocks,
                cfg.mlp_ratio,
                cfg.sparsity_threshold,
                cfg.hard_thresholding_fraction,
            )
            for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim)
        self.head = nn.Linear(cfg.embed_dim, cfg.out_channels * ph * pw, bias=False)
        self.apply(self._init_weights)
        self.smoother = None
        if cfg.smoothing_kernel:
            k = cfg.smoothing_kernel
            self.smoother = nn.Conv2d(cfg.out_channels, cfg.out_channels, k, groups=cfg.out_channels, bias=False)
            with torch.no_grad():
                self.smoother.weight.copy_(binomial_kernel(k).expand_as(self.smoother.weight))
        self.local = None
        if cfg.local_hidden:
            self.local = nn.Sequential(
                nn.Conv2d(cfg.in_channels, cfg.local_hidden, 1), nn.GELU(),
                nn.Conv2d(cfg.local_hidden, cfg.out_channels, 1),
            )
            nn.init.zeros_(self.local[-1].weight)  # starts as the plain AFNO
            nn.init.zeros_(self.local[-1].bias)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _assemble(
        self, x: torch.Tensor, forcing: torch.Tensor | None, static: torch.Tensor | None
    ) -> torch.Tensor:
        cfg = self.config
        b, grid = x.shape[0], (cfg.nlat, cfg.nlon)
        parts = []
        for name, t, n in (
            ("state", x, cfg.state_channels),
            ("forcing", forcing, cfg.forcing_channels),
            ("latlon", None, 0),
            ("static", static, cfg.static_channels),
        ):
            if name == "latlon":
                if cfg.latlon_encoding:
                    parts.append(self.latlon.to(x.dtype).expand(b, -1, -1, -1))
                continue
            if n == 0:
                if t is not None:
                    raise ValueError(f"this AFNO takes no {name} channels, but {name} was given")
                continue
            if t is None:
                raise ValueError(f"this AFNO needs {n} {name} channel(s); {name} is None")
            if t.dim() != 4 or t.shape[1] != n or tuple(t.shape[-2:]) != grid or t.shape[0] not in (1, b):
                raise ValueError(
                    f"expected {name} of shape (B, {n}, {cfg.nlat}, {cfg.nlon}), got {tuple(t.shape)}"
                )
            parts.append(t.to(x.dtype).expand(b, -1, -1, -1))
        return torch.cat(parts, dim=1)

    def forward(
        self, x: torch.Tensor, forcing: torch.Tensor | None = None, static: torch.Tensor | None = None
    ) -> torch.Tensor:
        cfg = self.config
        x = self._assemble(x, forcing, static)
        local = self.local(x) if self.local is not None else None
        (hp, wp), (ph, pw), (th, tw) = cfg.padded_shape, cfg.patch_size, cfg.token_shape
        top = (hp - cfg.nlat) // 2
        if wp > cfg.nlon:  # longitude is periodic
            x = F.pad(x, (0, wp - cfg.nlon, 0, 0), mode="circular")
        if hp > cfg.nlat:
            x = F.pad(x, (0, 0, top, hp - cfg.nlat - top), mode="replicate")
        tokens = self.patch_embed(x).permute(0, 2, 3, 1) + self.pos_embed  # (B, th, tw, D)
        for block in self.blocks:
            tokens = block(tokens)
        out = self.head(self.norm(tokens))  # (B, th, tw, out * ph * pw)
        out = out.reshape(-1, th, tw, ph, pw, cfg.out_channels).permute(0, 5, 1, 3, 2, 4)
        out = out.reshape(-1, cfg.out_channels, hp, wp)[:, :, top : top + cfg.nlat, : cfg.nlon]
        if self.smoother is not None:
            r = cfg.smoothing_kernel // 2
            out = F.pad(F.pad(out, (r, r, 0, 0), mode="circular"), (0, 0, r, r), mode="replicate")
            out = self.smoother(out)
        return out if local is None else out + local

    @property
    def patch_origin(self) -> tuple[int, int]:
        """(row, column) of the grid at which the first full patch starts (patch edges repeat from there)."""
        return (-((self.config.padded_shape[0] - self.config.nlat) // 2)) % self.config.patch_size[0], 0


class IrradianceDiagnostic(nn.Module):
    """Hourly surface solar radiation (ssrd) as clear-sky irradiance times an AFNO clearness index.

    ``forward(x, clear_sky, forcing, static)`` returns ``clear_sky * k`` with ``k = max_clearness *
    sigmoid(afno(...))`` in (0, max_clearness): non-negative everywhere and exactly zero wherever the
    clear-sky irradiance (B, 1, nlat, nlon; J m-2 accumulated over the hour) is zero, i.e. at night.

    Static inputs (orography, land-sea mask; ``config.static_channels`` of them) are kept in the model as
    the buffer ``static_fields`` (set with :meth:`set_static`, saved with the weights), so callers pass
    only the state and the sun; an explicit ``static`` argument overrides the buffer.
    """

    config_class = AFNOConfig

    def __init__(self, config: AFNOConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.afno = AFNODiagnostic(config, **kwargs)
        cfg = self.config
        if cfg.out_channels != 1:
            raise ValueError(f"IrradianceDiagnostic needs out_channels=1, got {cfg.out_channels}")
        if cfg.static_channels:
            self.register_buffer("static_fields", torch.zeros(1, cfg.static_channels, cfg.nlat, cfg.nlon))

    def set_static(self, static: torch.Tensor | np.ndarray) -> None:
        """Store the (normalised) static fields, shape (static_channels, nlat, nlon) or (1, ...)."""
        cfg = self.config
        t = torch.as_tensor(static, dtype=torch.float32)
        t = t[None] if t.dim() == 3 else t
        if not cfg.static_channels or tuple(t.shape) != (1, cfg.static_channels, cfg.nlat, cfg.nlon):
            raise ValueError(
                f"static fields of shape {tuple(t.shape)} do not fit this model "
                f"({cfg.static_channels} static channel(s) on {cfg.nlat}x{cfg.nlon})"
            )
        if not torch.isfinite(t).all():
            raise ValueError("static fields contain NaN or inf")
        self.static_fields.copy_(t)

    def _static(self, static: torch.Tensor | None) -> torch.Tensor | None:
        return self.static_fields if static is None and self.config.static_channels else static

    @property
    def config(self) -> AFNOConfig:
        return self.afno.config

    def clearness(
        self, x: torch.Tensor, forcing: torch.Tensor | None = None, static: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The clearness index k in (0, max_clearness), shape (B, 1, nlat, nlon)."""
        return self.config.max_clearness * torch.sigmoid(self.afno(x, forcing, self._static(static)))

    def forward(
        self,
        x: torch.Tensor,
        clear_sky: torch.Tensor,
        forcing: torch.Tensor | None = None,
        static: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cfg = self.config
        if clear_sky.dim() != 4 or tuple(clear_sky.shape[1:]) != (1, cfg.nlat, cfg.nlon):
            raise ValueError(
                f"expected clear_sky of shape (B, 1, {cfg.nlat}, {cfg.nlon}), got {tuple(clear_sky.shape)}"
            )
        return clear_sky.clamp_min(0.0) * self.clearness(x, forcing, static)

"""Where the diffusion runs: pixel space (the embedded default) or a diffusers VAE's latent space.

A codec turns uint8 frames into the backbone's latents and back, and gives the latent shape for an
output size. The pipeline never needs to know which kind it has.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def frames_to_tensor(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 [F, H, W, 3] (or [H, W, 3]) -> float [F, 3, height, width] in -1..1, resized if needed."""
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    x = torch.from_numpy(np.array(arr[..., :3], copy=True)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x


def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    """float [F, 3, H, W] in -1..1 -> uint8 [F, H, W, 3]."""
    x = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


class PixelCodec:
    """Pixels are the latents (scaled to -1..1): the embedded default is small enough for that."""

    kind = "pixel"
    channels = 3
    spatial_factor = 1
    temporal_factor = 1

    def latent_shape(self, height: int, width: int, frames: int = 1) -> tuple[int, ...]:
        return (3, height, width) if frames == 1 else (3, frames, height, width)

    def encode(self, frames: np.ndarray, height: int, width: int, device, dtype) -> torch.Tensor:
        """uint8 frames -> latents [1, C, H, W] (one frame) or [1, C, F, H, W]."""
        x = frames_to_tensor(frames, height, width).to(device=device, dtype=dtype)
        return x[:1] if x.shape[0] == 1 else x.permute(1, 0, 2, 3)[None]

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """latents [B, C, H, W] or [B, C, F, H, W] -> uint8 frames of the first item [F, H, W, 3]."""
        x = latents[0]
        x = x[None] if x.ndim == 3 else x.permute(1, 0, 2, 3)
        return tensor_to_frames(x)


class DiffusersVAECodec:
    """A diffusers autoencoder (AutoencoderDC for SANA, AutoencoderKL for FLUX, AutoencoderKLWan for Wan)."""

    kind = "vae"

    def __init__(self, vae: torch.nn.Module):
        self.vae = vae
        cfg = vae.config
        self.channels = int(getattr(cfg, "latent_channels", None) or getattr(cfg, "z_dim"))
        self.is_video = hasattr(cfg, "z_dim")  # AutoencoderKLWan's config names its width z_dim
        if hasattr(cfg, "scale_factor_spatial"):
            self.spatial_factor = int(cfg.scale_factor_spatial)
            self.temporal_factor = int(cfg.scale_factor_temporal)
        elif hasattr(cfg, "encoder_block_out_channels"):  # AutoencoderDC: one halving per extra stage
            self.spatial_factor = 2 ** (len(cfg.encoder_block_out_channels) - 1)
            self.temporal_factor = 1
        else:
            self.spatial_factor = 2 ** (len(cfg.block_out_channels) - 1)
            self.temporal_factor = 1
        self.scaling = float(getattr(cfg, "scaling_factor", 1.0) or 1.0)
        self.shift = float(getattr(cfg, "shift_factor", 0.0) or 0.0)

    def latent_shape(self, height: int, width: int, frames: int = 1) -> tuple[int, ...]:
        h, w = height // self.spatial_factor, width // self.spatial_factor
        if not self.is_video:
            return (self.channels, h, w)
        return (self.channels, (frames - 1) // self.temporal_factor + 1, h, w)

    def _normalise(self, z: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        cfg = self.vae.config
        if hasattr(cfg, "latents_mean") and cfg.latents_mean is not None:  # Wan keeps per-channel statistics
            shape = (1, -1) + (1,) * (z.ndim - 2)
            mean = torch.tensor(cfg.latents_mean, device=z.device, dtype=z.dtype).view(shape)
            std = torch.tensor(cfg.latents_std, device=z.device, dtype=z.dtype).view(shape)
            return z * std + mean if inverse else (z - mean) / std
        return z / self.scaling + self.shift if inverse else (z - self.shift) * self.scaling

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def keeps_float32(self, dtype: torch.dtype) -> bool:
        """An SD-style autoencoder (config `force_upcast`) overflows in float16: it stays in float32
        when the model runs in float16, as diffusers' pipelines keep it; the codec casts at its edges."""
        return dtype is torch.float16 and bool(getattr(self.vae.config, "force_upcast", False))

    @torch.no_grad()
    def encode(self, frames: np.ndarray, height: int, width: int, device, dtype) -> torch.Tensor:
        x = frames_to_tensor(frames, height, width).to(device=device, dtype=self.dtype)
        if self.is_video:
            x = x.permute(1, 0, 2, 3)[None]  # [1, 3, F, H, W]
        else:
            x = x[:1]
        out = self.vae.encode(x)
        z = out.latent_dist.mode() if hasattr(out, "latent_dist") else out.latent
        return self._normalise(z).to(dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        x = self.vae.decode(self._normalise(latents[:1].to(self.dtype), inverse=True)).sample[0]
        x = x[None] if x.ndim == 3 else x.permute(1, 0, 2, 3)
        return tensor_to_frames(x)

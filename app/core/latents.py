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
    """Pixels are the latents (scaled to -1..1): the embedded defaults are small enough for that.

    `temporal_factor=None`: a still-image codec ([1, 3, H, W] for one frame). An integer makes it a video
    codec laid out like Wan's causal VAE, without the learned part: latent frame 0 holds frame 0 alone,
    each later latent frame holds the next `temporal_factor` frames stacked along channels, so a clip of
    1 + 4k frames is 1 + k latent frames of 3 x 4 channels, and image-to-video's given first frame is a
    latent frame of its own (kept clean at timestep 0, as Wan2.2-TI2V does). Frame 0's slot is filled by
    repeating it; decoding averages the copies. Why by hand: no library codec packs raw frames this way,
    and a learned video VAE would cost the embedded model more than its whole DiT.
    """

    kind = "pixel"
    spatial_factor = 1

    def __init__(self, temporal_factor: int | None = None):
        if temporal_factor is not None and int(temporal_factor) < 1:
            raise ValueError(f"temporal_factor must be a positive integer, got {temporal_factor!r}")
        self.is_video = temporal_factor is not None
        self.temporal_factor = int(temporal_factor or 1)
        self.channels = 3 * self.temporal_factor

    def config(self) -> dict:
        """What model_index.json records of this codec (None: the still-image codec)."""
        return {"kind": "pixel", "temporal_factor": self.temporal_factor} if self.is_video else None

    def latent_frames(self, frames: int) -> int:
        return (frames - 1) // self.temporal_factor + 1

    def frames_for(self, latent_frames: int) -> int:
        return 1 + (latent_frames - 1) * self.temporal_factor

    def latent_shape(self, height: int, width: int, frames: int = 1) -> tuple[int, ...]:
        if self.is_video:
            return (self.channels, self.latent_frames(frames), height, width)
        return (3, height, width) if frames == 1 else (3, frames, height, width)

    def encode(self, frames: np.ndarray, height: int, width: int, device, dtype) -> torch.Tensor:
        """uint8 frames -> latents [1, C, H, W] (a still codec, one frame) or [1, C, F, H, W]."""
        x = frames_to_tensor(frames, height, width).to(device=device, dtype=dtype)  # [F, 3, H, W]
        if not self.is_video:
            return x[:1] if x.shape[0] == 1 else x.permute(1, 0, 2, 3)[None]
        f, tf = x.shape[0], self.temporal_factor
        usable = self.frames_for(self.latent_frames(f))  # a clip of another length loses its last frames
        first = x[:1].repeat(tf, 1, 1, 1).reshape(1, tf * 3, height, width)
        rest = x[1:usable].reshape(-1, tf * 3, height, width)
        return torch.cat([first, rest]).permute(1, 0, 2, 3)[None]  # [1, 3tf, L, H, W]

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """latents [B, C, H, W] or [B, C, F, H, W] -> uint8 frames of the first item [F, H, W, 3]."""
        x = latents[0]
        if not self.is_video:
            x = x[None] if x.ndim == 3 else x.permute(1, 0, 2, 3)
            return tensor_to_frames(x)
        tf = self.temporal_factor
        c, lf, h, w = x.shape
        x = x.permute(1, 0, 2, 3).reshape(lf, tf, 3, h, w)
        first = x[:1].mean(dim=1)
        return tensor_to_frames(torch.cat([first, x[1:].reshape(-1, 3, h, w)]))


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

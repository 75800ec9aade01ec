"""GIST descriptor (Oliva & Torralba, IJCV 2001), batched in torch: 512-d for 32x32 colour images.

This is the reference MATLAB implementation (``LMgist.m``, ``createGabor.m``, ``prefilt``, ``gistGabor`` of the
LabelMe toolbox, as used by the hashing literature for "512-d GIST" on CIFAR-10) written as batched FFTs. With
the defaults, one image gives ``4 scales x 8 orientations x 4 x 4 blocks = 512`` values.

Pipeline and every parameter
----------------------------
1. **Grey image**: the plain mean of the colour channels (``mean(img, 3)``, not luminance weights), in the
   0..255 range of the input (uint8 input is used as is; float input in [0, 1] is multiplied by 255, which does
   not matter: step 3 rescales).
2. **Resizing** (``image_size``, default 32): ``imresizecrop``: scale so that the shorter side equals
   ``image_size`` (bilinear, antialiased when shrinking), then crop the centre ``image_size x image_size``.
   32x32 CIFAR images are used unchanged (no resizing at all).
3. **Intensity range**: ``img - min``, then ``* 255 / max`` per image. A constant image (``max = 0``) stays all
   zeros (``LMgist`` divides 0 by 0 and returns NaN; we return the all-zero descriptor instead).
4. **Prefiltering** (``prefilt``, ``fc_prefilt = 4``): ``log(img + 1)``; symmetric (mirror, edge pixel
   repeated) padding by ``w = 5`` pixels on each side, then on the bottom/right up to an even square size
   ``n`` (42 for 32x32); a Gaussian transfer function ``gf(f) = exp(-|f|^2 / s1^2)``, ``s1 = fc_prefilt /
   sqrt(ln 2)`` with ``f`` in cycles per padded image (integer DFT frequencies); whitening ``out = img -
   ifft(fft(img) gf)``; local contrast normalisation ``out / (0.2 + sqrt(|ifft(fft(out^2) gf)|))``; crop the
   padding back off. All filtering is circular on the padded grid (that is why it is padded).
5. **Gabor bank** (``createGabor``, ``orientations = (8, 8, 8, 8)`` from the finest scale to the coarsest):
   transfer functions on the DFT grid of the padded image, ``n = image_size + 2 * boundary_extension`` (96)::

       G(f) = exp(-10 * 0.35 * (|f| / n / f0_s - 1)^2  -  2 * pi * (16 * o_s^2 / 32^2) * wrap(angle(f) + theta)^2)

   with ``f0_s = 0.3 / 1.85^s`` cycles per pixel (0.300, 0.162, 0.088, 0.047), ``theta = pi * j / o_s``
   (``j = 0 .. o_s - 1``), ``angle(f) = atan2(f_y, f_x)`` and ``wrap`` into ``[-pi, pi]``. Radial half-amplitude
   bandwidth ``|f/f0 - 1| = sqrt(ln 2 / 3.5) = 0.45`` (about 1.3 octaves); angular half-amplitude
   ``sqrt(ln 2 / (2 pi 16 o^2/32^2)) = 0.33`` rad (19 degrees) for 8 orientations spaced 22.5 degrees. Each
   filter covers one half-plane of frequencies (it is not conjugate-symmetric), so its response is complex and
   its modulus is the local energy envelope.
6. **Boundary handling of the filtering** (``gistGabor``): the prefiltered image is padded symmetrically by
   ``boundary_extension = 32`` pixels on every side (96x96), filtered circularly by FFT, and the modulus is
   cropped back to the central ``image_size x image_size``.
7. **Pooling** (``downN``, ``n_blocks = 4``): the mean of the modulus over a 4x4 grid of blocks with
   boundaries ``fix(linspace(0, image_size, n_blocks + 1))`` (8x8-pixel blocks for 32x32).
8. **Layout**: filter-major (scale, then orientation), then the blocks in MATLAB column-major order (row
   block fastest): value index ``((s * o + j) * n_blocks + block_col) * n_blocks + block_row``.

Departures: none in the arithmetic, except (a) the constant-image case above; (b) the DFT frequency grid uses
integer frequencies ``fftfreq(n) * n`` for any ``n`` (identical to MATLAB's ``fftshift(-n/2 : n/2-1)`` for the
even sizes the defaults give; MATLAB's grid is off by half a frequency for odd ``n``); (c) resizing uses torch's
bilinear interpolation (antialiased when shrinking), which differs slightly from MATLAB's ``imresize``; not
used at all for 32x32 input. The prefilter runs in float64, the Gabor stage in ``dtype`` (float32 by default,
as ``gistGabor`` uses single precision).

Speed: one forward FFT per image, then per filter an inverse FFT along the rows' axis, the crop to the central
columns, an inverse FFT along the other axis of those columns only, and the crop (a third less work than full
inverse FFTs); filters are processed one at a time over a batch of images, which keeps the working set in
cache (4-5x faster than one ``[batch, filters, n, n]`` tensor).

>>> import numpy as np
>>> g = gist(np.random.RandomState(0).randint(0, 256, (2, 32, 32, 3), dtype=np.uint8))
>>> tuple(g.shape)
(2, 512)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["gist", "gabor_transfer_functions", "prefilter", "gist_dimension", "to_grey", "GIST_DEFAULTS"]

#: The reference parameters (LMgist's, with the 32x32 image size of the hashing literature).
GIST_DEFAULTS = dict(image_size=32, orientations=(8, 8, 8, 8), n_blocks=4, fc_prefilt=4.0, boundary_extension=32)

ArrayLike = Union[np.ndarray, torch.Tensor]


def gist_dimension(orientations: Sequence[int] = (8, 8, 8, 8), n_blocks: int = 4) -> int:
    """Length of the descriptor: ``sum(orientations) * n_blocks^2`` (512 with the defaults)."""
    return int(sum(orientations)) * int(n_blocks) ** 2


def _freq_grid(n_rows: int, n_cols: int, dtype=torch.float64) -> Tuple[torch.Tensor, torch.Tensor]:
    """Integer DFT frequencies (cycles per image) in FFT order: ``(f_y [n_rows, 1], f_x [1, n_cols])``."""
    fy = torch.fft.fftfreq(n_rows, dtype=dtype) * n_rows
    fx = torch.fft.fftfreq(n_cols, dtype=dtype) * n_cols
    return fy[:, None], fx[None, :]


def gabor_transfer_functions(orientations: Sequence[int], size: Union[int, Tuple[int, int]],
                             dtype=torch.float64) -> torch.Tensor:
    """``createGabor``: the bank's transfer functions ``[sum(orientations), n_rows, n_cols]`` in FFT order.

    ``G = exp(-10 * 0.35 * (|f| / n_cols / f0 - 1)^2 - 2 * pi * (16 o^2 / 32^2) * wrap(angle(f) + theta)^2)``,
    ``f0 = 0.3 / 1.85^scale``, ``theta = pi j / o`` (see the module docstring).

    >>> gabor_transfer_functions((8, 8), 16).shape
    torch.Size([16, 16, 16])
    """
    n_rows, n_cols = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if n_rows <= 0 or n_cols <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    if len(orientations) == 0 or any(int(o) <= 0 for o in orientations):
        raise ValueError(f"orientations must be a non-empty list of positive integers, got {list(orientations)}")
    fy, fx = _freq_grid(n_rows, n_cols, dtype)
    fr = torch.sqrt(fx ** 2 + fy ** 2)
    t = torch.atan2(fy.expand(n_rows, n_cols), fx.expand(n_rows, n_cols))
    filters = []
    for scale, o in enumerate(orientations):
        o = int(o)
        f0 = 0.3 / 1.85 ** scale
        ang = 16.0 * o ** 2 / 32.0 ** 2
        for j in range(o):
            tr = t + math.pi / o * j
            tr = torch.where(tr < -math.pi, tr + 2 * math.pi, torch.where(tr > math.pi, tr - 2 * math.pi, tr))
            filters.append(torch.exp(-10 * 0.35 * (fr / n_cols / f0 - 1) ** 2 - 2 * ang * math.pi * tr ** 2))
    return torch.stack(filters)


def _symmetric_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """MATLAB ``padarray(..., 'symmetric')``: mirror including the edge pixel, any pad size (repeats as needed)."""
    h, w = x.shape[-2], x.shape[-1]
    rows = torch.arange(-top, h + bottom)
    cols = torch.arange(-left, w + right)

    def mirror(idx: torch.Tensor, n: int) -> torch.Tensor:
        period = 2 * n
        idx = torch.remainder(idx, period)
        return torch.where(idx < n, idx, period - 1 - idx)

    return x[..., mirror(rows, h)[:, None], mirror(cols, w)[None, :]]


def prefilter(images: torch.Tensor, fc: float = 4.0) -> torch.Tensor:
    """``prefilt``: log, whitening and local contrast normalisation of grey images ``[N, H, W]`` in 0..255.

    See step 4 of the module docstring. Works in the dtype of ``images`` (float64 recommended).
    """
    if images.ndim != 3:
        raise ValueError(f"prefilter expects grey images [N, H, W], got shape {tuple(images.shape)}")
    w = 5
    s1 = fc / math.sqrt(math.log(2))
    img = torch.log(images + 1)
    img = _symmetric_pad(img, w, w, w, w)
    sn, sm = img.shape[-2:]
    n = max(sn, sm)
    n = n + n % 2
    img = _symmetric_pad(img, 0, n - sn, 0, n - sm)
    fy, fx = _freq_grid(n, n, img.dtype)
    gf = torch.exp(-(fx ** 2 + fy ** 2) / s1 ** 2)
    gf_r = gf[:, : n // 2 + 1]                       # gf is even, so the filtering is real: use rfft
    out = img - torch.fft.irfft2(torch.fft.rfft2(img) * gf_r, s=(n, n))
    localstd = torch.sqrt(torch.abs(torch.fft.irfft2(torch.fft.rfft2(out ** 2) * gf_r, s=(n, n))))
    out = out / (0.2 + localstd)
    return out[:, w:sn - w, w:sm - w]


def _block_matrix(size: int, n_blocks: int, dtype) -> torch.Tensor:
    """``[n_blocks, size]`` averaging matrix over ``fix(linspace(0, size, n_blocks + 1))`` ranges (``downN``)."""
    edges = np.fix(np.linspace(0, size, n_blocks + 1)).astype(np.int64)
    m = torch.zeros(n_blocks, size, dtype=dtype)
    for b in range(n_blocks):
        lo, hi = int(edges[b]), int(edges[b + 1])
        if hi <= lo:
            raise ValueError(f"n_blocks={n_blocks} leaves an empty block on a {size}-pixel image")
        m[b, lo:hi] = 1.0 / (hi - lo)
    return m


def to_grey(images: ArrayLike, layout: str = "NHWC") -> torch.Tensor:
    """Images to grey float64 ``[N, H, W]`` in 0..255 (step 1).

    ``images``: uint8 (0..255) or float (values in [0, 1]) arrays, ``[N, H, W, C]`` (``layout="NHWC"``, as the
    readers return them), ``[N, C, H, W]`` (``layout="NCHW"``, as batches serve them) or grey ``[N, H, W]``;
    ``C`` is 1 or 3.
    """
    t = torch.as_tensor(images)
    if t.dtype == torch.uint8:
        t = t.to(torch.float64)
    elif t.is_floating_point():
        t = t.to(torch.float64) * 255.0
    else:
        raise ValueError(f"images must be uint8 or floating point, got dtype {t.dtype}")
    if t.ndim == 4:
        if layout not in ("NHWC", "NCHW"):
            raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
        channels = t.shape[-1] if layout == "NHWC" else t.shape[1]
        if channels not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels ({layout}), got shape {tuple(t.shape)}")
        t = t.mean(dim=-1) if layout == "NHWC" else t.mean(dim=1)
    elif t.ndim != 3:
        raise ValueError(f"images must be [N, H, W, C], [N, C, H, W] or [N, H, W]; got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] < 2 or t.shape[2] < 2:
        raise ValueError(f"images must hold at least one image of at least 2x2 pixels, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("images hold NaN or inf values")
    return t


def _resize_crop(grey: torch.Tensor, size: int) -> torch.Tensor:
    """``imresizecrop``: scale the shorter side to ``size`` (bilinear), crop the centre ``size x size``."""
    h, w = grey.shape[-2:]
    if (h, w) == (size, size):
        return grey
    scale = max(size / h, size / w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    out = F.interpolate(grey[:, None], size=(nh, nw), mode="bilinear", align_corners=False,
                        antialias=scale < 1)[:, 0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return out[:, top:top + size, left:left + size]


def gist(images: ArrayLike, image_size: int = 32, orientations: Sequence[int] = (8, 8, 8, 8), n_blocks: int = 4,
         fc_prefilt: float = 4.0, boundary_extension: int = 32, layout: str = "NHWC", batch_size: int = 128,
         dtype: torch.dtype = torch.float32, device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
    """GIST descriptors ``[N, sum(orientations) * n_blocks^2]`` (float32) of a batch of images.

    Parameters
    ----------
    images: ``[N, H, W, C]`` / ``[N, C, H, W]`` (see ``layout``) or ``[N, H, W]``; uint8 or float in [0, 1].
    image_size: side of the square the images are resized/cropped to (step 2; 32 = CIFAR's own size).
    orientations: orientations per scale, finest scale first (step 5).
    n_blocks: the spatial grid is ``n_blocks x n_blocks`` (step 7).
    fc_prefilt: prefilter cut-off in cycles per image (step 4).
    boundary_extension: symmetric padding before the Gabor filtering (step 6).
    layout: ``"NHWC"`` or ``"NCHW"`` for 4-d input.
    batch_size: images per FFT batch (memory: a few times ``batch_size * (image_size + 2 *
        boundary_extension)^2 * 8`` bytes in float32).
    dtype: precision of the Gabor stage (the prefilter always runs in float64).
    device: where to compute (default: CPU).

    Raises ``ValueError`` for malformed images or parameters.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 2:
        raise ValueError(f"image_size must be an integer >= 2, got {image_size!r}")
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or not 1 <= n_blocks <= image_size:
        raise ValueError(f"n_blocks must be an integer in [1, image_size], got {n_blocks!r}")
    if isinstance(boundary_extension, bool) or not isinstance(boundary_extension, int) or boundary_extension < 0:
        raise ValueError(f"boundary_extension must be a non-negative integer, got {boundary_extension!r}")
    if not (isinstance(fc_prefilt, (int, float)) and fc_prefilt > 0):
        raise ValueError(f"fc_prefilt must be a positive number, got {fc_prefilt!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    grey_all = to_grey(images, layout)
    device = torch.device(device) if device is not None else torch.device("cpu")
    n = image_size + 2 * boundary_extension
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    bank = gabor_transfer_functions(orientations, n).to(device=device, dtype=cdtype)         # [F, n, n]
    n_filters = bank.shape[0]
    pool = _block_matrix(image_size, n_blocks, dtype).to(device)                              # [b, S]
    be, s = boundary_extension, image_size
    outs = []
    for start in range(0, grey_all.shape[0], batch_size):
        grey = _resize_crop(grey_all[start:start + batch_size].to(device), image_size)
        # step 3: range 0..255 per image (a constant image stays zero)
        flat = grey.reshape(grey.shape[0], -1)
        grey = grey - flat.min(dim=1).values[:, None, None]
        top = grey.reshape(grey.shape[0], -1).max(dim=1).values
        grey = grey * torch.where(top > 0, 255.0 / torch.where(top > 0, top, torch.ones_like(top)),
                                  torch.zeros_like(top))[:, None, None]
        pre = prefilter(grey, fc_prefilt).to(dtype)                                           # [B, S, S]
        padded = _symmetric_pad(pre, be, be, be, be)                                           # [B, n, n]
        spec = torch.fft.fft2(padded)                                                          # [B, n, n]
        feats = []
        for f in range(n_filters):  # one filter at a time: 4-5x faster than one [B, F, n, n] tensor (cache)
            cols = torch.fft.ifft(spec * bank[f], dim=-1)[..., be:be + s]                      # [B, n, S]
            cols = cols.transpose(-1, -2).contiguous()                                         # [B, S(col), n]
            resp = torch.fft.ifft(cols, dim=-1)[..., be:be + s].abs()                          # [B, S(col), S(row)]
            # [B, block_col, block_row]: MATLAB's column-major block order once flattened
            feats.append((pool @ resp @ pool.T).reshape(resp.shape[0], n_blocks ** 2))
        outs.append(torch.cat(feats, dim=1).float().cpu())
    return torch.cat(outs, dim=0)

"""GIST descriptor: shape, an independent spatial-domain reference, invariances, bad input.

The references here are written from the MATLAB code (``LMgist.m``, ``createGabor.m``) with numpy's own
``meshgrid``/``fftshift``/``pad`` and explicit circular convolution sums, not with the FFT pipeline under test.
"""
import numpy as np
import pytest
import torch

from lightning_hash.features import gist, gist_dimension
from lightning_hash.features.gist import gabor_transfer_functions, prefilter, to_grey


def _matlab_gabor(orients, n):
    """createGabor.m, line by line."""
    params = [(.35, .3 / (1.85 ** i), 16 * o ** 2 / 32 ** 2, np.pi / o * j) for i, o in enumerate(orients)
              for j in range(o)]
    fx, fy = np.meshgrid(np.arange(-n / 2, n / 2), np.arange(-n / 2, n / 2))
    fr = np.fft.fftshift(np.sqrt(fx ** 2 + fy ** 2))
    t = np.fft.fftshift(np.angle(fx + 1j * fy))
    out = []
    for p in params:
        tr = t + p[3]
        tr = tr + 2 * np.pi * (tr < -np.pi) - 2 * np.pi * (tr > np.pi)
        out.append(np.exp(-10 * p[0] * (fr / n / p[1] - 1) ** 2 - 2 * p[2] * np.pi * tr ** 2))
    return np.stack(out)


def _circconv(img, kernel):
    """Circular convolution by its definition: out[y, x] = sum_{u,v} img[y-u, x-v] kernel[u, v]."""
    out = np.zeros(img.shape, dtype=np.result_type(img, kernel))
    for u in range(kernel.shape[0]):
        for v in range(kernel.shape[1]):
            out = out + kernel[u, v] * np.roll(img, (u, v), axis=(0, 1))
    return out


def _reference_prefilter(img, fc=4.0):
    w, s1 = 5, fc / np.sqrt(np.log(2))
    x = np.pad(np.log(img + 1), w, mode="symmetric")
    sn, sm = x.shape
    n = max(sn, sm) + max(sn, sm) % 2
    x = np.pad(x, ((0, n - sn), (0, n - sm)), mode="symmetric")
    fx, fy = np.meshgrid(np.arange(-n / 2, n / 2), np.arange(-n / 2, n / 2))
    k = np.real(np.fft.ifft2(np.fft.fftshift(np.exp(-(fx ** 2 + fy ** 2) / s1 ** 2))))
    out = x - _circconv(x, k)
    out = out / (0.2 + np.sqrt(np.abs(_circconv(out ** 2, k))))
    return out[w:sn - w, w:sm - w]


def _tiny_images(n=3, size=8, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_shape_dtype_and_dimension():
    g = gist(_tiny_images(5, 32))
    assert g.shape == (5, 512) and g.dtype == torch.float32 and torch.isfinite(g).all()
    assert gist_dimension() == 512 and gist_dimension((8, 8, 4), 4) == 320
    assert (g >= 0).all()                             # means of moduli


def test_gabor_bank_matches_create_gabor():
    for n in (16, 96):
        ours = gabor_transfer_functions((8, 8, 8, 8), n).numpy()
        np.testing.assert_allclose(ours, _matlab_gabor((8, 8, 8, 8), n), atol=1e-12)


def test_prefilter_matches_spatial_reference():
    img = np.random.RandomState(1).rand(12, 12) * 255
    ours = prefilter(torch.as_tensor(img)[None]).numpy()[0]
    np.testing.assert_allclose(ours, _reference_prefilter(img), atol=1e-9)


def test_gabor_stage_matches_direct_convolution():
    """Whole pipeline on 8x8 images, padding 4, 2x2 blocks, against explicit convolution and block loops."""
    orients, size, be, nb = (4, 2), 8, 4, 2
    images = _tiny_images(2, size, seed=3)
    ours = gist(images, image_size=size, orientations=orients, n_blocks=nb, boundary_extension=be,
                dtype=torch.float64).numpy()
    n = size + 2 * be
    bank = _matlab_gabor(orients, n)
    edges = np.fix(np.linspace(0, size, nb + 1)).astype(int)
    for i, im in enumerate(images):
        grey = im.astype(np.float64).mean(axis=2)
        grey = grey - grey.min()
        grey = grey * 255 / grey.max()
        padded = np.pad(_reference_prefilter(grey), be, mode="symmetric")
        expected = []
        for G in bank:
            resp = np.abs(_circconv(padded, np.fft.ifft2(G)))[be:be + size, be:be + size]
            for bc in range(nb):                      # MATLAB column-major: block row fastest
                for br in range(nb):
                    expected.append(resp[edges[br]:edges[br + 1], edges[bc]:edges[bc + 1]].mean())
        np.testing.assert_allclose(ours[i], expected, rtol=1e-7, atol=1e-10)


def test_invariances():
    rs = np.random.RandomState(0)
    imgs = rs.randint(0, 200, (2, 32, 32, 3)).astype(np.uint8)
    ref = gist(imgs, dtype=torch.float64)
    # affine intensity changes vanish in the 0..255 rescaling
    scaled = (imgs.astype(np.float64) * 0.5 + 40) / 255.0
    torch.testing.assert_close(gist(scaled, dtype=torch.float64), ref, atol=1e-6, rtol=1e-6)
    # grey = plain channel mean: channel order does not matter; NCHW gives the same
    torch.testing.assert_close(gist(imgs[..., ::-1].copy(), dtype=torch.float64), ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gist(imgs.transpose(0, 3, 1, 2).copy(), layout="NCHW", dtype=torch.float64), ref,
                               atol=1e-6, rtol=1e-6)
    # batching does not change anything
    torch.testing.assert_close(gist(imgs, batch_size=1, dtype=torch.float64), ref, atol=1e-9, rtol=1e-9)
    # a non-square image is centre-cropped (no resizing when the shorter side already equals image_size)
    tall = rs.randint(0, 256, (1, 40, 32, 3)).astype(np.uint8)
    torch.testing.assert_close(gist(tall), gist(tall[:, 4:36].copy()))


def test_transpose_swaps_orientations():
    """Transposing an image maps orientation theta to 3pi/2 - theta: filters 5, 6, 7 -> 7, 6, 5 of each scale,
    with the block grid transposed (exact on the square DFT grid up to the float32 output; the other orientations
    map to the opposite half-plane twin, which differs on the Nyquist row/column)."""
    imgs = _tiny_images(2, 32, seed=5)
    g = gist(imgs, dtype=torch.float64).reshape(2, 4, 8, 4, 4)              # [N, scale, orient, bcol, brow]
    gt = gist(imgs.transpose(0, 2, 1, 3).copy(), dtype=torch.float64).reshape(2, 4, 8, 4, 4)
    for j, jt in ((5, 7), (6, 6), (7, 5)):
        torch.testing.assert_close(gt[:, :, jt], g[:, :, j].transpose(-1, -2), atol=1e-7, rtol=1e-6)


def test_oriented_gratings_hit_the_right_filter():
    y, x = np.mgrid[0:32, 0:32]
    f = 0.162                                            # centre frequency of the second scale
    vertical_bars = 127.5 + 100 * np.cos(2 * np.pi * f * x)          # varies along x: frequency angle 0
    horizontal_bars = 127.5 + 100 * np.cos(2 * np.pi * f * y)        # frequency angle +-pi/2
    g = gist(np.stack([vertical_bars, horizontal_bars]).astype(np.uint8)[..., None].repeat(3, -1))
    energy = g.reshape(2, 4, 8, 16).mean(-1)
    assert np.unravel_index(int(energy[0].argmax()), (4, 8)) == (1, 0)
    assert np.unravel_index(int(energy[1].argmax()), (4, 8)) == (1, 4)


def test_constant_image_gives_zeros():
    g = gist(np.full((2, 32, 32, 3), 77, dtype=np.uint8))
    assert torch.equal(g, torch.zeros(2, 512))


@pytest.mark.parametrize("bad,kwargs,msg", [
    (np.zeros((2, 32, 32, 3, 1), np.uint8), {}, "images must be"),
    (np.zeros((2, 32, 32, 2), np.uint8), {}, "1 or 3 channels"),
    (np.zeros((2, 32, 32), np.int32), {}, "uint8 or floating"),
    (np.full((1, 32, 32), np.nan), {}, "NaN"),
    (np.zeros((0, 32, 32), np.uint8), {}, "at least one image"),
    (np.zeros((1, 32, 32, 3), np.uint8), {"layout": "HWC"}, "layout"),
    (np.zeros((1, 32, 32), np.uint8), {"image_size": 1}, "image_size"),
    (np.zeros((1, 32, 32), np.uint8), {"n_blocks": 33}, "n_blocks"),
    (np.zeros((1, 32, 32), np.uint8), {"orientations": (8, 0)}, "orientations"),
    (np.zeros((1, 32, 32), np.uint8), {"boundary_extension": -1}, "boundary_extension"),
    (np.zeros((1, 32, 32), np.uint8), {"dtype": torch.float16}, "dtype"),
])
def test_bad_input(bad, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        gist(bad, **kwargs)


def test_grey_conversion_scale():
    imgs = np.random.RandomState(0).randint(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    np.testing.assert_allclose(to_grey(imgs).numpy(), imgs.mean(axis=-1))
    np.testing.assert_allclose(to_grey(imgs / 255.0).numpy(), imgs.mean(axis=-1), atol=1e-9)


def test_cifar10_images_if_present():
    from datamodules import data_dir
    root = data_dir() / "cifar10"
    if not root.exists():
        pytest.skip(f"CIFAR-10 not found at {root} (set LIGHTNING_HASH_DATA to the shared data folder)")
    from datamodules.readers import read_cifar10
    images = read_cifar10(root).modalities["image"][:16]
    g = gist(images)
    assert g.shape == (16, 512) and torch.isfinite(g).all() and (g.std(dim=0) > 0).all()

"""Dataset-level DA: each op's exact effect, and the composer's counts, ratios, provenance, determinism, errors."""

import pytest
import torch

from gan import augment
from gan.augment import AUGMENTATIONS, check_da, compose, split_counts
from gan.imagetable import ImageSet


def real_set(n=10, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return ImageSet(images, ("real",) * n, ("none",) * n, tuple(range(100, 100 + n)))


def test_registry_names():
    assert set(AUGMENTATIONS) == {"contrast", "negpos", "hflip", "vflip", "generated"}


@pytest.mark.parametrize("name,expected", [
    ("negpos", lambda x: 255 - x),
    ("hflip", lambda x: x[..., ::-1]),
    ("vflip", lambda x: x[..., ::-1, :]),
])
def test_deterministic_ops_exact(name, expected):
    x = real_set().images
    out = AUGMENTATIONS[name](x, torch.Generator())
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out, torch.from_numpy(expected(x.numpy()).copy()))
    assert not torch.equal(out, x)


def drawn_factors(n, seed):
    """The factors `contrast` draws for n images from torch.Generator().manual_seed(seed)."""
    g = torch.Generator().manual_seed(seed)
    mag = augment.CONTRAST_LO + (augment.CONTRAST_HI - augment.CONTRAST_LO) * torch.rand(n, generator=g)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    return 1 + sign * mag


def contrast_by_hand(x, f):
    """round(f * x + (1 - f) * mean luma), clamped, for one uint8 image, in float64."""
    xf = x.double()
    grey = (0.299 * xf[0] + 0.587 * xf[1] + 0.114 * xf[2]).mean()
    return (f * xf + (1 - f) * grey).round().clamp(0, 255).to(torch.uint8)


def test_contrast_factor_never_one_and_blends_exactly_with_the_mean_grey():
    x = real_set(n=64).images
    out = AUGMENTATIONS["contrast"](x, torch.Generator().manual_seed(3))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    factors = drawn_factors(64, 3)  # the documented range, never ~1, both directions
    assert ((factors - 1).abs() >= augment.CONTRAST_LO).all()
    assert (factors < 1).any() and (factors > 1).any()
    import torchvision.transforms.v2.functional as TF
    for i in range(64):
        # float32 blend vs float64: an exact .5 tie may round the other way
        assert (out[i].int() - contrast_by_hand(x[i], float(factors[i])).int()).abs().max() <= 1
        # torchvision's uint8 path truncates instead of rounding: never more than one grey level above ours
        diff = out[i].int() - TF.adjust_contrast(x[i], float(factors[i])).int()
        assert diff.min() >= -1 and diff.max() <= 1
    mismatch = sum(int((out[i] != contrast_by_hand(x[i], float(factors[i]))).sum()) for i in range(64))
    assert mismatch <= 1e-3 * x.numel()
    # Lower contrast shrinks the spread of pixel values, higher contrast widens it.
    spread_in, spread_out = x.float().std(dim=(1, 2, 3)), out.float().std(dim=(1, 2, 3))
    lower = factors < 1
    assert (spread_out[lower] < spread_in[lower]).all()


def test_contrast_factor_one_is_the_identity_and_grey_images_stay_grey():
    x = real_set(n=8).images
    assert torch.equal(augment.adjust_contrast(x, 1.0), x)
    assert torch.equal(augment.adjust_contrast(x, torch.ones(8)), x)
    grey = torch.full((3, 3, 5, 5), 77, dtype=torch.uint8)
    for f in (0.0, 0.4, 1.6, 5.0):  # a grey pixel's luma is its value (weights sum to 1)
        assert torch.equal(augment.adjust_contrast(grey, f), grey)


@pytest.fixture(scope="module")
def faces():
    from gan import realsets

    return realsets.load_real("lfw-subset", 100, 32, seed=0, cache_dir=False).images


def mean_grey(x):
    x = x.double()
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).mean((1, 2))


# Lowering contrast never leaves 0..255; raising it clamps saturated pixels, which does move the mean of an image with
# highlights (1.6 grey levels for one of these faces at 1.1): "near 1" here is at most 1.02.
@pytest.mark.parametrize("factor", [0.6, 0.9, 0.99, 1.01, 1.02])
def test_contrast_near_one_keeps_the_mean_grey_level_of_real_images(faces, factor):
    shift = mean_grey(augment.adjust_contrast(faces, factor)) - mean_grey(faces)
    assert shift.abs().max() < 0.5
    assert shift.mean().abs() < 0.05  # rounding errors cancel; no systematic darkening
    import torchvision.transforms.v2.functional as TF
    tv = torch.stack([TF.adjust_contrast(img, factor) for img in faces])
    assert (mean_grey(tv) - mean_grey(faces)).mean() < -0.3  # what torchvision's uint8 truncation does


def test_contrast_output_is_uint8_clamped_not_wrapped():
    x = torch.tensor([0, 10, 128, 250, 255], dtype=torch.uint8).view(1, 1, 1, 5).expand(1, 3, 1, 5).contiguous()
    for f in (0.0, 0.5, 2.0, 10.0):
        out = augment.adjust_contrast(x, f)
        assert out.dtype == torch.uint8
        assert torch.equal(out[0], contrast_by_hand(x[0], f))
    high = augment.adjust_contrast(x, 10.0)[0, 0, 0]
    assert high[0] == 0 and high[-1] == 255  # saturates at both ends
    with pytest.raises(ValueError, match="uint8"):
        augment.adjust_contrast(x.float(), 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        augment.adjust_contrast(x, -0.5)


def test_generated_takes_supplied_samples():
    x = real_set(n=4).images
    samples = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    out = AUGMENTATIONS["generated"](x, torch.Generator(), samples=samples, sample_index=torch.tensor([5, 0, 2, 1]))
    assert torch.equal(out, samples[[5, 0, 2, 1]])
    with pytest.raises(ValueError, match="donor"):
        AUGMENTATIONS["generated"](x, torch.Generator())


@pytest.mark.parametrize("n_aug,ratio,expected", [
    (1000, 0.5, [500, 500]), (1000, 0.25, [250, 750]), (2000, 0.75, [1500, 500]),
    (7, 0.5, [4, 3]), (5, 0.3, [2, 3]), (10, 0.0, [0, 10]), (10, 1.0, [10, 0]),
])
def test_split_counts_exact(n_aug, ratio, expected):
    counts = [c for _, c in split_counts("hflip+contrast", n_aug, ratio)]
    assert counts == expected and sum(counts) == n_aug


def test_compose_counts_and_provenance():
    real = real_set(n=10)
    out = compose(real, "hflip+contrast", 10, pair_ratio=0.3, seed=1)
    assert len(out) == 20 and out.images.dtype == torch.uint8
    assert out.source == ("real",) * 10 + ("aug",) * 10
    assert out.da_type == ("none",) * 10 + ("hflip",) * 3 + ("contrast",) * 7
    assert torch.equal(out.images[:10], real.images)
    # Each hflip image is the flip of the real image its index names.
    pos = {idx: i for i, idx in enumerate(real.index)}
    for k in range(10, 13):
        assert torch.equal(out.images[k], real.images[pos[out.index[k]]].flip(-1))
    # Base images are drawn without replacement within an op.
    assert len(set(out.index[13:])) == 7


def test_compose_none_is_the_real_set():
    real = real_set()
    out = compose(real, "none", 0)
    assert torch.equal(out.images, real.images) and out.da_type == ("none",) * 10


def test_compose_is_deterministic_and_seeded():
    real = real_set(n=10)
    a = compose(real, "contrast+hflip", 14, seed=5, allow_repeats=True)
    b = compose(real, "contrast+hflip", 14, seed=5, allow_repeats=True)
    c = compose(real, "contrast+hflip", 14, seed=6, allow_repeats=True)
    assert torch.equal(a.images, b.images) and a.index == b.index
    assert not torch.equal(a.images, c.images)


def test_compose_cycles_past_n_real_for_contrast():
    real = real_set(n=10)
    out = compose(real, "contrast", 25, seed=0)
    idx = out.index[10:]
    # Every real image is used twice before any is used a third time.
    counts = {i: idx.count(i) for i in set(idx)}
    assert sorted(counts.values()) == [2] * 5 + [3] * 5


def test_compose_generated_distinct_samples():
    real = real_set(n=10)
    samples = torch.randint(0, 256, (30, 3, 8, 8), dtype=torch.uint8)
    out = compose(real, "generated+hflip", 20, seed=2, generated=samples)
    gen_rows = [i for i, t in enumerate(out.da_type) if t == "generated"]
    assert len(gen_rows) == 10 and len({out.index[i] for i in gen_rows}) == 10
    for i in gen_rows:
        assert torch.equal(out.images[i], samples[out.index[i]])
    with pytest.raises(ValueError, match="donor samples"):
        compose(real, "generated", 40, generated=samples)


@pytest.mark.parametrize("kwargs,match", [
    (dict(da="blur", n_aug=5), "unknown DA type 'blur'; allowed: none, contrast, negpos, hflip, vflip, generated"),
    (dict(da="hflip+vflip+negpos", n_aug=6), "at most two"),
    (dict(da="hflip+hflip", n_aug=6), "two different"),
    (dict(da="hflip", n_aug=-1), "non-negative"),
    (dict(da="hflip+contrast", n_aug=4, pair_ratio=1.5), r"pair_ratio must be in \[0, 1\]"),
    (dict(da="none", n_aug=4), "no DA type"),
    (dict(da="hflip", n_aug=0), "needs n_aug > 0"),
    (dict(da="hflip", n_aug=11), "at most n_real=10 distinct"),
    (dict(da="negpos+contrast", n_aug=30, pair_ratio=0.5), "at most n_real=10 distinct"),
])
def test_check_da_errors(kwargs, match):
    kwargs.setdefault("pair_ratio", 0.5)
    with pytest.raises(ValueError, match=match):
        check_da(kwargs.pop("da"), n_real=10, **kwargs)


def test_allow_repeats_lifts_the_distinct_limit():
    real = real_set(n=10)
    out = compose(real, "vflip", 15, allow_repeats=True)
    assert len(out) == 25


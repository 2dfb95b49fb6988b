"""gan.metrics: IS of known probability sets, the fast FID against torch-fidelity and closed forms, KID subsets,
precision/recall on equal-sized sets, the effnet extractor is the ImageNet classifier, the schema, the inception
weights lookup (local file, hub cache, offline error), and the real-set cache."""

import math
import subprocess
import sys
import urllib.error

import numpy as np
import pytest
import torch

from gan import metrics
from gan.metrics import reference
from gan.cache import image_hash
from gan.metrics import (EXTRACTORS, Extractor, FrechetReference, compute_metrics, equal_size, fid_statistics,
                         frechet_distance, get_extractor, inception_score, kernel_distance, precision_recall,
                         reference_stats)
from gan.metrics import schema


def photo_crops(n, size=64, seed=0):
    """n random size x size crops of skimage's colour photos, uint8 (n, 3, size, size)."""
    import skimage.data as d

    photos = [torch.from_numpy(np.ascontiguousarray(f())).permute(2, 0, 1)
              for f in (d.astronaut, d.chelsea, d.coffee, d.rocket)]
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        y = int(torch.randint(0, p.shape[1] - size + 1, (1,), generator=g))
        x = int(torch.randint(0, p.shape[2] - size + 1, (1,), generator=g))
        out.append(p[:, y:y + size, x:x + size])
    return torch.stack(out).contiguous()


def noisy(images, sigma, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (images.float() + sigma * torch.randn(images.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)


class CountingExtractor(Extractor):
    """A cheap deterministic stand-in: 10-way logits and 12-d features from pixel statistics; counts its calls."""

    def __init__(self, name="toy", weights_id="w0"):
        w = torch.Generator().manual_seed(0)
        proj = torch.randn(12, 10, generator=w)

        def forward(x):
            x = x.float() / 255
            pool = torch.cat([x.mean((2, 3)), x.std((2, 3)), x.amax((2, 3)), x.amin((2, 3))], 1)
            return pool @ proj, pool

        super().__init__(name, torch.device("cpu"), forward, weights_id)
        self.calls = 0

    def features(self, images, batch_size=64):
        self.calls += 1
        return super().features(images, batch_size)


@pytest.fixture(scope="module")
def effnet():
    return get_extractor("effnet")


# --- Inception Score on known probability sets ------------------------------------------------------------------------

def is_by_hand(p: np.ndarray) -> float:
    """IS = exp(mean_i KL(p(y|x_i) || p(y))), one split, straight from the definition."""
    q = p.mean(0)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1))))


def confident(labels, n_classes=1000, conf=0.99):
    p = np.full((len(labels), n_classes), (1 - conf) / (n_classes - 1))
    p[np.arange(len(labels)), labels] = conf
    return p


def test_is_identical_predictions_is_one():
    p = torch.softmax(torch.randn(1000, generator=torch.Generator().manual_seed(0)), 0).double()
    mean, std = inception_score(p.log().expand(50, -1).contiguous(), splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_is_k_equally_used_confident_classes_is_about_k():
    labels = np.repeat(np.arange(10), 10)  # 100 samples, 10 classes used equally, 0.99 confident
    p = confident(labels)
    mean, std = inception_score(torch.from_numpy(np.log(p)), splits=1)
    assert mean == pytest.approx(is_by_hand(p), rel=1e-9)
    assert 9.5 < mean <= 10 and std == 0.0
    # 10 splits of a larger set: each split sees ~all 10 classes
    labels = np.repeat(np.arange(10), 100)
    mean, _ = inception_score(torch.from_numpy(np.log(confident(labels))), splits=10)
    assert 8.5 < mean <= 10


def test_is_matches_definition_on_random_predictions_and_clamps_splits():
    logits = torch.randn(40, 1000, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3
    p = torch.softmax(logits, 1).numpy()
    assert inception_score(logits, splits=1)[0] == pytest.approx(is_by_hand(p), rel=1e-10)
    assert inception_score(logits, splits=1, seed=5)[0] == pytest.approx(is_by_hand(p), rel=1e-10)
    mean, std = inception_score(logits[:3], splits=10)  # clamped to 3 splits of one sample: each IS is 1
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)


def one_hot_logits(labels, n_classes=1000, margin=50.0):
    """Logits whose softmax is one-hot up to exp(-margin): p(y|x) puts all its mass on the sample's label."""
    logits = torch.zeros(len(labels), n_classes, dtype=torch.float64)
    logits[torch.arange(len(labels)), torch.as_tensor(labels)] = margin
    return logits


@pytest.mark.parametrize("k", [1, 2, 10, 1000])
def test_is_of_one_hot_posteriors_spread_uniformly_over_k_classes_is_k(k):
    # p(y) uniform over k classes, each p(y|x) one-hot: KL = log k for every sample, so IS = k exactly
    mean, std = inception_score(one_hot_logits(np.arange(5 * k) % k), splits=1)
    assert mean == pytest.approx(k, rel=1e-12) and std == 0.0


def test_is_of_a_non_uniform_mixture_of_one_hot_posteriors_is_exp_of_its_entropy():
    # classes used with weights w, each p(y|x) one-hot: KL(p(y|x) || p(y)) = -log w_y, so IS = exp(H(w))
    counts = np.array([50, 25, 15, 10])  # w = 0.5, 0.25, 0.15, 0.1 of 100 samples
    w = counts / counts.sum()
    mean, std = inception_score(one_hot_logits(np.repeat(np.arange(4), counts)), splits=1)
    assert mean == pytest.approx(np.exp(-(w * np.log(w)).sum()), rel=1e-12) and std == 0.0
    assert 3.0 < mean < 4.0  # below the 4 equally used classes would give


def test_is_of_all_samples_on_one_class_is_one():
    mean, std = inception_score(one_hot_logits(np.full(200, 7)), splits=4)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


# --- FID: the fast path against torch-fidelity, and closed forms -------------------------------------------------------

def correlated_features(n, dim=256, shift=0.0, seed=0):
    """Non-Gaussian, correlated, non-negative features (like pooled CNN activations), one fixed mixing matrix."""
    mixing = torch.randn(dim, dim, generator=torch.Generator().manual_seed(99)).abs() / dim ** 0.5
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, dim, generator=g) * 2 + shift) @ mixing + 0.1 * torch.randn(n, dim, generator=g)


@pytest.mark.parametrize("n_real,n_fake", [
    (600, 100),  # fewer fake samples than dimensions (n < D = 256): the n x n Gram matrix
    (600, 400),  # n > D: the D x D side
    (100, 400),  # a real set smaller than D: sigma_real has rank 99, the factor keeps 99 columns
    (100, 50),
])
@pytest.mark.parametrize("shift", [0.0, 0.3])  # same distribution (FID near its bias) and a distant one
def test_fast_fid_agrees_with_torch_fidelity(n_real, n_fake, shift):
    real, fake = correlated_features(n_real, seed=1), correlated_features(n_fake, shift=shift, seed=2)
    stats_real = fid_statistics(real)
    expected = frechet_distance(fid_statistics(fake), stats_real)  # torch-fidelity's fid_statistics_to_metric
    ref = FrechetReference.from_statistics(stats_real["mu"], stats_real["sigma"])
    assert ref.root.shape == (256, min(256, n_real - 1))
    assert ref.distance(fake) == pytest.approx(expected, rel=1e-4)
    assert ref.distance(fake.double()) == pytest.approx(ref.distance(fake), rel=1e-12)


def test_fast_fid_of_the_real_set_itself_is_zero():
    real = correlated_features(500, seed=1)
    stats = fid_statistics(real)
    assert abs(FrechetReference.from_statistics(stats["mu"], stats["sigma"]).distance(real)) < 1e-8


def exact_moments(n, mu, var, seed=0):
    """n samples (float64) whose sample mean is exactly ``mu`` and sample covariance exactly diag(``var``)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, len(mu), generator=g, dtype=torch.float64)
    z -= z.mean(0)
    chol = torch.linalg.cholesky(z.T @ z / (n - 1))
    z = torch.linalg.solve_triangular(chol, z.T, upper=False).T  # whitened: covariance exactly I
    return z * var.sqrt() + mu


def diagonal_gaussians(dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu1, mu2 = torch.randn(dim, generator=g, dtype=torch.float64), torch.randn(dim, generator=g, dtype=torch.float64)
    s1 = torch.rand(dim, generator=g, dtype=torch.float64) * 2 + 0.1
    s2 = torch.rand(dim, generator=g, dtype=torch.float64) * 2 + 0.1
    closed = float((mu1 - mu2).square().sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    return mu1, s1, mu2, s2, closed


def test_fid_of_diagonal_gaussians_matches_the_closed_form_at_the_statistics_level():
    # FID(N(mu1, diag s1), N(mu2, diag s2)) = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2))
    mu1, s1, mu2, s2, closed = diagonal_gaussians()
    fake = exact_moments(200, mu1, s1)
    stats = fid_statistics(fake)
    assert np.allclose(stats["mu"], mu1.numpy(), atol=1e-12) and np.allclose(stats["sigma"], np.diag(s1), atol=1e-12)
    ref = FrechetReference.from_statistics(mu2.numpy(), np.diag(s2.numpy()))
    assert ref.distance(fake) == pytest.approx(closed, rel=1e-9)
    assert frechet_distance(stats, {"mu": mu2.numpy(), "sigma": np.diag(s2.numpy())}) == pytest.approx(closed, rel=1e-9)


def test_fid_of_large_gaussian_samples_approaches_the_closed_form():
    mu1, s1, mu2, s2, closed = diagonal_gaussians(dim=8, seed=1)
    g = torch.Generator().manual_seed(2)
    real = torch.randn(20000, 8, generator=g, dtype=torch.float64) * s2.sqrt() + mu2
    fake = torch.randn(20000, 8, generator=g, dtype=torch.float64) * s1.sqrt() + mu1
    stats = fid_statistics(real)
    assert FrechetReference.from_statistics(stats["mu"], stats["sigma"]).distance(fake) == pytest.approx(closed,
                                                                                                         rel=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_fast_fid_on_the_gpu_matches_the_cpu():
    real, fake = correlated_features(600, seed=1), correlated_features(100, shift=0.3, seed=2)
    stats = fid_statistics(real)
    ref = FrechetReference.from_statistics(stats["mu"], stats["sigma"])
    assert ref.distance(fake, "cuda") == pytest.approx(ref.distance(fake, "cpu"), rel=1e-9)


# --- KID subsets and precision/recall on equal-sized sets --------------------------------------------------------------

def test_kid_subsets_are_at_most_half_of_each_set_so_kid_std_is_a_real_spread():
    from torch_fidelity.metric_kid import kid_features_to_metric

    g = torch.Generator().manual_seed(0)
    fake, real = torch.randn(40, 16, generator=g), torch.randn(40, 16, generator=g) + 0.5
    mean, std = kernel_distance(fake, real, seed=3)  # 100 subsets of 20 of each set
    # the old protocol, subsets as large as the sets: every subset is the whole set, the "spread" is rounding noise
    whole = kid_features_to_metric(fake, real, kid_subsets=100, kid_subset_size=40, rng_seed=3, verbose=False)
    assert whole["kernel_inception_distance_std"] < 1e-5 * std
    assert std > 0.05 * abs(mean)
    assert mean == pytest.approx(whole["kernel_inception_distance_mean"], rel=0.2)  # both estimate the same MMD^2
    assert kernel_distance(fake, real, seed=3) == (mean, std)  # seeded


def test_kid_std_is_missing_when_subsets_would_be_too_small():
    g = torch.Generator().manual_seed(0)
    fake, real = torch.randn(12, 16, generator=g), torch.randn(9, 16, generator=g)  # halves of 6 and 4
    mean, std = kernel_distance(fake, real)
    assert math.isfinite(mean) and math.isnan(std)


def two_modes(n_per_mode, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centre = torch.zeros(dim)
    centre[0] = 20.0  # the modes are 40 apart, their samples within a few units of the centre
    return torch.randn(n_per_mode, dim, generator=g) + centre, torch.randn(n_per_mode, dim, generator=g) - centre


def test_precision_recall_fakes_covering_one_of_two_real_modes():
    a, b = two_modes(300, seed=0)
    fake, _ = two_modes(300, seed=1)  # new samples of mode a only
    precision, recall = precision_recall(fake, torch.cat([a, b]), seed=0)  # real subsampled to 300
    assert precision > 0.85  # every fake lies in the real distribution
    assert 0.4 < recall < 0.55  # only mode a of the real distribution is covered (a swap gives ~0.5 / ~0.95)


def test_precision_recall_subsample_the_larger_set_to_the_smaller_ones_size():
    from torch_fidelity.metric_prc import prc_features_to_metric

    g = torch.Generator().manual_seed(0)
    fake, real = torch.randn(50, 8, generator=g), torch.randn(120, 8, generator=g)
    f, r = equal_size(fake, real, seed=4)
    assert f is fake and len(r) == 50
    keep = torch.randperm(120, generator=torch.Generator().manual_seed(4))[:50].sort().values  # the documented rule
    assert torch.equal(r, real[keep])
    out = prc_features_to_metric(fake, real[keep], prc_neighborhood=3, save_cpu_ram=False, verbose=False)
    assert precision_recall(fake, real, seed=4) == (out["precision"], out["recall"])
    f2, r2 = equal_size(real, fake, seed=4)  # the fake side is subsampled the same way when it is larger
    assert r2 is fake and torch.equal(f2, real[keep])


# --- the effnet extractor ---------------------------------------------------------------------------------------------

def test_effnet_is_the_imagenet_classifier(effnet):
    import skimage.data as d

    photos = [torch.from_numpy(np.ascontiguousarray(f())).permute(2, 0, 1) for f in (d.chelsea, d.coffee)]
    top = [effnet.features(p[None])["logits"][0].topk(3).indices.tolist() for p in photos]
    assert set(top[0]) & {281, 282, 283, 284, 285}, f"chelsea top-3 {top[0]} has no cat class"
    assert top[1][0] in (967, 968), f"coffee top-1 {top[1][0]} is not espresso/cup"


def test_effnet_features_shapes_and_batching(effnet):
    x = photo_crops(5, size=40)
    f = effnet.features(x, batch_size=2)
    assert f["logits"].shape == (5, 1000) and f["pool"].shape == (5, 1280)
    assert f["logits"].dtype == torch.float32 and f["pool"].device.type == "cpu"
    one = effnet.features(x[3:4])
    assert torch.allclose(one["pool"][0], f["pool"][3], atol=1e-4)
    with pytest.raises(ValueError, match="uint8"):
        effnet.features(x.float())
    assert get_extractor("effnet") is effnet  # loaded once per process


def test_effnet_fid_is_zero_on_itself_and_grows_with_noise(effnet, tmp_path):
    real = photo_crops(32)
    ref = reference_stats(real, effnet, cache_dir=tmp_path)
    self_scores = compute_metrics(real, effnet, ref, splits=4)
    assert set(self_scores) == {f"{k}_effnet" for k in ("is_mean", "is_std", "fid", "kid_mean", "kid_std",
                                                         "precision", "recall")}
    fids, kids = [], []
    for sigma in (15, 40, 90):
        s = compute_metrics(noisy(real, sigma), effnet, ref, splits=4)
        fids.append(s["fid_effnet"])
        kids.append(s["kid_mean_effnet"])
    assert abs(self_scores["fid_effnet"]) < 1e-3 * fids[0]
    assert fids[0] < fids[1] < fids[2], fids
    assert kids[0] < kids[1] < kids[2], kids  # KID works on 32 < 1000 samples (subset size clamped)
    assert self_scores["kid_mean_effnet"] < kids[0]
    assert self_scores["precision_effnet"] == 1.0 and self_scores["recall_effnet"] == 1.0


def test_import_stays_light():
    code = ("import sys, gan.metrics; heavy = {'torch_fidelity', 'timm'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- metrics glue with a cheap extractor ------------------------------------------------------------------------------

def test_compute_metrics_keys_and_reference_checks(tmp_path):
    ext = CountingExtractor()
    fake, real = photo_crops(12, size=16, seed=1), photo_crops(9, size=16, seed=2)
    assert set(compute_metrics(fake, ext)) == {"is_mean_toy", "is_std_toy"}
    ref = reference_stats(real, ext, cache_dir=tmp_path)
    scores = compute_metrics(fake, ext, ref, splits=3)
    assert len(scores) == 7 and all(math.isfinite(v) for k, v in scores.items() if k != "kid_std_toy")
    assert math.isnan(scores["kid_std_toy"])  # 12 vs 9 samples: KID subsets of half a set would be too small
    pool = ext.features(fake)["pool"]
    assert scores["fid_toy"] == pytest.approx(frechet_distance(fid_statistics(pool), {"mu": ref.mu,
                                                                                      "sigma": ref.sigma}), rel=1e-4)
    with pytest.raises(ValueError, match="reference statistics were made with"):
        compute_metrics(fake, CountingExtractor(weights_id="other"), ref)
    with pytest.raises(ValueError, match="at least 2"):
        compute_metrics(fake[:1], ext, ref)


def test_reference_stats_cache_reads_back_without_the_extractor(tmp_path, monkeypatch):
    ext = CountingExtractor()
    real = photo_crops(8, size=16)
    first = reference_stats(real, ext, cache_dir=tmp_path)
    assert ext.calls == 1 and len(first) == 8
    path = tmp_path / "stats" / f"{image_hash(real)}-toy.pt"
    assert path.is_file() and len(image_hash(real)) == 16
    assert reference_stats(real, ext, cache_dir=tmp_path) is first and ext.calls == 1  # in-process memo
    monkeypatch.setattr(reference, "_REAL_MEMO", {})  # a new process: reads the file
    again = reference_stats(real, ext, cache_dir=tmp_path)
    assert ext.calls == 1
    assert torch.equal(again.pool, first.pool) and np.array_equal(again.sigma, first.sigma)
    assert torch.equal(again.frechet.root, first.frechet.root)  # the FID factor is cached, not recomputed
    other = CountingExtractor(weights_id="w1")  # same name, other weights: the cached file is stale
    reference_stats(real, other, cache_dir=tmp_path)
    assert other.calls == 1
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "env"))
    reference_stats(real, ext, key="mykey")
    assert (tmp_path / "env" / "stats" / "mykey-toy.pt").is_file()


# --- inception weights ------------------------------------------------------------------------------------------------

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(metrics.inception_random_state_dict(seed=0), path)
    return path


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No env var, an empty torch hub dir, and a download that fails like a machine without network."""
    hub = tmp_path / "hub"
    monkeypatch.delenv("GANSWEEP_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    return hub


def test_inception_from_a_weights_file_gives_finite_scores(inception_weights, tmp_path):
    ext = get_extractor("inception", inception_weights=inception_weights)
    assert ext.name == "inception"
    real, fake = photo_crops(4, size=32, seed=1), photo_crops(4, size=32, seed=2)
    f = ext.features(fake)
    assert f["logits"].shape == (4, 1008) and f["pool"].shape == (4, 2048)
    scores = compute_metrics(fake, ext, reference_stats(real, ext, cache_dir=tmp_path), splits=2)
    assert {"is_mean_inception", "fid_inception", "kid_mean_inception", "recall_inception"} <= set(scores)
    assert all(math.isfinite(v) for k, v in scores.items() if k != "kid_std_inception")
    assert math.isnan(scores["kid_std_inception"])  # 4 vs 4 samples: no room for KID subsets


def test_inception_weights_from_env_and_hub_cache(inception_weights, offline, monkeypatch):
    expected = get_extractor("inception", inception_weights=inception_weights).weights_id
    monkeypatch.setenv("GANSWEEP_INCEPTION_WEIGHTS", str(inception_weights))
    assert metrics.inception_state_dict()["fc.weight"].shape == (1008, 2048)
    monkeypatch.delenv("GANSWEEP_INCEPTION_WEIGHTS")
    (offline / "checkpoints").mkdir(parents=True)
    (offline / "checkpoints" / INCEPTION_FILE).write_bytes(inception_weights.read_bytes())
    assert get_extractor("inception").weights_id == expected  # found in the hub cache, no download tried


def test_inception_offline_without_weights_says_how_to_get_them(offline):
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    with pytest.raises(metrics.InceptionWeightsMissing) as e:
        get_extractor("inception")
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError) and "\n" not in msg
    for part in (str(offline / "checkpoints" / INCEPTION_FILE), URL_INCEPTION_V3, "--inception-weights",
                 "GANSWEEP_INCEPTION_WEIGHTS", "--extractor effnet"):
        assert part in msg


class NotWeights:
    """An arbitrary pickled object: torch.load(weights_only=True) must refuse it."""


def test_inception_weights_are_loaded_safely_and_checked(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": NotWeights()}, evil)
    with pytest.raises(ValueError, match="cannot read Inception weights"):
        get_extractor("inception", inception_weights=evil)
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3)}, wrong)
    with pytest.raises(ValueError, match="not torch-fidelity's inception-v3-compat"):
        get_extractor("inception", inception_weights=wrong)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_extractor("inception", inception_weights=tmp_path / "missing.pth")


def test_unknown_extractor_lists_the_names():
    assert set(EXTRACTORS) == {"effnet", "inception"}
    with pytest.raises(ValueError, match="allowed: effnet, inception"):
        get_extractor("vgg")

"""features -> metric: pure functions over feature tensors, torch-fidelity's own maths underneath.

Each takes the features of the full sample set (`Extractor.features`); never call one on a training batch.

FID has two implementations. `frechet_distance` is torch-fidelity's (`fid_statistics_to_metric`: a general
eigen-decomposition of the D x D product sigma_fake @ sigma_real, about 2.6 s at D = 2048 on two CPU cores); it is
the reference the tests hold the fast path to. `FrechetReference` is the fast path every evaluation uses: the real
side is factored once per real set, and each evaluation needs one symmetric eigen-decomposition of at most
min(n_fake, rank(sigma_real)) rows (benchmarks/metric_throughput.py measures both in one process).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gan.metrics.schema import metric_key

KID_SUBSETS = 100  # torch-fidelity's default number of KID subsets
KID_SUBSET_SIZE = 1000  # torch-fidelity's default KID subset size; also at most half of each set (see kernel_distance)
KID_MIN_SUBSET_SIZE = 10  # below this subset size kid_std is NaN and kid_mean is one estimate on the full sets
PRC_NEIGHBORHOOD = 3  # torch-fidelity's default k of the k-NN balls in precision/recall (clamped to n - 1)


def inception_score(logits: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """IS = exp(mean_i KL(p(y|x_i) || p(y))) over ``splits`` chunks: (mean, std) across the chunks.

    ``logits`` (N, C) are unnormalised (softmax is applied inside; log-probabilities work as logits). ``splits`` is
    clamped to [1, N]. Samples are shuffled with ``seed`` before splitting, as torch-fidelity does.
    """
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    splits = max(1, min(int(splits), len(logits)))
    out = isc_features_to_metric(logits.cpu(), splits=splits, shuffle=True, rng_seed=seed)
    return out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD]


def fid_statistics(pool: torch.Tensor) -> dict[str, np.ndarray]:
    """FID statistics of pooled features: ``{'mu': (D,), 'sigma': (D, D)}``, float64."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    return fid_features_to_statistics(pool.cpu().double())


def frechet_distance(stats_fake: dict, stats_real: dict) -> float:
    """FID between two `fid_statistics` results, by torch-fidelity (the reference implementation; slow at large D).

    Evaluations use `FrechetReference.distance`, which agrees with this to 1e-4 relative (tests/test_metrics.py).
    """
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    return fid_statistics_to_metric(stats_fake, stats_real, verbose=False)[KEY_METRIC_FID]


@dataclass(frozen=True)
class FrechetReference:
    """The real side of FID, factored once per real set; `distance` scores generated features against it.

    FID = |mu_f - mu_r|^2 + tr(S_f) + tr(S_r) - 2 tr sqrt(S_r^1/2 S_f S_r^1/2). With ``root`` a D x k matrix such
    that root @ root.T = S_r (eigenvectors of S_r scaled by the square roots of its eigenvalues; k = the numerical
    rank of S_r), and X the centred generated features (n x D), let B = X @ root / sqrt(n - 1) (n x k). Then
    S_r^1/2 S_f S_r^1/2 has the same nonzero eigenvalues as B B^T (n x n) and as B^T B (k x k), both symmetric
    positive semi-definite, so

        tr sqrt(S_r^1/2 S_f S_r^1/2) = sum_i sqrt(eig_i(the smaller of B B^T and B^T B))

    which costs one ``eigvalsh`` of min(n, k) rows instead of a general D x D eigen-decomposition or square root.
    (``root`` is S_r^1/2 = V L^1/2 V^T without its last V^T, S_r = V L V^T: B B^T = X S_r X^T / (n - 1) = A A^T
    with A = X S_r^1/2 / sqrt(n - 1), and B^T B is A^T A = S_r^1/2 S_f S_r^1/2 seen in the basis V.)
    When there are fewer generated samples than dimensions (n < D) the n x n side is the small one; when the real
    set is smaller than D, k <= n_real - 1 keeps it small too.

    Numerics: float64 throughout. Eigenvalues of S_r at or below ``D * eps * max eigenvalue`` (numpy's matrix_rank
    tolerance) are rounding noise around an exact zero (a covariance of n_real < D samples has rank n_real - 1) and
    are dropped; tiny negative eigenvalues of the Gram matrix (rounding) are clipped to 0.
    Holds only tensors and a float (D x k + D float64 values; `torch.save` / ``weights_only=True`` read them back).
    """

    mu: torch.Tensor  # (D,) float64 mean of the real features
    root: torch.Tensor  # (D, k) float64, root @ root.T == sigma of the real features
    trace: float  # tr(sigma) of the real features

    @classmethod
    def from_statistics(cls, mu, sigma) -> "FrechetReference":
        """From a `fid_statistics` pair (numpy or torch); one symmetric eigen-decomposition of sigma (D x D)."""
        mu = torch.as_tensor(np.asarray(mu), dtype=torch.float64).clone()
        sigma = torch.as_tensor(np.asarray(sigma), dtype=torch.float64)
        if sigma.shape != (len(mu), len(mu)):
            raise ValueError(f"sigma must be ({len(mu)}, {len(mu)}) for a mean of {len(mu)} dims, "
                             f"got {tuple(sigma.shape)}")
        evals, evecs = torch.linalg.eigh((sigma + sigma.T) / 2)
        tol = max(float(evals[-1]), 0.0) * len(mu) * torch.finfo(torch.float64).eps
        keep = evals > tol
        root = (evecs[:, keep] * evals[keep].sqrt()).contiguous()
        return cls(mu, root, float(sigma.diagonal().sum()))

    def distance(self, pool_fake: torch.Tensor, device: torch.device | str | None = None) -> float:
        """FID of generated features ``pool_fake`` (n, D), n >= 2, against this real side.

        Runs on ``device`` (default: where ``pool_fake`` is), e.g. the extractor's GPU.
        """
        device = torch.device(device) if device is not None else pool_fake.device
        x = pool_fake.to(device=device, dtype=torch.float64)
        n = x.shape[0]
        if x.ndim != 2 or x.shape[1] != len(self.mu):
            raise ValueError(f"generated features must be (n, {len(self.mu)}), got {tuple(x.shape)}")
        if n < 2:
            raise ValueError(f"FID needs at least 2 generated samples, got {n}")
        mu_f = x.mean(0)
        x = x - mu_f
        diff = mu_f - self.mu.to(device)
        b = (x @ self.root.to(device)) / math.sqrt(n - 1)
        gram = b @ b.T if b.shape[0] <= b.shape[1] else b.T @ b
        tr_covmean = torch.linalg.eigvalsh(gram).clamp_(min=0).sqrt_().sum()
        tr_fake = x.square().sum() / (n - 1)
        return float(diff.dot(diff) + tr_fake + self.trace - 2 * tr_covmean)


def kernel_distance(pool_fake: torch.Tensor, pool_real: torch.Tensor, seed: int = 0) -> tuple[float, float]:
    """KID (cubic polynomial kernel MMD^2, unbiased; torch-fidelity): (mean, std) over `KID_SUBSETS` random subsets.

    Subset size m = min(1000, n_fake // 2, n_real // 2): at most half of each set, so the subsets differ from each
    other and ``std`` is the spread of the size-m estimate (torch-fidelity's clamp to the sample counts made every
    subset the whole set when both sets had n <= 1000 samples: a "spread" of rounding noise, ~1e-7). Subsets are
    drawn with numpy's ``RandomState(seed)``.

    When m < `KID_MIN_SUBSET_SIZE` (fewer than 20 samples on a side) the subsets are too small for their spread to
    mean anything: ``mean`` is then one unbiased estimate on min(n_fake, n_real) samples of each set (torch-fidelity
    with one subset) and ``std`` is NaN (missing, not zero).
    """
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(KID_SUBSET_SIZE, len(pool_fake) // 2, len(pool_real) // 2)
    if size >= KID_MIN_SUBSET_SIZE:
        out = kid_features_to_metric(pool_fake.cpu(), pool_real.cpu(), kid_subsets=KID_SUBSETS,
                                     kid_subset_size=size, rng_seed=seed, verbose=False)
        return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]
    size = min(len(pool_fake), len(pool_real))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples on each side, got {len(pool_fake)} and {len(pool_real)}")
    out = kid_features_to_metric(pool_fake.cpu(), pool_real.cpu(), kid_subsets=1, kid_subset_size=size,
                                 rng_seed=seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], float("nan")


def equal_size(pool_fake: torch.Tensor, pool_real: torch.Tensor, seed: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets cut to n = min(n_fake, n_real) rows: the larger keeps rows
    ``torch.randperm(N, generator=torch.Generator().manual_seed(seed))[:n]`` (in their original order); the
    smaller is returned as it is."""
    n = min(len(pool_fake), len(pool_real))

    def cut(x):
        if len(x) == n:
            return x
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(int(seed)))[:n].sort().values
        return x[keep]

    return cut(pool_fake), cut(pool_real)


def precision_recall(pool_fake: torch.Tensor, pool_real: torch.Tensor, seed: int = 0) -> tuple[float, float]:
    """Improved precision/recall (Kynkaanniemi et al. 2019; torch-fidelity) on equal-sized sets.

    A k-NN ball's radius shrinks as its set grows, so unequal sets bias the two numbers: the larger set is
    subsampled to the smaller one's size first (`equal_size`, seeded by ``seed``). k = 3, clamped to n - 1.
    precision = share of generated samples inside some real sample's ball (fidelity); recall = share of real samples
    inside some generated sample's ball (coverage).
    """
    from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    pool_fake, pool_real = equal_size(pool_fake, pool_real, seed)
    k = min(PRC_NEIGHBORHOOD, len(pool_fake) - 1)
    out = prc_features_to_metric(pool_fake.cpu().float(), pool_real.cpu().float(), prc_neighborhood=k,
                                 save_cpu_ram=False, verbose=False)
    return out[KEY_METRIC_PRECISION], out[KEY_METRIC_RECALL]


def metrics_from_features(features: dict, extractor: str, reference=None, *, splits: int = 10,
                          seed: int = 0, device: torch.device | str | None = None) -> dict[str, float]:
    """All metrics from one set of generated-image features (`Extractor.features`); keys end in ``_<extractor>``.

    Always ``is_mean``/``is_std``; with ``reference`` (a `RealStats`) also ``fid``, ``kid_mean``, ``kid_std``
    (NaN for small sets, see `kernel_distance`), ``precision``, ``recall``. (A reference's leakage probe reads the
    images, not features: `gan.metrics.compute_metrics` adds its keys.) When the reference carries a memorisation probe
    (``reference.memorisation``), also ``memorisation``. ``seed`` drives the IS shuffle, the KID subsets and the
    precision/recall subsample.
    FID runs on ``device`` (default: the CPU).
    """
    out = {}
    out["is_mean"], out["is_std"] = inception_score(features["logits"], splits=splits, seed=seed)
    if reference is not None:
        if reference.extractor != extractor:
            raise ValueError(f"reference statistics were made with {reference.extractor!r}, not {extractor!r}")
        pool = features["pool"]
        if len(pool) < 2:
            raise ValueError(f"FID/KID/precision/recall need at least 2 generated images, got {len(pool)}")
        out["fid"] = reference.frechet.distance(pool, device)
        out["kid_mean"], out["kid_std"] = kernel_distance(pool, reference.pool, seed=seed)
        out["precision"], out["recall"] = precision_recall(pool, reference.pool, seed=seed)
        memo = getattr(reference, "memorisation", None)
        if memo is not None:
            if memo.extractor != extractor:
                raise ValueError(f"the memorisation probe holds {memo.extractor!r} features, not {extractor!r}")
            out.update(memo.score(pool))
    return {metric_key(k, extractor): float(v) for k, v in out.items()}

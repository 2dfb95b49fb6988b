"""Leakage of an augmentation into the generator: how many generated samples look transformed.

The published study saw negpos and vflip "leak" by eye (wrong colours, upside-down faces). Here a probe measures it.
For each appearance-changing DA type of `gan.metrics.schema.LEAKAGE_DA` (vflip, negpos, contrast, and hflip as the
control: a mirrored face or dog is still a natural image, so its probe should stay near chance), a linear probe is
trained on the real set to tell original images from the same images transformed by that DA op
(`gan.augment.AUGMENTATIONS`); applied to the generated samples, leakage = the share it calls transformed, with a
95% Wilson interval (scipy's ``binomtest(k, n).proportion_ci(method="wilson")``).

The probe
    Features: the extractor's pooled features (the ones FID uses), so scoring a trial's samples reuses the features
    its evaluation already computed; no second extractor pass. Training set: the n real images (label 0) and the
    same n images transformed (label 1), each op called with ``torch.Generator().manual_seed(seed)``, fresh per DA
    type (only contrast draws from it). Classifier: scikit-learn's StandardScaler then L2 LogisticRegression (lbfgs),
    its C chosen from `C_GRID` by log-loss under `FOLDS`-fold cross-validation grouped by image (an image and its
    transform are always in the same fold, so the probe is judged on images it never saw in either form); refitted
    on all 2n with that C. A sample is "transformed" when the probe's probability is above 0.5.

    The held-out (cross-validated) rates on the real images are kept with the probe: ``tpr`` (transformed real images
    called transformed) and ``fpr`` (original real images called transformed). A generator that never shows the
    transform scores near ``fpr``, one that always shows it near ``tpr``; the hflip control and a probe with tpr
    near fpr can tell nothing. Read leakage against the `none` arm of the same seed (the report's paired deltas):
    samples of a GAN trained without DA give the probe's false-positive rate on generated images, which can differ
    from ``fpr`` on real ones.

What ships: `LeakageProbe` holds plain tensors and numbers (per DA type: scaler mean and scale, coefficients,
intercept), about 3 x 4 x D float64 values (~120 KB for effnet); it pickles small, and `to_dict` goes through
``torch.save`` / ``torch.load(weights_only=True)``. It is fitted once per real set and extractor (`leakage_probe`,
cached on disk next to the reference statistics) and rides to every trial on the `RealStats`
(`with_leakage`), where `gan.metrics.compute_metrics` scores it on the evaluation's own features.

scikit-learn and scipy are imported when a probe is fitted or scored, not on import.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from gan.augment import AUGMENTATIONS
from gan.cache import cache_root, image_hash, read_cached, write_cached
from gan.metrics.extractors import Extractor, get_extractor
from gan.metrics.reference import RealStats
from gan.metrics.schema import LEAKAGE_DA

C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # inverse L2 strengths tried (on standardised features)
FOLDS = 5  # cross-validation folds (grouped by image) for choosing C and for the held-out rates
CONFIDENCE = 0.95  # Wilson interval level

assert set(LEAKAGE_DA) <= set(AUGMENTATIONS), "gan.metrics.schema.LEAKAGE_DA must name DA ops of gan.augment"


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion k/n (scipy)."""
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True, eq=False)
class LeakageProbe:
    """One fitted linear probe per DA type, as plain tensors (row t of each tensor belongs to ``da[t]``).

    ``transformed(pool)`` says which samples each probe calls transformed:
    ``((pool - mean[t]) / scale[t]) @ coef[t] + intercept[t] > 0``.
    """

    extractor: str  # the extractor whose pooled features the probe reads
    weights_id: str  # that extractor's weights fingerprint
    da: tuple[str, ...]  # the DA types, in row order
    mean: torch.Tensor  # (T, D) float64 StandardScaler mean_ per DA type
    scale: torch.Tensor  # (T, D) float64 StandardScaler scale_ per DA type
    coef: torch.Tensor  # (T, D) float64 LogisticRegression coef_ (on standardised features)
    intercept: torch.Tensor  # (T,) float64 LogisticRegression intercept_
    c: tuple[float, ...]  # the C chosen by cross-validation, per DA type
    tpr: tuple[float, ...]  # held-out share of transformed real images called transformed, per DA type
    fpr: tuple[float, ...]  # held-out share of original real images called transformed, per DA type
    n_real: int  # real images the probe was trained on (each also in transformed form)
    seed: int  # seed of the DA ops' generator

    def transformed(self, pool: torch.Tensor) -> torch.Tensor:
        """(T, N) bool: which of the N feature rows each DA type's probe calls transformed."""
        x = pool.detach().to("cpu", torch.float64)
        if x.ndim != 2 or x.shape[1] != self.coef.shape[1]:
            raise ValueError(f"the probe reads ({self.coef.shape[1]},)-d {self.extractor} features, "
                             f"got {tuple(x.shape)}")
        w = self.coef / self.scale  # (T, D): the scaler folded into the weights, no (T, N, D) intermediate
        b = self.intercept - (self.mean * w).sum(1)
        return (x @ w.T + b).T > 0

    def score(self, pool: torch.Tensor) -> dict[str, float]:
        """Leakage of every DA type on generated features ``pool`` (N, D): ``{'leakage_vflip': share,
        'leakage_vflip_ci_lo': ..., 'leakage_vflip_ci_hi': ..., ...}`` (metric names of `gan.metrics.schema`,
        without the extractor suffix `gan.metrics.metrics_from_features` adds)."""
        calls = self.transformed(pool)
        n = calls.shape[1]
        if n == 0:
            raise ValueError("no generated samples to score")
        out = {}
        for da, row in zip(self.da, calls):
            k = int(row.sum())
            out[f"leakage_{da}"] = k / n
            out[f"leakage_{da}_ci_lo"], out[f"leakage_{da}_ci_hi"] = wilson_interval(k, n)
        return out

    def to_dict(self) -> dict:
        """Tensors, strings, numbers, lists: what ``torch.load(weights_only=True)`` reads back."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "LeakageProbe":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields})


def _fit_one(x: np.ndarray, y: np.ndarray, groups: np.ndarray):
    """C by grouped cross-validation (log-loss), the held-out calls at that C, and the refit on everything."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = list(GroupKFold(n_splits=min(FOLDS, len(np.unique(groups)))).split(x, y, groups))
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    search = GridSearchCV(pipe, {"logisticregression__C": list(C_GRID)}, scoring="neg_log_loss", cv=folds,
                          refit=True, n_jobs=1)
    search.fit(x, y)
    best = search.best_estimator_
    heldout = cross_val_predict(best, x, y, cv=folds, method="predict_proba", n_jobs=1)[:, 1] > 0.5
    scaler, logreg = best.named_steps["standardscaler"], best.named_steps["logisticregression"]
    return scaler, logreg, float(heldout[y == 1].mean()), float(heldout[y == 0].mean())


def fit_probe(real_uint8: torch.Tensor, extractor: Extractor | str, *, real_pool: torch.Tensor | None = None,
              da: tuple[str, ...] = LEAKAGE_DA, seed: int = 0, batch_size: int = 64) -> LeakageProbe:
    """Fit one probe per DA type on the real images ``real_uint8`` (n, 3, H, W), n >= `FOLDS`.

    ``real_pool``: the real images' pooled features if already computed (`RealStats.pool`), so only the
    transformed images go through the extractor (n images per DA type).
    """
    if isinstance(extractor, str):
        extractor = get_extractor(extractor)
    unknown = [d for d in da if d not in LEAKAGE_DA]
    if unknown:
        raise ValueError(f"no leakage probe for DA {', '.join(unknown)}; allowed: {', '.join(LEAKAGE_DA)}")
    n = len(real_uint8)
    if n < FOLDS:
        raise ValueError(f"a leakage probe needs at least {FOLDS} real images, got {n}")
    if real_pool is None:
        real_pool = extractor.features(real_uint8, batch_size)["pool"]
    if len(real_pool) != n:
        raise ValueError(f"real_pool has {len(real_pool)} rows for {n} images")
    x0 = real_pool.double().numpy()
    y = np.r_[np.zeros(n), np.ones(n)].astype(int)
    groups = np.r_[np.arange(n), np.arange(n)]
    rows = []
    for name in da:
        moved = AUGMENTATIONS[name](real_uint8, torch.Generator().manual_seed(int(seed)))
        x1 = extractor.features(moved, batch_size)["pool"].double().numpy()
        rows.append(_fit_one(np.concatenate([x0, x1]), y, groups))

    def stack(values):
        return torch.from_numpy(np.stack(values).astype(np.float64))

    return LeakageProbe(
        extractor=extractor.name, weights_id=extractor.weights_id, da=tuple(da),
        mean=stack([s.mean_ for s, *_ in rows]), scale=stack([s.scale_ for s, *_ in rows]),
        coef=stack([lr.coef_[0] for _, lr, *_ in rows]), intercept=stack([lr.intercept_[0] for _, lr, *_ in rows]),
        c=tuple(float(lr.C) for _, lr, *_ in rows), tpr=tuple(r[2] for r in rows), fpr=tuple(r[3] for r in rows),
        n_real=n, seed=int(seed))


_PROBE_MEMO: dict[tuple, LeakageProbe] = {}


def leakage_probe(real_uint8: torch.Tensor, extractor: Extractor | str, *, reference: RealStats | None = None,
                  cache_dir=None, key: str | None = None, seed: int = 0, batch_size: int = 64) -> LeakageProbe:
    """`fit_probe` once per (dataset key, extractor weights, seed): memoised in-process and cached on disk at
    ``<cache root>/leakage/<key>-<extractor>-seed<seed>.pt`` (written atomically, read with ``weights_only=True``).

    ``reference``: the real set's `RealStats`, whose pooled features (and key) are reused.
    """
    if isinstance(extractor, str):
        extractor = get_extractor(extractor)
    key = key or (reference.key if reference is not None else image_hash(real_uint8))
    memo_key = (key, extractor.name, extractor.weights_id, int(seed))
    if memo_key in _PROBE_MEMO:
        return _PROBE_MEMO[memo_key]
    path = cache_root(cache_dir) / "leakage" / f"{key}-{extractor.name}-seed{int(seed)}.pt"
    probe = read_cached(path, LeakageProbe.from_dict,
                        lambda p: (p.extractor, p.weights_id, p.da) == (extractor.name, extractor.weights_id, LEAKAGE_DA))
    if probe is None:
        real_pool = None
        if reference is not None and (reference.extractor, reference.weights_id) == (extractor.name,
                                                                                   extractor.weights_id):
            real_pool = reference.pool
        probe = fit_probe(real_uint8, extractor, real_pool=real_pool, seed=seed, batch_size=batch_size)
        write_cached(path, probe.to_dict())
    _PROBE_MEMO[memo_key] = probe
    return probe


def with_leakage(reference: RealStats, real_uint8: torch.Tensor, extractor: Extractor | str, *, cache_dir=None,
                 seed: int = 0, batch_size: int = 64) -> RealStats:
    """``reference`` with the leakage probe of its real set attached (`leakage_probe`), so every trial that gets it
    reports the leakage keys from `gan.metrics.compute_metrics`. ``real_uint8`` must be the images ``reference``
    was computed from."""
    if isinstance(extractor, str):
        extractor = get_extractor(extractor)
    if (reference.extractor, reference.weights_id) != (extractor.name, extractor.weights_id):
        raise ValueError(f"reference statistics were made with {reference.extractor!r} (weights "
                         f"{reference.weights_id}), not {extractor.name!r} (weights {extractor.weights_id})")
    if len(real_uint8) != len(reference):
        raise ValueError(f"the reference holds {len(reference)} images, real_uint8 {len(real_uint8)}")
    probe = leakage_probe(real_uint8, extractor, reference=reference, cache_dir=cache_dir, seed=seed,
                          batch_size=batch_size)
    return dataclasses.replace(reference, leakage=probe)

"""Leakage of an augmentation into the generator: how many generated samples show the transform.

The published study saw negpos and vflip "leak" by eye (inverted faces, faces upside down). A probe measures it here,
one per appearance-changing DA type of `gan.metrics.schema.LEAKAGE_DA` (vflip, negpos, contrast, hflip), and every
number it reports is read against controls with a known answer.

The pairwise score
    A linear probe s(x) is fitted on real images (label 0) against the same images transformed by the DA op T
    (label 1). A sample x is called *transformed* when the probe finds it more transformed than its own transform:
    s(x) > s(T x). What x and T x share (a generator's blur, speckle, mean grey level) moves both sides alike and
    cancels; only the part of x that T changes decides. For the involutions (vflip, hflip, negpos: T T x = x) this
    makes the call on a real image and on its transform exact opposites, so TPR = 1 - FPR. contrast is no
    involution (its factor is random): its transformed images are compared with a second, independent contrast draw.

The probe
    Input: the images' luma (ITU-R 601-2, `gan.augment.LUMA`) brought to `PROBE_SIZE` x `PROBE_SIZE` by
    `gan.realsets.to_size` (one channel: colour noise of a generator cannot steer it), in [0, 1], flattened.
    Classifier: scikit-learn's StandardScaler then L2 LogisticRegression (liblinear), C from `C_GRID` by log-loss
    under `INNER_FOLDS`-fold cross-validation grouped by image (an image and its transform always in one fold).
    Its rates come from *nested* cross-validation: outer `FOLDS` folds grouped by image; inside each outer training
    part C is chosen again as above; the outer held-out images (never seen in either form, not even for choosing C)
    give ``fpr`` (originals called transformed) and ``tpr`` (transformed copies called transformed). The shipped
    probe is the same procedure on all images.

Reading the scores
    A probe whose ``tpr - fpr`` is below `MIN_SEPARATION` cannot tell originals from transforms on this data: its
    DA type is *not measurable* here, it reports no share (only ``leakage_<da>_measurable = 0``), and nothing is
    tested on it. A generator that fits its training mixture, a share m of it transformed by T, is expected to
    score ``m * tpr + (1 - m) * fpr``; each trial reports the probe's score on its own training set
    (`LeakageProbe.expected`) beside its share: the no-DA arm should score about ``fpr``, like real images;
    vflip@n_real (m = 0.5) about 0.5. A share below the expected value says the generator did not learn the
    mixture, not that the DA is safe.

What ships: `LeakageProbe` holds plain tensors and numbers (per DA type: scaler mean and scale, coefficients,
intercept, (T, `PROBE_SIZE`^2) float64); `to_dict` goes through ``torch.save`` / ``torch.load(weights_only=True)``.
It is fitted once per reference set (`leakage_probe`, cached on disk next to the reference statistics) and rides
to every trial on the `RealStats` (`with_leakage`); `gan.metrics.compute_metrics` scores the evaluation's images.

scikit-learn and scipy are imported when a probe is fitted or scored, not on import.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from gan.augment import AUGMENTATIONS, LUMA
from gan.cache import cache_root, image_hash, read_cached, write_cached
from gan.metrics.reference import RealStats
from gan.metrics.schema import LEAKAGE_DA, leakage_expected_key, leakage_keys, leakage_measurable_key

PROBE_SIZE = 16  # side of the luma images the probe reads (25x25 LFW faces keep their layout; 256 features)
C_GRID = (1e-3, 1e-2, 1e-1, 1.0)  # inverse L2 strengths tried (on standardised pixels)
FOLDS = 5  # outer cross-validation folds (grouped by image): the held-out rates
INNER_FOLDS = 3  # inner folds (grouped by image) that choose C
MIN_SEPARATION = 0.5  # tpr - fpr (nested CV) below which a DA type is "not measurable on this data"
CONFIDENCE = 0.95  # Wilson interval level of one trial's share
SECOND_DRAW = 1  # seed offset of the op's generator for T applied to an already transformed image (contrast)
VERSION = 2  # the probe's design; a cache file of another version is refitted

assert set(LEAKAGE_DA) <= set(AUGMENTATIONS), "gan.metrics.schema.LEAKAGE_DA must name DA ops of gan.augment"


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion k/n (scipy)."""
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def luma_pixels(images: torch.Tensor, size: int = PROBE_SIZE) -> torch.Tensor:
    """uint8 (n, 3, H, W) -> float64 (n, size*size): luma in [0, 1] at `size` x `size` (resized by `to_size`)."""
    from gan.realsets import to_size

    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"the leakage probe reads uint8 images (n, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    small = to_size(images.cpu(), size).double()
    weights = torch.tensor(LUMA, dtype=torch.float64).view(1, 3, 1, 1)
    return ((small * weights).sum(1) / 255.0).flatten(1)


def transform(images: torch.Tensor, da: str, seed: int) -> torch.Tensor:
    """The DA op `da` on uint8 images with a fresh generator seeded `seed` (only contrast draws from it)."""
    return AUGMENTATIONS[da](images, torch.Generator().manual_seed(int(seed)))


@dataclass(frozen=True, eq=False)
class LeakageProbe:
    """One fitted linear probe per DA type, as plain tensors (row t of each tensor belongs to ``da[t]``):
    ``s_t(x) = ((luma_pixels(x) - mean[t]) / scale[t]) @ coef[t] + intercept[t]``."""

    da: tuple[str, ...]  # the DA types, in row order
    mean: torch.Tensor  # (T, D) float64 StandardScaler mean_ per DA type
    scale: torch.Tensor  # (T, D) float64 StandardScaler scale_ per DA type
    coef: torch.Tensor  # (T, D) float64 LogisticRegression coef_ (on standardised pixels)
    intercept: torch.Tensor  # (T,) float64 LogisticRegression intercept_
    c: tuple[float, ...]  # the C chosen by cross-validation on all images, per DA type
    tpr: tuple[float, ...]  # nested-CV share of held-out transformed images called transformed, per DA type
    fpr: tuple[float, ...]  # nested-CV share of held-out original images called transformed, per DA type
    n_real: int  # real images the probe was fitted on (each also in transformed form)
    seed: int  # seed of the DA ops' generator
    size: int = PROBE_SIZE  # side of the luma images read
    version: int = VERSION  # the probe's design (`VERSION`)

    def separation(self, da: str) -> float:
        """tpr - fpr of `da`'s probe (nested CV): 1 sees every transform, 0 sees nothing."""
        t = self.da.index(da)
        return self.tpr[t] - self.fpr[t]

    def measurable(self, da: str) -> bool:
        """Whether `da`'s probe tells originals from transforms on held-out images (`MIN_SEPARATION`)."""
        return self.separation(da) >= MIN_SEPARATION

    def decision(self, images: torch.Tensor) -> torch.Tensor:
        """(T, N) float64: every DA type's probe value s_t on the N images."""
        x = luma_pixels(images, self.size)
        w = self.coef / self.scale  # (T, D): the scaler folded into the weights
        b = self.intercept - (self.mean * w).sum(1)
        return (x @ w.T + b).T

    def calls(self, images: torch.Tensor) -> torch.Tensor:
        """(T, N) bool: which images each probe finds more transformed than their own transform, s(x) > s(T x)."""
        own = self.decision(images)
        rows = [own[t] > self.decision(transform(images, da, self.seed + SECOND_DRAW))[t]
                for t, da in enumerate(self.da)]
        return torch.stack(rows)

    def score(self, images: torch.Tensor) -> dict[str, float]:
        """The leakage keys of `gan.metrics.schema` for generated uint8 images (N, 3, H, W): per DA type its
        measurable flag, and for a measurable type the share called transformed with its Wilson interval."""
        n = len(images)
        if n == 0:
            raise ValueError("no generated samples to score")
        out = {}
        for da, row in zip(self.da, self.calls(images)):
            out[leakage_measurable_key(da)] = float(self.measurable(da))
            if self.measurable(da):
                k = int(row.sum())
                share, lo, hi = leakage_keys(None, da)
                out[share] = k / n
                out[lo], out[hi] = wilson_interval(k, n)
        return out

    def expected(self, training_images: torch.Tensor) -> dict[str, float]:
        """What a generator that reproduces its training set scores, per measurable DA type: the share of those
        training images (real and DA-made, uint8 (N, 3, H, W)) called transformed. For a set with a share m
        transformed by that type this is m tpr + (1 - m) fpr up to sampling; it also counts what another type's
        images look like to this probe (an inverted face may look upside down)."""
        shares = self.score(training_images)
        return {leakage_expected_key(da): shares[leakage_keys(None, da)[0]] for da in self.da if self.measurable(da)}

    def rates(self) -> dict[str, dict]:
        """Per DA type (by its share key): nested-CV tpr and fpr, the chosen C, and whether it is measurable."""
        return {leakage_keys(None, da)[0]: {"tpr": self.tpr[t], "fpr": self.fpr[t], "c": self.c[t],
                                            "measurable": self.measurable(da)} for t, da in enumerate(self.da)}

    def to_dict(self) -> dict:
        """Tensors, strings, numbers, lists: what ``torch.load(weights_only=True)`` reads back."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "LeakageProbe":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields})


def template_calls(reference: torch.Tensor, images: torch.Tensor, da: str, seed: int = 0) -> torch.Tensor:
    """A second instrument, independent of the probe: (N,) bool, whether each image's luma correlates better with
    the transformed mean reference face than with the mean reference face itself (Pearson, `PROBE_SIZE` luma;
    `reference`: real uint8 images). Nothing is fitted; it sees only what the average face shows (vflip, negpos)."""
    template = luma_pixels(reference).mean(0, keepdim=True)
    moved = luma_pixels(transform(reference, da, seed)).mean(0, keepdim=True)
    x = luma_pixels(images)

    def corr(t):
        xc, tc = x - x.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
        return (xc * tc).sum(1) / (xc.norm(dim=1) * tc.norm(dim=1)).clamp_min(1e-12)

    return corr(moved) > corr(template)


def _search(x: np.ndarray, y: np.ndarray, groups: np.ndarray):
    """StandardScaler + LogisticRegression with C from `C_GRID` by grouped CV (log-loss), refitted on all rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = list(GroupKFold(n_splits=min(INNER_FOLDS, len(np.unique(groups)))).split(x, y, groups))
    pipe = make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear", max_iter=2000))
    search = GridSearchCV(pipe, {"logisticregression__C": list(C_GRID)}, scoring="neg_log_loss", cv=folds,
                          refit=True, n_jobs=1)
    return search.fit(x, y).best_estimator_


def _fit_one(x0: np.ndarray, x1: np.ndarray, x2: np.ndarray):
    """Nested CV of the pairwise call and the probe fitted on everything. x0: originals, x1 = T(originals),
    x2 = T(x1) (the originals again for an involution), one row per image in the same order."""
    from sklearn.model_selection import GroupKFold

    n = len(x0)
    images = np.arange(n)
    false_pos, true_pos = np.zeros(n, bool), np.zeros(n, bool)
    for train, test in GroupKFold(n_splits=min(FOLDS, n)).split(x0, groups=images):
        model = _search(np.concatenate([x0[train], x1[train]]), np.r_[np.zeros(len(train)), np.ones(len(train))],
                        np.r_[train, train])
        s0, s1, s2 = (model.decision_function(x[test]) for x in (x0, x1, x2))
        false_pos[test], true_pos[test] = s0 > s1, s1 > s2
    model = _search(np.concatenate([x0, x1]), np.r_[np.zeros(n), np.ones(n)], np.r_[images, images])
    return model, float(true_pos.mean()), float(false_pos.mean())


def fit_probe(real_uint8: torch.Tensor, *, da: tuple[str, ...] = LEAKAGE_DA, seed: int = 0,
              size: int = PROBE_SIZE) -> LeakageProbe:
    """Fit one probe per DA type on the real images ``real_uint8`` (n, 3, H, W), n >= `FOLDS`, with nested-CV
    rates (see the module docstring)."""
    unknown = [d for d in da if d not in LEAKAGE_DA]
    if unknown:
        raise ValueError(f"no leakage probe for DA {', '.join(unknown)}; allowed: {', '.join(LEAKAGE_DA)}")
    n = len(real_uint8)
    if n < FOLDS:
        raise ValueError(f"a leakage probe needs at least {FOLDS} real images, got {n}")
    x0 = luma_pixels(real_uint8, size).numpy()
    rows = []
    for name in da:
        moved = transform(real_uint8, name, seed)
        x1 = luma_pixels(moved, size).numpy()
        x2 = luma_pixels(transform(moved, name, seed + SECOND_DRAW), size).numpy()
        rows.append(_fit_one(x0, x1, x2))
    scalers = [m.named_steps["standardscaler"] for m, *_ in rows]
    logregs = [m.named_steps["logisticregression"] for m, *_ in rows]

    def stack(values):
        return torch.from_numpy(np.stack(values).astype(np.float64))

    return LeakageProbe(
        da=tuple(da), mean=stack([s.mean_ for s in scalers]), scale=stack([s.scale_ for s in scalers]),
        coef=stack([lr.coef_[0] for lr in logregs]), intercept=stack([lr.intercept_[0] for lr in logregs]),
        c=tuple(float(lr.C) for lr in logregs), tpr=tuple(r[1] for r in rows), fpr=tuple(r[2] for r in rows),
        n_real=n, seed=int(seed), size=int(size))


_PROBE_MEMO: dict[tuple, LeakageProbe] = {}


def leakage_probe(real_uint8: torch.Tensor, *, cache_dir=None, key: str | None = None, seed: int = 0) -> LeakageProbe:
    """`fit_probe` once per (image set, seed): memoised in-process and cached on disk at
    ``<cache root>/leakage/<key>-luma<PROBE_SIZE>-v<VERSION>-seed<seed>.pt`` (written atomically, read with
    ``weights_only=True``). ``key``: the image set's key (default: its content hash)."""
    key = key or image_hash(real_uint8)
    memo_key = (key, int(seed), PROBE_SIZE, VERSION)
    if memo_key in _PROBE_MEMO:
        return _PROBE_MEMO[memo_key]
    path = cache_root(cache_dir) / "leakage" / f"{key}-luma{PROBE_SIZE}-v{VERSION}-seed{int(seed)}.pt"
    probe = read_cached(path, LeakageProbe.from_dict,
                        lambda p: (p.da, p.size, p.version) == (LEAKAGE_DA, PROBE_SIZE, VERSION))
    if probe is None:
        probe = fit_probe(real_uint8, seed=seed)
        write_cached(path, probe.to_dict())
    _PROBE_MEMO[memo_key] = probe
    return probe


def with_leakage(reference: RealStats, real_uint8: torch.Tensor, *, cache_dir=None, seed: int = 0) -> RealStats:
    """``reference`` with the leakage probe of its real set attached (`leakage_probe`), so every trial that gets it
    reports the leakage keys from `gan.metrics.compute_metrics`. ``real_uint8`` must be the images ``reference``
    was computed from."""
    if len(real_uint8) != len(reference):
        raise ValueError(f"the reference holds {len(reference)} images, real_uint8 {len(real_uint8)}")
    probe = leakage_probe(real_uint8, cache_dir=cache_dir, key=reference.key, seed=seed)
    return dataclasses.replace(reference, leakage=probe)

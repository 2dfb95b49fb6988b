"""The metric schema: which keys each extractor's evaluation produces, and which way each key is better.

Every other part of gansweep (config validation, the sweep's progress columns, the report's ranking, `gansweep score`)
imports these names instead of spelling keys out or decoding them with string splits. A metric key is the metric's
name joined to the extractor that made the features, ``fid_effnet`` or ``is_mean_inception``, so scores from two
networks are never mixed.

Plain Python, no torch: cheap to import from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

EXTRACTOR_NAMES = ("effnet", "inception")  # the keys of gan.metrics.extractors.EXTRACTORS (a test checks they agree)


@dataclass(frozen=True)
class Metric:
    """One metric of the evaluation."""

    name: str  # the key's stem: fid, kid_mean, ...
    direction: str | None  # "min" (lower is better), "max" (higher is better), None (not a quality score)
    what: str  # one line for reports and --help
    why: str = ""  # why a study may rank by it by default, printed under the ranking metric ("" when none is given)


# The feature metrics every evaluation reports, each once per extractor.
FEATURE_METRICS: tuple[Metric, ...] = (
    Metric("is_mean", "max", "Inception Score exp(E KL(p(y|x) || p(y))); higher is the standard reading "
                             "(Salimans et al. 2016)"),
    Metric("is_std", None, "spread of the Inception Score over its splits"),
    Metric("fid", "min", "Frechet distance between Gaussian fits of real and generated features; its bias grows "
                         "as the sample counts shrink"),
    Metric("kid_mean", "min", "Kernel Inception Distance, an unbiased MMD^2 estimate (cubic polynomial kernel)",
           why="its estimate is unbiased at any sample count, so ranks at these small sample sizes are comparable "
               "between arms and sweeps; FID's bias depends on the number of samples (Binkowski et al. 2018, "
               "Chong & Forsyth 2020), so FID ranks only compare at equal n"),
    Metric("kid_std", None, "spread of KID over its random subsets"),
    Metric("precision", "max", "share of generated samples inside the real features' k-NN balls (fidelity)"),
    Metric("recall", "max", "share of real samples inside the generated features' k-NN balls (coverage)"),
)

# What a training report carries besides the feature metrics: bookkeeping and diagnostics, never ranked.
TRAINING_METRICS: tuple[Metric, ...] = (
    Metric("step", None, "training iterations done"),
    Metric("loss_d", None, "discriminator loss (mean since the last report)"),
    Metric("loss_g", None, "generator loss (mean since the last report)"),
    Metric("d_real", None, "mean D(x) on real batches"),
    Metric("d_fake", None, "mean D(G(z)) before the D update"),
    Metric("images_per_s", None, "real images consumed per training second"),
    Metric("iters_per_s", None, "GAN iterations per training second since the last report (equal-time trials of "
                                "one method should agree: they ran on the same hardware)"),
    Metric("train_seconds", None, "training seconds so far, evaluation excluded"),
    Metric("diverged", None, "1 when a non-finite loss ended training"),
    Metric("sr_step", None, "SRCNN iterations done (dcgan64+srcnn)"),
    Metric("loss_sr", None, "SRCNN mean squared error (mean since the last report)"),
    Metric("loss_d2", None, "stage-II discriminator loss (stackgan128)"),
    Metric("loss_g2", None, "stage-II generator loss (stackgan128)"),
)

# Super-resolution quality (gan.methods.srcnn_quality): held-out real images downscaled to 64 and brought back to 128
# by the trained SRCNN or by plain bicubic, against the originals. Extractor-free.
SR_METRICS: tuple[Metric, ...] = (
    Metric("psnr_srcnn", "max", "PSNR (dB) of the SRCNN's x2 upscale of held-out images"),
    Metric("psnr_bicubic", None, "PSNR (dB) of plain bicubic x2 on the same images (what the SRCNN must beat)"),
    Metric("ssim_srcnn", "max", "SSIM of the SRCNN's x2 upscale of held-out images"),
    Metric("ssim_bicubic", None, "SSIM of plain bicubic x2 on the same images"),
)

# Leakage (gan.leakage): how many generated samples show a DA type's transform, by a pairwise probe on luma pixels.
# The probe reads pixels, not an extractor's features, so its keys end in `LEAKAGE_PROBE` instead of an extractor.
LEAKAGE_DA = ("vflip", "negpos", "contrast", "hflip")  # keys of gan.augment.AUGMENTATIONS (gan.leakage checks)
LEAKAGE_PROBE = "luma"  # the leakage keys' suffix: the instrument (gan.leakage's probe on luma pixels)

# Per DA type: the share called transformed and its 95% Wilson interval over that trial's samples (reported only when
# the probe can see the type), the share a generator fitting its training mixture would score, and whether the probe
# can see the type at all on this data (1/0, always reported when the reference carries a probe).
LEAKAGE_METRICS: tuple[Metric, ...] = tuple(m for da in LEAKAGE_DA for m in (
    Metric(f"leakage_{da}", "min", f"share of generated samples the probe finds more {da}-transformed than their own "
                                   f"{da} transform (gan.leakage); only where the probe can see {da}"),
    Metric(f"leakage_{da}_ci_lo", None, f"lower end of the 95% Wilson interval of leakage_{da} (one trial's samples)"),
    Metric(f"leakage_{da}_ci_hi", None, f"upper end of the 95% Wilson interval of leakage_{da} (one trial's samples)"),
    Metric(f"leakage_{da}_expected", None, f"leakage_{da} of a generator that reproduces its training set: the "
                                           "probe's share on the trial's own training images (m tpr + (1 - m) fpr "
                                           f"for a share m of {da} images)"),
    Metric(f"leakage_{da}_measurable", None, f"1 when the probe tells held-out originals from {da} transforms "
                                             "(nested-CV tpr - fpr >= gan.leakage.MIN_SEPARATION), else 0"),
))
LEAKAGE_KEYS = tuple(f"{m.name}_{LEAKAGE_PROBE}" for m in LEAKAGE_METRICS)  # every leakage key, as trials report it

# Memorisation (gan.metrics.memorisation): reported when the reference carries a probe (a held-out reference).
MEMORISATION_METRICS: tuple[Metric, ...] = (
    Metric("memorisation", None, "share of generated samples closer to a training image than 95% of held-out real "
                                 "images are (0.05 expected without memorisation, 1 for a copier); read beside "
                                 "quality, never ranked"),
)

_BY_NAME = {m.name: m for m in (*FEATURE_METRICS, *MEMORISATION_METRICS)}


def metric_key(name: str, extractor: str) -> str:
    """``metric_key('fid', 'effnet') == 'fid_effnet'``."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown metric {name!r}; allowed: {', '.join(_BY_NAME)}")
    return f"{name}_{extractor}"


def extractor_keys(extractor: str, *, with_reference: bool = True) -> tuple[str, ...]:
    """The feature-metric keys one evaluation with `extractor` reports (IS only without a reference set). A reference
    carrying a leakage probe adds keys of `LEAKAGE_KEYS`."""
    names = [m.name for m in FEATURE_METRICS if with_reference or m.name.startswith("is_")]
    return tuple(metric_key(n, extractor) for n in names)


def _leakage_key(da: str, part: str = "") -> str:
    if da not in LEAKAGE_DA:
        raise ValueError(f"no leakage metric for DA {da!r}; allowed: {', '.join(LEAKAGE_DA)}")
    return f"leakage_{da}{part}_{LEAKAGE_PROBE}"


def leakage_keys(extractor: str | None, da: str) -> tuple[str, str, str]:
    """(share, interval low, interval high) keys of one DA type: ``leakage_vflip_luma``, ... The share is the
    per-trial value seeds replicate. `extractor` does not enter the keys (the probe reads pixels): it is accepted so
    that callers naming every key per extractor can name these the same way."""
    return tuple(_leakage_key(da, part) for part in ("", "_ci_lo", "_ci_hi"))


def leakage_da(key: str) -> str | None:
    """The DA type whose leakage share `key` is (``leakage_vflip_luma`` -> ``vflip``); None for any other key."""
    return next((da for da in LEAKAGE_DA if key == _leakage_key(da)), None)


def leakage_expected_key(da: str) -> str:
    """The key of what a generator fitting its training mixture would score on `da` (``leakage_vflip_expected_luma``)."""
    return _leakage_key(da, "_expected")


def leakage_measurable_key(da: str) -> str:
    """The key saying whether the probe can see `da` on this data (1) or not (0): ``leakage_vflip_measurable_luma``.
    Where it is 0 the trial reports no share for `da`, and nothing about `da` may be tested."""
    return _leakage_key(da, "_measurable")


def _table() -> dict[str, tuple[Metric, str | None]]:
    table = {m.name: (m, None) for m in (*TRAINING_METRICS, *SR_METRICS)}
    table.update({f"{m.name}_{LEAKAGE_PROBE}": (m, None) for m in LEAKAGE_METRICS})
    for ext in EXTRACTOR_NAMES:
        for m in (*FEATURE_METRICS, *MEMORISATION_METRICS):
            table[metric_key(m.name, ext)] = (m, ext)
    return table


_KEYS = _table()


def known(key: str) -> bool:
    return key in _KEYS


def lookup(key: str) -> tuple[Metric, str | None]:
    """(the Metric, its extractor or None) of a key; ValueError listing the known keys for an unknown one."""
    try:
        return _KEYS[key]
    except KeyError:
        raise ValueError(f"unknown metric {key!r}; allowed: {', '.join(sorted(_KEYS))}") from None


def direction(key: str) -> str | None:
    """'min', 'max' or None (not a quality score) for any known key."""
    return lookup(key)[0].direction


def extractor_of(key: str) -> str | None:
    """The extractor a feature-metric key was computed with; None for any other key (training, SR, leakage)."""
    return lookup(key)[1]


def rankable(extractor: str) -> tuple[str, ...]:
    """The keys of `extractor` that have a direction: what a sweep may rank or optimise by."""
    return tuple(k for k in extractor_keys(extractor) if direction(k) is not None)


def describe(key: str) -> str:
    """One line: what the key measures and which way is better."""
    metric, ext = lookup(key)
    way = {"min": "lower is better", "max": "higher is better", None: "not ranked"}[metric.direction]
    on = f" ({ext} features)" if ext else ""
    return f"`{key}`{on}: {metric.what}; {way}"


# --- what the report shows beyond the ranking table ---------------------------------------------------------------
# The report iterates over these declarations and names no metric of its own: a new metric family declares its table
# here.


@dataclass(frozen=True)
class Gain:
    """A per-seed difference of two keys of one trial, shown with its interval and paired test (the SRCNN's PSNR
    over plain bicubic): `key` beats `over` when the difference holds and its sign agrees with `key`'s direction."""

    title: str  # column title, e.g. "PSNR gain (dB)"
    key: str  # the score (a key of this schema)
    over: str  # what it must beat, measured on the same images (a key of this schema)
    versus: str  # `over` in words, for the verdict ("beats bicubic")


@dataclass(frozen=True)
class ReportTable:
    """A table of per-arm values the report adds when any trial reports one of its keys."""

    title: str  # section title
    intro: str  # what the values are, printed under the title
    names: tuple[str, ...]  # metric names in column order (an extractor's suffix is added where `per_extractor`)
    per_extractor: bool = False  # the names get the extractor suffix (`psnr_srcnn` has none, `fid` would)
    share: bool = False  # leakage shares: per-seed values with their expected value and measurable flag
    compare: bool = True  # each arm's paired difference to the baseline, Holm-adjusted within its group
    gains: tuple[Gain, ...] = ()  # differences of two keys per seed, e.g. a method over the plain method it refines

    def keys(self, extractor: str | None) -> tuple[str, ...]:
        """The report keys of this table under `extractor`."""
        return tuple(metric_key(n, extractor) if self.per_extractor else n for n in self.names)


REPORT_TABLES: tuple[ReportTable, ...] = (
    ReportTable(
        "Leakage of each DA into the samples",
        "Share of an arm's final samples that the leakage probe (`gan.leakage`: a linear probe on luma pixels fitted "
        "on the reference's real images) finds more transformed than their own transform, s(x) > s(T x): the mean of "
        "the per-seed shares with a 95% t interval over seeds (seeds are the replicates; samples are never pooled "
        "across them). Beside it, in brackets after *exp*, the share a generator that fits its training mixture would "
        "score: the probe's share on the arm's own training images (m TPR + (1 - m) FPR for a share m transformed "
        "by that type; it also counts how other types' images look to the probe): a share well below it means the generator did not learn the mixture, never that the DA is safe. Δ: the arm minus "
        "the baseline, paired by seed, with its Holm-adjusted p (exploratory; the study's primary hypotheses are "
        "tested in the answer section). The real images row is the probe on real training images it never saw (the "
        "negative control: the baseline should score like them, the probe's FPR). The probe row gives its "
        "nested-cross-validated TPR / FPR on held-out real images; a DA type whose TPR - FPR is below "
        "gan.leakage.MIN_SEPARATION cannot be seen on this data: it reads *not measurable* and is never tested.",
        tuple(leakage_keys(None, da)[0] for da in LEAKAGE_DA), share=True),
    ReportTable(
        "Super-resolution: the SRCNN against plain bicubic",
        "Held-out real images downscaled to 64 and brought back to 128 by the trained SRCNN or by plain bicubic, "
        "against the originals (mean ± 95% t interval over finished seeds). The gain is the SRCNN's score minus "
        "bicubic's on the same images, per seed; it beats bicubic when the gain is positive and its paired "
        "t-test over seeds holds (p below the α of the rules above).",
        tuple(m.name for m in SR_METRICS), compare=False,
        gains=(Gain("PSNR gain (dB)", "psnr_srcnn", "psnr_bicubic", "bicubic"),
               Gain("SSIM gain", "ssim_srcnn", "ssim_bicubic", "bicubic"))),
)


@dataclass(frozen=True)
class CostColumn:
    """A column of what an arm's budget bought (mean over finished seeds), from one or more training keys."""

    title: str  # column title
    parts: tuple[tuple[str, str], ...]  # (key, label) shown joined by " + ", e.g. 600 + 200 SR
    seconds: bool = False  # the value is a duration in seconds (shown in s, or in h from an hour up)


COST_COLUMNS: tuple[CostColumn, ...] = (
    CostColumn("iterations", (("step", ""), ("sr_step", "SR"))),
    CostColumn("train time", (("train_seconds", ""),), seconds=True),
    CostColumn("iterations / s", (("iters_per_s", ""),)),  # the clock's speed: one method's trials should agree
)

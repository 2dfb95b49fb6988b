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

# Leakage (gan.leakage): the DA types whose traces in generated images a probe on the extractor's features measures.
# hflip is the control: a mirrored face or dog is still a plausible face or dog, so its probe stays near chance.
LEAKAGE_DA = ("vflip", "negpos", "contrast", "hflip")  # keys of gan.augment.AUGMENTATIONS (gan.leakage checks)
LEAKAGE_CONTROL = "hflip"  # the type whose probe should stay near chance on faces (a mirrored face is still a face)

# Per DA type three keys: the share and the two ends of its 95% Wilson interval (`leakage_vflip_effnet`,
# `leakage_vflip_ci_lo_effnet`, `leakage_vflip_ci_hi_effnet`). Reported only when the reference carries a probe.
LEAKAGE_METRICS: tuple[Metric, ...] = tuple(m for da in LEAKAGE_DA for m in (
    Metric(f"leakage_{da}", "min",
           f"share of generated samples a probe trained on real images calls {da}-transformed"
           + (" (the control: images look natural mirrored, expect the probe's false-positive rate)"
              if da == LEAKAGE_CONTROL else "")),
    Metric(f"leakage_{da}_ci_lo", None, f"lower end of the 95% Wilson interval of leakage_{da}"),
    Metric(f"leakage_{da}_ci_hi", None, f"upper end of the 95% Wilson interval of leakage_{da}"),
))

# Memorisation (gan.metrics.memorisation): reported when the reference carries a probe (a held-out reference).
MEMORISATION_METRICS: tuple[Metric, ...] = (
    Metric("memorisation", None, "share of generated samples closer to a training image than 95% of held-out real "
                                 "images are (0.05 expected without memorisation, 1 for a copier); read beside "
                                 "quality, never ranked"),
)

_BY_NAME = {m.name: m for m in (*FEATURE_METRICS, *LEAKAGE_METRICS, *MEMORISATION_METRICS)}


def metric_key(name: str, extractor: str) -> str:
    """``metric_key('fid', 'effnet') == 'fid_effnet'``."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown metric {name!r}; allowed: {', '.join(_BY_NAME)}")
    return f"{name}_{extractor}"


def extractor_keys(extractor: str, *, with_reference: bool = True, with_leakage: bool = False) -> tuple[str, ...]:
    """The keys one evaluation with `extractor` reports (IS only without a reference set; the leakage keys only
    when the reference carries a leakage probe)."""
    names = [m.name for m in FEATURE_METRICS if with_reference or m.name.startswith("is_")]
    if with_reference and with_leakage:
        names += [m.name for m in LEAKAGE_METRICS]
    return tuple(metric_key(n, extractor) for n in names)


def leakage_keys(extractor: str, da: str) -> tuple[str, str, str]:
    """(share, interval low, interval high) keys of one DA type: ``leakage_vflip_effnet``, ..."""
    if da not in LEAKAGE_DA:
        raise ValueError(f"no leakage metric for DA {da!r}; allowed: {', '.join(LEAKAGE_DA)}")
    return tuple(metric_key(f"leakage_{da}{part}", extractor) for part in ("", "_ci_lo", "_ci_hi"))


def _table() -> dict[str, tuple[Metric, str | None]]:
    table = {m.name: (m, None) for m in (*TRAINING_METRICS, *SR_METRICS)}
    for ext in EXTRACTOR_NAMES:
        for m in (*FEATURE_METRICS, *LEAKAGE_METRICS, *MEMORISATION_METRICS):
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
    """The extractor a feature-metric key was computed with; None for a training metric."""
    return lookup(key)[1]


def rankable(extractor: str, *, with_leakage: bool = False) -> tuple[str, ...]:
    """The keys of `extractor` that have a direction: what a sweep may rank or optimise by."""
    return tuple(k for k in extractor_keys(extractor, with_leakage=with_leakage) if direction(k) is not None)


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
    per_extractor: bool = False  # the keys carry the extractor suffix (`leakage_vflip_effnet`)
    share: bool = False  # values are shares of a trial's scored samples (`eval_samples`): pooled over seeds as counts
    compare: bool = True  # each arm's paired difference to the baseline, Holm-adjusted within its group
    gains: tuple[Gain, ...] = ()  # differences of two keys per seed, e.g. a method over the plain method it refines
    floor_gap: float | None = None  # warn when the baseline's share exceeds the real images' by more than this
    floor_warning: str = ""  # the warning, formatted with baseline, key, base (share), real (share)

    def keys(self, extractor: str | None) -> tuple[str, ...]:
        """The report keys of this table under `extractor`."""
        return tuple(metric_key(n, extractor) if self.per_extractor else n for n in self.names)


REPORT_TABLES: tuple[ReportTable, ...] = (
    ReportTable(
        "Leakage of each DA into the samples",
        f"Share of an arm's final samples that a probe trained on real images calls transformed "
        f"({', '.join(d for d in LEAKAGE_DA if d != LEAKAGE_CONTROL)}; {LEAKAGE_CONTROL} is the control, which faces "
        "cannot reveal): its finished seeds' samples "
        "pooled, with a 95% Wilson interval on the pooled counts (share x `eval_samples` per seed) and the number "
        "called transformed / scored. Δ: the arm minus the baseline, paired by seed, with its Holm-adjusted "
        "paired-t p. A leak shows as a share well above the baseline's. The real images row is the probe on real "
        "training images it never saw (the floor): its false-positive rate on real photos. The probe row: its "
        "cross-validated rates on the reference's real images, the share of transformed copies it recognises (TPR) and "
        "of originals it calls transformed (FPR), averaged over the seeds' probes; a probe with a TPR near its FPR "
        "cannot see that DA type at all.",
        tuple(m.name for m in LEAKAGE_METRICS if m.direction), per_extractor=True, share=True,
        floor_gap=0.3,
        floor_warning="**Warning:** `{baseline}` scores {base:.2f} on `{key}` against {real:.2f} for the real images: "
                      "the probe reacts to artefacts of generated images, not to the transform, so the leakage "
                      "shares of this sweep mean little for that DA type."),
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

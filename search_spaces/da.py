"""Study 1, the DA ablation: the published arms on CelebA and Pomeranians, a CPU demo that answers the leakage
question and a CPU grid of the published arms, a pairing-ratio grid, and an Optuna search over DA choices.

Arms give their DA count as a multiple of `n_real` (the study's "DA 1000" and "DA 2000" on 1000 real images are 1x
and 2x), so an `n_real` override scales the counts with it. Conventions shared by all presets:

* The donor GAN behind the `generated` DA trains as long as an arm (`donor_steps = steps`) unless `donor_steps` is
  overridden: in the study it is the same GAN, trained on the real set alone.
* Every preset holds real images out of training as the metrics' reference (`n_heldout`), and ranks by KID, whose
  estimate is unbiased at any sample count (FID's bias grows as the sets shrink; it is shown beside, with IS).
* Arms are compared within a dataset and DA count, against no DA, on the same seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import dataclasses

from gan.augment import NONE, arm_label
from gan.metrics.schema import leakage_expected_key, leakage_keys, leakage_measurable_key
from search_spaces.builders import grid_study, optuna_study
from search_spaces.space import Design, GridStudy, Hypothesis, OptunaStudy


@dataclass(frozen=True)
class LeakageShare:
    """A key of DA type `da`'s leakage under an extractor, from `gan.metrics.schema`: its share (`leakage_keys`),
    the share a generator fitting its mixture would reach, or whether the probe can see `da` on this data."""

    da: str  # a key of gan.metrics.schema.LEAKAGE_DA
    part: str = "share"  # 'share', 'expected' (a generator fitting its mixture) or 'measurable' (1 / 0)

    def __call__(self, extractor: str) -> str:
        if self.part == "expected":
            return leakage_expected_key(self.da)
        if self.part == "measurable":
            return leakage_measurable_key(self.da)
        return leakage_keys(extractor, self.da)[0]


NO_DA = (("da", NONE), ("d_aug", "none"))  # the baseline arm: no dataset DA and nothing at D's input


def _leaks(da: str, what: str, d_aug: str = "none", name: str = "", text: str = "") -> Hypothesis:
    """`da` added to the dataset (or, with da none, the `d_aug` augmentation at D's input) raises the share of
    samples that look transformed by `da`, against no DA at all."""
    arm = (("da", da if d_aug == "none" else NONE), ("d_aug", d_aug))
    return Hypothesis(name or f"{da}-leaks", arm=arm, baseline=NO_DA, metric=LeakageShare(da),
                      direction="greater", text=text or f"{da} leaks", what=what, percent=True,
                      expected=LeakageShare(da, "expected"), measurable=LeakageShare(da, "measurable"))


# Study 1's primary hypotheses: the types the study saw leak into the generator leak into it here, measured by
# their own leakage share against no DA, one-sided, Holm across these tests only.
DA_PRIMARIES = (_leaks("vflip", "of samples upside down"), _leaks("negpos", "of samples colour-inverted"))
# An arm is a DA choice; arms are compared within a dataset and DA count, against no DA.
# An arm with augmentation at D's input (d_aug) is told apart by it; the baseline is no DA with d_aug none.
DA_DESIGN = Design(arm_fields=("da", "n_aug", "pair_ratio", "d_aug"), group_by=("dataset", "n_aug"), baseline=NONE,
                   primaries=DA_PRIMARIES)
# The pairing-ratio grid and the Optuna search have no vflip or negpos arm to test: they are exploratory.
DA_SEARCH_DESIGN = dataclasses.replace(DA_DESIGN, primaries=())
SEARCH_STUDIES = ("ratios", "optuna-da")  # the presets of DA_SEARCH_DESIGN; every other DA preset has DA_DESIGN
# demo-daug asks the same transform twice: vflip added to the dataset leaks (expected), and ADA, whose rotate90 at
# k = 2 shows D upside-down faces, does not (expected at p < 0.8: its answer must say what it could have detected).
DAUG_DESIGN = dataclasses.replace(DA_DESIGN, primaries=(
    _leaks("vflip", "of samples upside down"),
    _leaks("vflip", "of samples upside down", d_aug="ada", name="ada-leaks-vflip", text="ADA leaks vflip")))

# ----------------------------------------------------------------------------------------------------------------------
# Settings: every non-arm TrialConfig value a preset sets. Overrides replace any of them.

# The published runs, sized for a GPU cluster (not timed here; far too slow for a CPU). Resolution 64x64, not 128:
# the study resized its photos to 128x128 but trained "the common GAN configuration" of its ref. [3] without naming
# a training resolution; 64x64 is the DCGAN of Radford et al., IS/FID resize samples to 299 anyway, and a 64x64 step
# has a quarter of the pixels and one layer fewer per network. `--image-size 128` gives the study's photo size.
# Inception-v3 features, because published IS/FID numbers use them.
GPU_SETTINGS = dict(
    image_size=64,
    steps=20_000,  # ~640 passes over a 2000-image set at batch 64
    batch_size=64,
    g_width=64,
    d_width=64,
    eval_every=1000,
    eval_samples=5000,  # the study scored 1000 samples; 5000 shrinks FID's bias (eval_samples=1000 to match)
    is_splits=10,
    extractor="inception",
    n_heldout=5000,  # the reference: CelebA can spare them (a smaller source sets its own; see POMERANIAN)
)

# The `demo-grid` study: the paper's 12 arms on the embedded LFW subset, sized so that 3 seeds (36 trials, 3 donors)
# run end to end in about five minutes on a 2-core CPU: the machinery, not an answer. Of the 100 faces, 64 train and
# the other 36 are the held-out reference. donor_steps follows steps unless set here.
DEMO_GRID_SETTINGS = dict(
    dataset="lfw-subset",
    n_real=64,
    n_heldout=36,
    image_size=32,
    steps=300,
    batch_size=16,
    g_width=16,
    d_width=16,
    lr=1e-3,  # 5x DCGAN's 2e-4: in 300 steps of width 16 the faster rate is the one that draws faces
    eval_every=300,  # one evaluation, at the end: an effnet pass costs as much as ~70 of these training steps
    eval_samples=36,  # as many as the held-out reference holds
    is_splits=4,
    extractor="effnet",
)

# The `demo` study answers study 1's leakage question on the same faces: does vflip leak vflip, negpos leak negpos?
# Only the arms those hypotheses need (no DA, vflip@64, negpos@64: 64 real + 64 transformed, so a generator that
# fits its mixture draws half its samples transformed) and the budget spent on seeds (`DEMO_SEEDS`). Trained long
# enough to draw faces, evaluated 3 times per trial (curves and a moving image grid in MLflow).
DEMO_SETTINGS = dict(
    DEMO_GRID_SETTINGS,
    steps=750,
    lr=5e-4,
    eval_every=250,
)
DEMO_SEEDS = 6  # paired by seed, 6 seeds give an exact sign-flip p of 1/64 when every seed agrees
DEMO_ARMS = ("none", "vflip", "negpos")  # the baseline and the two arms of the primary hypotheses, each at 1x n_real

CELEBA = dict(dataset="celeba:data/celeba", n_real=1000)
# The study took 1000 Pomeranians from Oxford-IIIT Pet *and* a Google image search: Oxford alone has about 200, so
# the default is a folder you fill with 1000 Pomeranian photos, of which 800 train and 200 are the held-out reference
# (DA counts scale with n_real: 800 and 1600). Oxford only: --dataset oxford-pet:data/oxford-pet:Pomeranian with
# n_real + n_heldout at most its size, e.g. --set n_real=160 --set n_heldout=40.
POMERANIAN = dict(dataset="folder:data/pomeranian", n_real=800, n_heldout=200)


# ----------------------------------------------------------------------------------------------------------------------
# Arms


@dataclass(frozen=True)
class Arm:
    """One ablation arm: a DA choice, its count as a multiple of n_real, the pair split, and the augmentation at
    the discriminator's input (gan.daug)."""

    da: str  # 'none', 'hflip', 'contrast+hflip'
    count: float  # DA count / n_real (0 for none)
    pair_ratio: float = 0.5  # share of the first type in a pair
    d_aug: str = "none"  # none | diffaugment | ada

    def resolve(self, settings: dict) -> dict:
        return {"da": self.da, "n_aug": int(self.count * settings["n_real"] + 0.5), "pair_ratio": self.pair_ratio,
                "d_aug": self.d_aug}

    def label(self, settings: dict) -> str:
        """As errors name it: 'none', 'hflip@1000', 'contrast+hflip@2000 ratio 0.25', 'vflip@1000+ada'."""
        fields = self.resolve(settings)
        ratio = f" ratio {self.pair_ratio:g}" if "+" in self.da else ""
        label = arm_label(self.da, fields["n_aug"], 0.5) + ratio
        return label if self.d_aug == "none" else self.d_aug if label == NONE else f"{label}+{self.d_aug}"


SINGLES = ("contrast", "negpos", "hflip", "vflip", "generated")
# The study paired only the types that did not leak into the generator (negpos and vflip did).
PAIRED = ("contrast", "hflip", "generated")
PAIRS = tuple(f"{a}+{b}" for i, a in enumerate(PAIRED) for b in PAIRED[i + 1:])


def paper_arms() -> list[Arm]:
    """The study's 12 arms: no DA; each single type at 1x n_real; each pair 1:1 at 1x and 2x n_real."""
    return [Arm("none", 0), *(Arm(t, 1) for t in SINGLES), *(Arm(p, c) for c in (1, 2) for p in PAIRS)]


RATIOS = (0.25, 0.5, 0.75)
RATIO_COUNTS = (0.5, 1, 2)


def ratio_arms() -> list[Arm]:
    """No DA, and each pair at every ratio in RATIOS and every count in RATIO_COUNTS (x n_real): 1 + 27 arms."""
    return [Arm("none", 0), *(Arm(p, c, r) for p in PAIRS for c in RATIO_COUNTS for r in RATIOS)]


# ----------------------------------------------------------------------------------------------------------------------
# Augmentation at the discriminator's input (gan.daug): the field's answer to study 1, on the same seeds as its arms


def daug_arms() -> list[Arm]:
    """DiffAugment and ADA on the real set alone, and each with the leaking vflip added to the dataset at 1x (4 arms).
    Their baseline is still `none` (no DA, d_aug none)."""
    return [Arm("none", 0, d_aug="diffaugment"), Arm("none", 0, d_aug="ada"),
            Arm("vflip", 1, d_aug="ada"), Arm("vflip", 1, d_aug="diffaugment")]


# The `demo-daug` study: DEMO_SETTINGS, with ADA's speed scaled to its 300 steps x 16 images (stylegan2-ada's
# 500k images would leave p near 0): p can go from 0 to 1 in 4800 images, one run's worth.
DEMO_DAUG_SETTINGS = dict(DEMO_SETTINGS, ada_images=4800)


def demo_daug_arms() -> list[Arm]:
    """No DA, vflip added to the dataset, DiffAugment, ADA, and vflip added with ADA and with DiffAugment."""
    return [Arm("none", 0), Arm("vflip", 1), *daug_arms()]


def demo_daug(*, seeds: int | None = None, **kw) -> GridStudy:
    return grid_study(
        "demo-daug",
        "Dataset DA against augmentation at the discriminator's input on the embedded LFW subset (the demo's "
        f"settings: 64 training faces, 36 held out, 32x32 width-16 DCGANs, {DEMO_SETTINGS['steps']} steps): none, "
        f"vflip@64, DiffAugment, ADA (p from 0 to 1 in {DEMO_DAUG_SETTINGS['ada_images']} images), vflip@64 + ADA, "
        f"vflip@64 + DiffAugment; {DEMO_SEEDS} seeds. Does vflip leak into the generator when added to the dataset, "
        "and when D sees upside-down images through ADA (its rotate90 with k = 2 is a vflip of the mirrored face) "
        "at p < 0.8? Ranked by KID; read leakage_vflip beside it.",
        DAUG_DESIGN, [DEMO_DAUG_SETTINGS], demo_daug_arms(), seeds=DEMO_SEEDS if seeds is None else seeds, **kw)


# ----------------------------------------------------------------------------------------------------------------------
# Presets


def _paper_description(where: str) -> str:
    return (f"The published DA ablation on n_real real images ({where}): no DA; contrast, negpos, hflip, vflip and "
            "generated, each adding n_real images; and the pairs of contrast, hflip and generated mixed 1:1 at n_real "
            "and 2 n_real added images (the study's 12 arms); then DiffAugment and ADA at the discriminator's input "
            "on the real set alone and with vflip at n_real (4 arms). GPU-cluster settings: 64x64 DCGAN (the study's "
            "GAN architecture; "
            "--image-size 128 for its resolution), 20k steps at batch 64, Inception IS/FID/KID on 5000 samples "
            "every 1000 steps, against held-out images (5000 CelebA faces; 200 Pomeranians). Ranked by KID.")


def paper_celeba(**kw) -> GridStudy:
    return grid_study("paper-celeba", _paper_description("1000 CelebA faces"), DA_DESIGN, [{**GPU_SETTINGS, **CELEBA}],
                      paper_arms() + daug_arms(), **kw)


def paper_pomeranian(**kw) -> GridStudy:
    return grid_study("paper-pomeranian", _paper_description("800 Pomeranians of a 1000-image "
                                                             "folder, default folder:data/pomeranian, the other 200 "
                                                             "held out"), DA_DESIGN,
                      [{**GPU_SETTINGS, **POMERANIAN}], paper_arms() + daug_arms(), **kw)


def paper(**kw) -> GridStudy:
    return grid_study("paper", _paper_description("CelebA and Pomeranians, 32 arms in all; override the datasets "
                                                  "with two --dataset values in that order"), DA_DESIGN,
                      [{**GPU_SETTINGS, **CELEBA}, {**GPU_SETTINGS, **POMERANIAN}], paper_arms() + daug_arms(), **kw)


def demo(*, seeds: int | None = None, **kw) -> GridStudy:
    return grid_study(
        "demo",
        "Does vflip leak into the generator, does negpos? No DA, vflip@64 and negpos@64 on the embedded LFW subset "
        "(64 training faces, the other 36 held out as the reference), 32x32 width-16 DCGANs trained "
        f"{DEMO_SETTINGS['steps']} steps and evaluated every {DEMO_SETTINGS['eval_every']}, EfficientNet-Lite0 "
        f"metrics and the leakage probe on 36 samples, {DEMO_SEEDS} seeds: about five minutes on 2 CPU cores, no "
        "downloads. Ranked by KID.",
        DA_DESIGN, [DEMO_SETTINGS], [Arm(da, 0 if da == NONE else 1) for da in DEMO_ARMS],
        seeds=DEMO_SEEDS if seeds is None else seeds, **kw)


def demo_grid(**kw) -> GridStudy:
    return grid_study(
        "demo-grid",
        "The paper's 12 arms scaled to the embedded LFW subset: 64 training faces (DA counts 64 and 128), the other "
        "36 held out as the reference, 32x32, width-16 DCGANs trained 300 steps, EfficientNet-Lite0 metrics on 36 "
        "samples, 3 seeds: about five minutes on 2 CPU cores, no downloads. Exercises the whole machinery; too "
        "short to answer anything. Ranked by KID.",
        DA_DESIGN, [DEMO_GRID_SETTINGS], paper_arms(), **kw)


def ratios(**kw) -> GridStudy:
    return grid_study(
        "ratios",
        "Pairing ratios: each pair of contrast, hflip and generated with the first type's share at 0.25, 0.5 and "
        "0.75, adding 0.5x, 1x and 2x n_real images, plus no DA (28 arms; flips past n_real repeat base images). "
        "CelebA, GPU settings as paper-celeba. Ranked by KID.",
        DA_SEARCH_DESIGN, [{**GPU_SETTINGS, **CELEBA, "allow_repeats": True}], ratio_arms(), **kw)


def optuna_da(**kw) -> OptunaStudy:
    return optuna_study(
        "optuna-da",
        "Optuna TPE over DA choices: none, each single type or any pair of the five types; for a pair, the first "
        "type's share (0.25-0.75); the DA count (0.5x, 1x, 2x n_real). 30 trials by default on CelebA, GPU "
        "settings as paper-celeba. Minimises KID (--metric is_mean_<extractor> --mode max to maximise IS).",
        DA_SEARCH_DESIGN, {**GPU_SETTINGS, **CELEBA, "allow_repeats": True}, **kw)



DA_STUDIES = {"paper": paper, "paper-celeba": paper_celeba, "paper-pomeranian": paper_pomeranian, "demo": demo,
              "demo-grid": demo_grid, "demo-daug": demo_daug, "ratios": ratios, "optuna-da": optuna_da}
# Each preset's design, known without building it (`search_spaces.design_of`).
DA_DESIGNS = {n: DA_SEARCH_DESIGN if n in SEARCH_STUDIES else DAUG_DESIGN if n == "demo-daug" else DA_DESIGN
              for n in DA_STUDIES}

"""gan.metrics.memorisation: known answers on features drawn from one distribution (a copier scores 1, held-out
images exactly the quantile, fresh draws about it), and end to end through `compute_metrics` on real faces."""

import dataclasses

import pytest
import torch

from gan import metrics
from gan.metrics import schema
from gan.metrics.memorisation import QUANTILE, memorisation_probe, nearest_distance
from gan.realsets import load_split


def gaussian(n: int, seed: int, d: int = 16) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_nearest_distance_matches_a_direct_computation():
    q, t = gaussian(7, 1, 3), gaussian(11, 2, 3)
    direct = torch.tensor([min(float(torch.linalg.norm(a.double() - b.double())) for b in t) for a in q],
                          dtype=torch.float64)
    assert torch.allclose(nearest_distance(q, t, batch=3), direct)


def test_a_copier_scores_1_held_out_images_the_quantile_and_fresh_draws_about_it():
    train, heldout = gaussian(200, 0), gaussian(400, 1)
    probe = memorisation_probe(train, heldout, "effnet")
    assert probe.score(train) == {"memorisation": 1.0}  # every sample at distance 0
    assert probe.score(heldout)["memorisation"] == pytest.approx(QUANTILE)  # 20 of 400 below their own 5th percentile
    fresh = probe.score(gaussian(4000, 2))["memorisation"]
    assert 0.02 < fresh < 0.09  # the threshold is estimated from 400 distances: about 0.05, not exactly
    half = probe.score(torch.cat([train[:100], gaussian(100, 3)]))["memorisation"]
    assert 0.5 <= half < 0.6  # half copies, half fresh
    assert 0.0 < probe.heldout_score < 0.15  # the floor: one held-out half against the other half's threshold


def test_too_few_held_out_images_is_one_line():
    with pytest.raises(ValueError, match="needs at least 4 held-out images, got 3"):
        memorisation_probe(gaussian(10, 0), gaussian(3, 1), "effnet")


def test_the_key_names_its_extractor_and_is_never_ranked():
    assert schema.known("memorisation_effnet") and schema.known("memorisation_inception")
    assert schema.direction("memorisation_effnet") is None
    assert schema.extractor_of("memorisation_inception") == "inception"


def test_compute_metrics_reports_memorisation_on_real_faces():
    """EfficientNet features of the embedded LFW faces: the training faces themselves score 1, the held-out faces
    the quantile's share (their own threshold), and the score rides on the reference like the leakage probe."""
    train, heldout = load_split("lfw-subset", 60, 40, 32, seed=0, cache_dir=False)
    extractor = metrics.get_extractor("effnet", "cpu")
    train_stats = metrics.reference_stats(train.images, extractor, cache_dir=False)
    reference = metrics.reference_stats(heldout.images, extractor, cache_dir=False)
    probe = memorisation_probe(train_stats.pool, reference.pool, "effnet")
    reference = dataclasses.replace(reference, memorisation=probe)
    copied = metrics.compute_metrics(train.images[:40], extractor, reference, splits=2)
    assert copied["memorisation_effnet"] == 1.0
    fresh = metrics.compute_metrics(heldout.images, extractor, reference, splits=2)
    assert fresh["memorisation_effnet"] == pytest.approx(2 / 40)  # 40 distances: 2 strictly below the 5th percentile
    assert "memorisation_effnet" not in metrics.compute_metrics(heldout.images, extractor,
                                                                dataclasses.replace(reference, memorisation=None),
                                                                splits=2)


def test_the_report_section_shows_each_arm_over_seeds_and_the_floor():
    import pandas as pd

    from search_spaces.da import DA_DESIGN
    from sweep.report.memorisation import memorisation_section

    finals = pd.DataFrame([
        {"arm": arm, "seed": s, "outcome": "finished", "dataset": "lfw-subset", "n_aug": n, "memorisation_effnet": v}
        for arm, n, vals in (("none", 0, (0.1, 0.2, 0.3)), ("hflip@64", 64, (1.0, 1.0, 1.0)))
        for s, v in enumerate(vals)])
    inputs = [{"floor": {"memorisation_effnet": x}} for x in (0.04, 0.06)]
    text = "\n".join(memorisation_section(finals, DA_DESIGN, "effnet", inputs))
    assert text.startswith("## Memorisation")
    assert "| dataset=lfw-subset, n_aug=0 | none | 0.200 ± 0.248 | 3 |" in text  # t(2) 4.303 x 0.1/sqrt(3)
    assert "| dataset=lfw-subset, n_aug=64 | hflip@64 | 1.000 ± 0.000 | 3 |" in text
    assert "| – | held-out images (floor) | 0.050 ± 0.127 | 2 |" in text  # t(1) 12.71 x 0.01
    assert memorisation_section(finals.drop(columns="memorisation_effnet"), DA_DESIGN, "effnet", inputs) == []

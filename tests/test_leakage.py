"""gan.leakage: the probe tells vflipped faces from real ones and cannot tell hflipped ones (effnet on the embedded
LFW faces, judged on faces it was not trained on), it ships as plain tensors, it is cached, and compute_metrics
scores it on the evaluation's own features."""

import math
import pickle

import pytest
import torch

from gan import leakage
from gan.augment import AUGMENTATIONS
from gan.metrics import compute_metrics, get_extractor, reference_stats, schema
from tests.test_metrics import CountingExtractor, photo_crops

N_FIT = 60  # faces the probe is trained on; the other 40 of the 100 are held out


@pytest.fixture(scope="module")
def faces():
    """The probe (vflip and hflip) fitted on 60 faces, and effnet features of the 40 held-out faces: original,
    vflipped, hflipped. One extractor pass per image set, shared by every test here."""
    from gan import realsets

    images = realsets.load_real("lfw-subset", 100, 32, seed=0, cache_dir=False).images  # effnet upscales to 224
    ext = get_extractor("effnet")
    pool = ext.features(images)["pool"]
    probe = leakage.fit_probe(images[:N_FIT], ext, real_pool=pool[:N_FIT], da=("vflip", "hflip"), seed=0)
    held = images[N_FIT:]
    g = torch.Generator()
    return {"probe": probe, "original": pool[N_FIT:],
            "vflip": ext.features(AUGMENTATIONS["vflip"](held, g))["pool"],
            "hflip": ext.features(AUGMENTATIONS["hflip"](held, g))["pool"]}


def test_vflipped_faces_score_near_one_and_real_faces_near_zero(faces):
    probe = faces["probe"]
    assert probe.score(faces["vflip"])["leakage_vflip"] >= 0.85
    assert probe.score(faces["original"])["leakage_vflip"] <= 0.2
    t = probe.da.index("vflip")
    assert probe.tpr[t] - probe.fpr[t] > 0.6  # the probe's own cross-validated rates agree


def test_hflip_stays_near_chance_on_faces(faces):
    probe = faces["probe"]
    flipped, original = probe.score(faces["hflip"]), probe.score(faces["original"])
    assert abs(flipped["leakage_hflip"] - original["leakage_hflip"]) < 0.25
    # the intervals of "all flipped" and "none flipped" overlap: the probe cannot tell them apart
    assert flipped["leakage_hflip_ci_lo"] < original["leakage_hflip_ci_hi"]
    assert original["leakage_hflip_ci_lo"] < flipped["leakage_hflip_ci_hi"]
    t = probe.da.index("hflip")
    assert abs(probe.tpr[t] - probe.fpr[t]) < 0.3


def test_probe_is_plain_tensors_small_and_reads_back_with_weights_only(faces, tmp_path):
    probe = faces["probe"]
    assert len(pickle.dumps(probe)) < 2 * 70_000  # ~3 x 1280 float64 per DA type
    torch.save(probe.to_dict(), tmp_path / "probe.pt")
    again = leakage.LeakageProbe.from_dict(torch.load(tmp_path / "probe.pt", weights_only=True))
    assert again.da == probe.da and again.tpr == probe.tpr and again.extractor == "effnet"
    assert torch.equal(again.transformed(faces["vflip"]), probe.transformed(faces["vflip"]))
    assert again.score(faces["original"]) == probe.score(faces["original"])


def test_wilson_interval_is_scipys_wilson_score_interval():
    k, n, z = 7, 40, 1.959963984540054
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    assert leakage.wilson_interval(k, n) == pytest.approx((centre - half, centre + half), rel=1e-9)
    assert leakage.wilson_interval(0, 40)[0] == 0.0 and leakage.wilson_interval(40, 40)[1] == pytest.approx(1.0)


# --- plumbing with a cheap extractor ----------------------------------------------------------------------------------

def test_compute_metrics_scores_the_attached_probe_on_the_same_features(tmp_path):
    ext = CountingExtractor()
    real, fake = photo_crops(20, size=16, seed=2), photo_crops(30, size=16, seed=1)
    ref = leakage.with_leakage(reference_stats(real, ext, cache_dir=tmp_path), real, ext, cache_dir=tmp_path)
    assert ref.leakage.da == schema.LEAKAGE_DA and ref.leakage.n_real == 20
    calls = ext.calls
    scores = compute_metrics(fake, ext, ref, splits=3)
    assert ext.calls == calls + 1  # one extractor pass scores everything, leakage included
    assert set(scores) == set(schema.extractor_keys("toy", with_leakage=True))
    expected = ref.leakage.score(ext.features(fake)["pool"])
    for da in schema.LEAKAGE_DA:
        share, lo, hi = (f"leakage_{da}", f"leakage_{da}_ci_lo", f"leakage_{da}_ci_hi")
        assert scores[f"{share}_toy"] == expected[share]
        assert 0 <= scores[f"{lo}_toy"] <= scores[f"{share}_toy"] <= scores[f"{hi}_toy"] <= 1


def test_probe_is_fitted_once_and_cached_on_disk(tmp_path, monkeypatch):
    ext = CountingExtractor()
    real = photo_crops(10, size=16, seed=3)
    ref = reference_stats(real, ext, cache_dir=tmp_path)
    calls = ext.calls
    first = leakage.leakage_probe(real, ext, reference=ref, cache_dir=tmp_path)
    assert ext.calls == calls + len(schema.LEAKAGE_DA)  # the originals' features come from the reference
    assert (tmp_path / "leakage" / f"{ref.key}-toy-seed0.pt").is_file()
    assert leakage.leakage_probe(real, ext, reference=ref, cache_dir=tmp_path) is first  # in-process memo
    monkeypatch.setattr(leakage, "_PROBE_MEMO", {})  # a new process: reads the file, fits nothing

    def no_fit(*args, **kwargs):
        raise AssertionError("refitted instead of reading the cache")

    monkeypatch.setattr(leakage, "fit_probe", no_fit)
    again = leakage.leakage_probe(real, ext, reference=ref, cache_dir=tmp_path)
    assert torch.equal(again.coef, first.coef) and again.c == first.c


def test_probe_errors_say_what_is_allowed(tmp_path):
    ext = CountingExtractor()
    real = photo_crops(10, size=16, seed=3)
    with pytest.raises(ValueError, match="allowed: vflip, negpos, contrast, hflip"):
        leakage.fit_probe(real, ext, da=("generated",))
    with pytest.raises(ValueError, match="at least 5 real images"):
        leakage.fit_probe(real[:4], ext)
    ref = reference_stats(real, ext, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="reference statistics were made with"):
        leakage.with_leakage(ref, real, CountingExtractor(weights_id="other"), cache_dir=tmp_path)

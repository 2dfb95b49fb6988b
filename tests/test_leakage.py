"""gan.leakage, proven by controls on the embedded LFW faces (the demo's data) and on noise:

- positive control, no training: held-out faces with a known share q in {0, 0.25, 0.5} vflipped (negpos'd) score q
  within 0.07, and within 0.07 of m tpr + (1 - m) fpr from the probe's nested-CV rates; a second instrument with
  nothing fitted (a template check) reads the same shares;
- negative control: held-out real faces score the probe's nested-CV false-positive rate;
- blind probes say so: on noise no type is measurable, on faces contrast is not, and neither reports a share;
- the rates are nested: every image is judged by a model (and a C) fitted without it; on noise the in-sample rates of
  the same classifier look perfect while the nested ones stay at chance;
- the pairwise call cancels what x and T x share (a blur and a grey shift no generator-free probe would expect);
- plumbing: compute_metrics scores the attached probe on the trial's images, the probe is cached, errors name what is
  allowed; grey data stays grey in the generator.
"""

import dataclasses
import math
import pickle

import numpy as np
import pytest
import torch

from gan import leakage, methods
from gan.metrics import compute_metrics, reference_stats, schema
from gan.models.dcgan import build_dcgan
from tests.test_metrics import CountingExtractor, photo_crops

N_FIT = 60  # faces the probe is fitted on; the other 40 of the 100 are held out
TOLERANCE = 0.07  # the positive control's allowed error on a known share


@pytest.fixture(scope="module")
def faces():
    """The probe fitted on 60 LFW faces (32x32, as the demo trains) and the 40 held-out faces."""
    from gan import realsets

    images = realsets.load_real("lfw-subset", 100, 32, seed=0, cache_dir=False).images
    return {"probe": leakage.fit_probe(images[:N_FIT], seed=0), "fit": images[:N_FIT], "held": images[N_FIT:]}


def mixed(images, da, q, seed=7):
    """`images` with the first round(q n) of them transformed by `da`."""
    k = int(round(q * len(images)))
    return torch.cat([leakage.transform(images[:k], da, seed), images[k:]])


@pytest.mark.parametrize("da", ["vflip", "negpos"])
def test_positive_control_recovers_a_known_share_of_transformed_faces(faces, da):
    probe, held = faces["probe"], faces["held"]
    assert probe.measurable(da)
    key = schema.leakage_keys(None, da)[0]
    for q in (0.0, 0.25, 0.5):
        score = probe.score(mixed(held, da, q))[key]
        assert abs(score - q) <= TOLERANCE, (da, q, score)
        t = probe.da.index(da)
        assert abs(score - (q * probe.tpr[t] + (1 - q) * probe.fpr[t])) <= TOLERANCE  # the nested-CV rates agree


@pytest.mark.parametrize("da", ["vflip", "negpos"])
def test_a_template_check_agrees_with_the_probe_on_the_positive_control(faces, da):
    """An instrument with nothing fitted (the mean face against the mean transformed face) reads the same shares."""
    probe, held = faces["probe"], faces["held"]
    for q in (0.0, 0.25, 0.5):
        images = mixed(held, da, q)
        template = float(leakage.template_calls(faces["fit"], images, da).float().mean())
        assert abs(template - q) <= TOLERANCE, (da, q, template)
        assert abs(template - probe.score(images)[schema.leakage_keys(None, da)[0]]) <= TOLERANCE


def test_negative_control_real_faces_score_the_probes_false_positive_rate(faces):
    probe = faces["probe"]
    scores = probe.score(faces["held"])
    for t, da in enumerate(probe.da):
        if not probe.measurable(da):
            continue
        share = scores[schema.leakage_keys(None, da)[0]]
        assert abs(share - probe.fpr[t]) <= TOLERANCE, (da, share, probe.fpr[t])


def test_involutions_call_an_image_and_its_transform_oppositely(faces):
    probe = faces["probe"]
    for t, da in enumerate(probe.da):
        if da in ("vflip", "negpos", "hflip"):  # T T x = x: s(x) > s(Tx) for exactly one of x, Tx
            assert probe.tpr[t] == pytest.approx(1 - probe.fpr[t])
            held = faces["held"]
            both = probe.calls(torch.cat([held, leakage.transform(held, da, 0)]))[t]
            assert torch.equal(both[:len(held)], ~both[len(held):])


def test_blind_probes_report_not_measurable_and_no_share(faces):
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (40, 1, 32, 32), generator=g, dtype=torch.uint8).expand(-1, 3, -1, -1).contiguous()
    blind = leakage.fit_probe(noise, seed=0)
    for da in schema.LEAKAGE_DA:  # noise looks the same upside down, mirrored, inverted or contrast-changed
        assert not blind.measurable(da) and blind.separation(da) < leakage.MIN_SEPARATION
    scores = blind.score(noise[:20])
    assert scores == {schema.leakage_measurable_key(da): 0.0 for da in schema.LEAKAGE_DA}
    assert blind.expected(noise) == {}
    probe = faces["probe"]  # on faces: contrast (a random factor, up or down) is invisible to a linear probe
    assert not probe.measurable("contrast")
    face_scores = probe.score(faces["held"])
    assert face_scores[schema.leakage_measurable_key("contrast")] == 0.0
    assert schema.leakage_keys(None, "contrast")[0] not in face_scores
    assert probe.rates()[schema.leakage_keys(None, "contrast")[0]]["measurable"] is False


def test_rates_are_nested_every_image_is_judged_by_a_fit_that_never_saw_it(monkeypatch):
    g = torch.Generator().manual_seed(1)
    noise = torch.randint(0, 256, (40, 1, 32, 32), generator=g, dtype=torch.uint8).expand(-1, 3, -1, -1).contiguous()
    seen = []
    search = leakage._search

    def recording(x, y, groups):
        seen.append(set(groups.tolist()))
        return search(x, y, groups)

    monkeypatch.setattr(leakage, "_search", recording)
    probe = leakage.fit_probe(noise, da=("vflip",), seed=0)
    outer, final = seen[:-1], seen[-1]
    assert len(outer) == leakage.FOLDS and final == set(range(40))  # the shipped probe: the same search on all
    left_out = [set(range(40)) - s for s in outer]  # C is chosen inside each outer fit, on its rows only
    assert sorted(i for s in left_out for i in s) == list(range(40))  # each image held out exactly once
    # In sample the same classifier separates noise from flipped noise perfectly; held out it is at chance.
    x0, x1 = (leakage.luma_pixels(v).numpy() for v in (noise, noise.flip(-2)))
    model = search(np.concatenate([x0, x1]), np.r_[np.zeros(40), np.ones(40)], np.r_[np.arange(40), np.arange(40)])
    assert (model.decision_function(x0) < model.decision_function(x1)).mean() >= 0.9
    assert abs(probe.separation("vflip")) < leakage.MIN_SEPARATION


def test_pairwise_call_cancels_what_an_image_and_its_transform_share(faces):
    """Blurred, brightened faces (as an undertrained generator draws them) are no more "flipped" than real ones:
    the probe value itself moves, but an image and its flip move alike."""
    import torchvision.transforms.v2.functional as TF

    probe, held = faces["probe"], faces["held"]
    t = probe.da.index("vflip")
    odd = (TF.gaussian_blur(held, [5, 5], [1.5, 1.5]).int() + 50).clamp(0, 255).to(torch.uint8)
    shift = (probe.decision(odd)[t] - probe.decision(held)[t]).abs().mean()
    assert shift > 1.0  # the artefact moves the probe's value...
    calls = probe.calls(odd)[t].float().mean()
    assert calls <= probe.fpr[t] + TOLERANCE  # ...not the call
    assert probe.calls(mixed(odd, "vflip", 0.5))[t].float().mean() == pytest.approx(0.5, abs=TOLERANCE)


def test_probe_is_plain_tensors_small_and_reads_back_with_weights_only(faces, tmp_path):
    probe = faces["probe"]
    assert len(pickle.dumps(probe)) < 60_000  # 4 types x 3 x 256 float64
    torch.save(probe.to_dict(), tmp_path / "probe.pt")
    again = leakage.LeakageProbe.from_dict(torch.load(tmp_path / "probe.pt", weights_only=True))
    assert again.da == probe.da and again.tpr == probe.tpr and again.version == leakage.VERSION
    assert torch.equal(again.calls(faces["held"]), probe.calls(faces["held"]))


def test_wilson_interval_is_scipys_wilson_score_interval():
    k, n, z = 7, 40, 1.959963984540054
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    assert leakage.wilson_interval(k, n) == pytest.approx((centre - half, centre + half), rel=1e-9)
    assert leakage.wilson_interval(0, 40)[0] == 0.0 and leakage.wilson_interval(40, 40)[1] == pytest.approx(1.0)


# --- plumbing with a cheap extractor ----------------------------------------------------------------------------------

def test_compute_metrics_scores_the_attached_probe_on_the_trials_images(tmp_path, faces):
    ext = CountingExtractor()
    ref = dataclasses.replace(reference_stats(faces["held"], ext, cache_dir=tmp_path), leakage=faces["probe"])
    fake = mixed(faces["held"][20:], "vflip", 0.5)
    scores = compute_metrics(fake, ext, ref, splits=3)
    expected = ref.leakage.score(fake)
    assert set(scores) == set(schema.extractor_keys("toy")) | set(expected)
    assert set(expected) <= set(schema.LEAKAGE_KEYS)
    for key, value in expected.items():
        assert scores[key] == value and schema.known(key) and schema.extractor_of(key) is None


def test_probe_is_fitted_once_and_cached_on_disk(tmp_path, monkeypatch):
    real = photo_crops(10, size=16, seed=3)
    first = leakage.leakage_probe(real, cache_dir=tmp_path, key="k")
    assert (tmp_path / "leakage" / f"k-luma{leakage.PROBE_SIZE}-v{leakage.VERSION}-seed0.pt").is_file()
    assert leakage.leakage_probe(real, cache_dir=tmp_path, key="k") is first  # in-process memo
    monkeypatch.setattr(leakage, "_PROBE_MEMO", {})  # a new process: reads the file, fits nothing

    def no_fit(*args, **kwargs):
        raise AssertionError("refitted instead of reading the cache")

    monkeypatch.setattr(leakage, "fit_probe", no_fit)
    again = leakage.leakage_probe(real, cache_dir=tmp_path, key="k")
    assert torch.equal(again.coef, first.coef) and again.c == first.c


def test_probe_errors_say_what_is_allowed(tmp_path):
    real = photo_crops(10, size=16, seed=3)
    with pytest.raises(ValueError, match="allowed: vflip, negpos, contrast, hflip"):
        leakage.fit_probe(real, da=("generated",))
    with pytest.raises(ValueError, match="at least 5 real images"):
        leakage.fit_probe(real[:4])
    with pytest.raises(ValueError, match="reads uint8 images"):
        leakage.luma_pixels(real.float())
    ref = reference_stats(real, CountingExtractor(), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="the reference holds 10 images"):
        leakage.with_leakage(ref, real[:5], cache_dir=tmp_path)


def test_schema_names_the_leakage_keys_by_their_instrument():
    assert schema.LEAKAGE_DA == ("vflip", "negpos", "contrast", "hflip")
    share, lo, hi = schema.leakage_keys("effnet", "vflip")
    assert (share, lo, hi) == ("leakage_vflip_luma", "leakage_vflip_ci_lo_luma", "leakage_vflip_ci_hi_luma")
    assert schema.leakage_keys(None, "vflip") == (share, lo, hi)  # the probe reads pixels: no extractor in the key
    assert schema.leakage_expected_key("negpos") == "leakage_negpos_expected_luma"
    assert schema.leakage_measurable_key("hflip") == "leakage_hflip_measurable_luma"
    assert schema.direction(share) == "min" and schema.direction(schema.leakage_expected_key("vflip")) is None
    assert share not in schema.extractor_keys("effnet")
    with pytest.raises(ValueError, match="allowed: vflip, negpos, contrast, hflip"):
        schema.leakage_keys("effnet", "generated")


# --- grey data stays grey ---------------------------------------------------------------------------------------------

def test_a_generator_trained_on_grey_images_outputs_grey_and_on_colour_colour(faces):
    G, _ = build_dcgan(32, 16, 8, 8)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    colour = G(z)
    methods.match_grey({"G": G}, faces["held"])  # LFW faces: three equal channels
    assert bool(G.grey) and torch.equal(G(z)[:, 0], G(z)[:, 2]) and torch.equal(G(z)[:, 0], G(z)[:, 1])
    assert torch.allclose(G(z)[:, 0], colour.mean(1))
    methods.match_grey({"G": G}, photo_crops(4, size=32))
    assert not bool(G.grey) and torch.equal(G(z), colour)  # colour data: the network is untouched
    methods.match_grey({"G": G}, faces["held"])
    again, _ = build_dcgan(32, 16, 8, 8)
    again.load_state_dict(G.state_dict())  # the flag travels with the weights
    assert bool(again.grey)
    old = {k: v for k, v in G.state_dict().items() if k != "grey"}  # weights saved before the flag: colour
    again.load_state_dict(old)
    assert not bool(again.grey)


def test_a_trial_reports_the_share_its_own_training_mixture_scores(faces, tmp_path):
    """vflip@20 on 20 faces: half the training set is upside down, so a generator that fits it would score about
    0.5 on vflip and the none arm about the probe's FPR."""
    from gan.config import TrialConfig
    from gan.imagetable import ImageSet
    from trainables.arm import expected_leakage, training_data
    from trainables.inputs import TrialInputs

    real = ImageSet.of(faces["held"][:20])
    shared = TrialInputs(real=real, heldout=real, held_out=False, reference=dataclasses.replace(
        reference_stats(real.images, CountingExtractor(), cache_dir=tmp_path), leakage=faces["probe"]))
    key = schema.leakage_expected_key("vflip")
    for da, n_aug, share in (("vflip", 20, 0.5), ("none", 0, 0.0)):
        cfg = TrialConfig(dataset="lfw-subset", n_real=20, image_size=32, da=da, n_aug=n_aug)
        data, _ = training_data(cfg, shared, "cpu")
        expected = expected_leakage(cfg, shared, data)
        assert expected == faces["probe"].expected(data) and abs(expected[key] - share) <= TOLERANCE
        assert schema.leakage_expected_key("contrast") not in expected  # blind: no expected value either

"""trainables.inputs on the CPU without Ray: a trial input with a donor GAN, trained here with a progress line every
tenth of its steps (what a Ray task forwards to the driver), kept under the cache folder it was given and reused."""

from __future__ import annotations

import re

import pytest
import torch

from gan.cache import cache_root
from gan.config import TrialConfig, flat
from gan.realsets import load_split
from trainables import inputs as inputs_module
from trainables.inputs import data_key, donor_config, donor_key, donor_pool_size, load_or_train_donor, prepare_inputs

DONOR_STEPS = 20


def test_donor_progress_lines_and_its_cache_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "elsewhere"))  # must not be used: the call names a folder
    # The leakage probe (half a minute of cross-validated regressions here; tests/test_leakage.py covers it) is not
    # what this test is about: the reference goes through without it.
    monkeypatch.setattr(inputs_module.leakage, "with_leakage", lambda reference, *args, **kwargs: reference)
    cfg = TrialConfig(dataset="lfw-subset", n_real=32, n_heldout=12, da=("generated",), n_aug=32,
                      donor_steps=DONOR_STEPS, g_width=8, d_width=8, batch_size=8, eval_samples=8, is_splits=2, nz=16,
                      precision="fp32")
    real, heldout = load_split(cfg.dataset, cfg.n_real, cfg.n_heldout, cfg.image_size, cfg.seed, cache_dir=False)
    cache = tmp_path / "cache"
    inputs = prepare_inputs([cfg], real, heldout, donor_dir=None, cache_dir=str(cache), device="cpu", threads=1)

    key = donor_key(donor_config(cfg), real)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == (f"gansweep: training the donor GAN {key} ({DONOR_STEPS} steps on 32 images of lfw-subset, "
                        "seed 0)")
    progress = [re.fullmatch(rf"gansweep: donor {key}: step (\d+)/{DONOR_STEPS} \((\d+)%\), [\d.]+ s", line)
                for line in lines[1:]]
    assert all(progress), lines
    assert [(int(m.group(1)), int(m.group(2))) for m in progress] == [(s, 5 * s) for s in range(2, 21, 2)]

    # The donor lives under the cache folder it was given, with its flat config; a second call reuses it silently.
    assert inputs.donor["trained"] and inputs.donor["path"] == str(cache / "donors" / key) == str(
        cache_root(str(cache)) / "donors" / key)
    assert inputs.donor["config"] == flat(donor_config(cfg)) and inputs.generated.shape[0] == donor_pool_size(cfg)
    assert not (tmp_path / "elsewhere").exists()
    again, info = load_or_train_donor(donor_config(cfg), real, None, torch.device("cpu"), cache_dir=str(cache))
    assert not info["trained"] and torch.equal(again, inputs.generated)
    assert capsys.readouterr().err == ""


def test_an_arms_training_set_does_not_depend_on_the_other_arms_of_its_sweep(tmp_path, monkeypatch):
    """The donor pool has one size (twice the real set) whatever the sweep's other arms ask for, so `generated@32`
    composes the same images alone and beside `hflip+generated@64`; and the donor's key follows the real images'
    content, so other real images (even one pixel) make another donor."""
    from gan import augment
    from gan.imagetable import ImageSet

    monkeypatch.setattr(inputs_module.leakage, "with_leakage", lambda reference, *args, **kwargs: reference)
    base = dict(dataset="lfw-subset", n_real=32, n_heldout=12, donor_steps=4, g_width=8, d_width=8, batch_size=8,
                eval_samples=8, is_splits=2, nz=16, precision="fp32")
    alone = TrialConfig(**base, da=("generated",), n_aug=32)
    neighbour = TrialConfig(**base, da=("hflip", "generated"), n_aug=64)
    real, heldout = load_split(alone.dataset, alone.n_real, alone.n_heldout, alone.image_size, alone.seed,
                               cache_dir=False)

    def composed(cfgs, where):
        shared = prepare_inputs(cfgs, real, heldout, donor_dir=str(tmp_path / where), cache_dir=str(tmp_path / "c"),
                                device="cpu", threads=1)
        assert shared.donor["trained"]  # a fresh donor folder each time: trained again, from the same seed
        return augment.compose(shared.real, alone.da, alone.n_aug, pair_ratio=alone.pair_ratio, seed=alone.seed,
                               generated=shared.generated).images

    assert torch.equal(composed([alone], "one"), composed([alone, neighbour], "two"))

    key = donor_key(donor_config(alone), real)
    assert donor_key(donor_config(alone), ImageSet.of(real.images.clone())) == key  # content, not identity
    touched = real.images.clone()
    touched[0, 0, 0, 0] ^= 1
    assert donor_key(donor_config(alone), ImageSet.of(touched)) != key
    assert donor_key(donor_config(alone.replace(donor_steps=5)), real) != key  # and the donor's settings


def test_a_source_that_cannot_spare_the_reference_fails_in_one_line_unless_train_is_asked_for():
    from trainables.inputs import load_real_sets, reference_notes

    cfg = TrialConfig(dataset="lfw-subset", n_real=95, n_heldout=36)  # 100 faces: only 5 left after 95
    with pytest.raises(ValueError) as e:
        load_real_sets([cfg], cache_dir=False)
    assert str(e.value) == ("lfw-subset (seed 0) can spare only 5 held-out images after the 95 training ones, not "
                            "n_heldout = 36; lower n_real or n_heldout, or set reference=train to score against the "
                            "training images")
    with pytest.raises(ValueError, match=r"^n_heldout = 0 leaves no held-out reference \(at least 10\); set "):
        load_real_sets([cfg.replace(n_heldout=0)], cache_dir=False)
    asked = cfg.replace(reference="train")
    real, heldout = load_real_sets([asked], cache_dir=False)[data_key(asked)]
    assert (len(real), len(heldout)) == (95, 5)
    (note,) = reference_notes(asked, real, heldout, held_out=False)
    assert note == ("Reference for lfw-subset (seed 0): the 95 training images themselves (reference=train was asked "
                    "for). A GAN that copies its training images scores as a perfect one here, and no floor can be "
                    "computed.")
    with pytest.raises(ValueError, match="reference 'both' is unknown; allowed: heldout, train"):
        cfg.replace(reference="both")


def test_the_floor_is_scored_at_the_arms_sample_count_or_drops_what_depends_on_it(tmp_path, monkeypatch):
    """With eval_samples <= n_real the floor scores exactly eval_samples training images, every metric kept; with
    more the whole training set is scored and FID / precision / recall are dropped and said so."""
    monkeypatch.setattr(inputs_module.leakage, "with_leakage", lambda reference, *args, **kwargs: reference)
    base = TrialConfig(dataset="lfw-subset", n_real=32, n_heldout=12, eval_samples=24, is_splits=2)
    real, heldout = load_split(base.dataset, base.n_real, base.n_heldout, base.image_size, base.seed, cache_dir=False)
    same = prepare_inputs([base], real, heldout, donor_dir=None, cache_dir=str(tmp_path), device="cpu", threads=1)
    assert same.floor["n_samples"] == 24 and "dropped" not in same.floor
    assert {"fid_effnet", "kid_mean_effnet", "precision_effnet", "recall_effnet"} <= set(same.floor)
    assert not any(n.startswith("Floor for") for n in same.notes)

    more = base.replace(eval_samples=48)
    short = prepare_inputs([more], real, heldout, donor_dir=None, cache_dir=str(tmp_path), device="cpu", threads=1)
    assert short.floor["n_samples"] == 32
    assert short.floor["dropped"] == ["fid_effnet", "precision_effnet", "recall_effnet"]
    assert not {"fid_effnet", "precision_effnet", "recall_effnet"} & set(short.floor)
    assert {"kid_mean_effnet", "is_mean_effnet"} <= set(short.floor)
    assert short.notes[-1] == ("Floor for lfw-subset (seed 0): only 32 training images for the arms' 48 samples, so its "
                               "fid_effnet, precision_effnet, recall_effnet (which depend on the sample count) are "
                               "left out; its KID (unbiased at any count) and IS are shown.")

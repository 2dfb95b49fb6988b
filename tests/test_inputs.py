"""trainables.inputs on the CPU without Ray: a trial input with a donor GAN, trained here with a progress line every
tenth of its steps (what a Ray task forwards to the driver), kept under the cache folder it was given and reused."""

from __future__ import annotations

import re

import torch

from gan.cache import cache_root
from gan.config import TrialConfig, flat
from gan.realsets import load_split
from trainables import inputs as inputs_module
from trainables.inputs import donor_config, donor_key, donor_pool_size, load_or_train_donor, prepare_inputs

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

"""Study 2's library: the method registry, training every method, the SRCNN, the time budget, exact resume, the fixed
resize and the skimage-photos source.

Everything runs on one CPU thread: the box is shared, and a 2-thread torch op waits at every OpenMP barrier for a
descheduled thread, which makes small convolutions 10-20x slower under load (single-threaded results are exact and
reproducible as well).
"""

import dataclasses
import json

import numpy as np
import pytest
import torch

from gan import realsets, sources, train
from gan.config import TrialConfig, flat
from gan.methods import METHODS, RESIZE, TrainData, get_method, method_of, prepare_data, srcnn_quality, to_size
from gan.steps import srcnn_lr, to_float
from gan.checkpoint import build_state, load_state, save_state
from gan.train import eval_noise, generate, sample, train_srcnn, train_steps, train_until

CPU = torch.device("cpu")
STUDY_METHODS = ("dcgan32", "dcgan64", "dcgan128", "stackgan128", "dcgan64+srcnn")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def photos():
    """200 training tiles and 16 held-out ones of skimage-photos at 128x128."""
    return realsets.load_split("skimage-photos", 200, 16, 128, seed=0, cache_dir=False)


@pytest.fixture(scope="module")
def real(photos):
    return photos[0].images[:24]  # enough for tiny GAN runs


def tiny(method: str, **kw) -> TrialConfig:
    """A study-2 trial small enough to step in milliseconds."""
    base = dict(method=method, image_size=128, g_width=4, d_width=4, nz=8, batch_size=4, steps=4, srcnn_steps=3,
                srcnn_patch=16, eval_every=2, seed=0)
    return TrialConfig(**{**base, **kw})


def model_states(state) -> dict:
    return {name: net.state_dict() for name, net in state.nets.items()}


def assert_same_state(a, b):
    """Same networks (parameters and BatchNorm statistics), Adam moments and counters, bit for bit."""
    assert a.nets.keys() == b.nets.keys()
    for name in a.nets:
        sa, sb = a.nets[name].state_dict(), b.nets[name].state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), f"{name} differs"
        oa, ob = a.opts[name].state_dict()["state"], b.opts[name].state_dict()["state"]
        assert oa.keys() == ob.keys()
        assert all(torch.equal(oa[i][k], ob[i][k]) for i in oa for k in oa[i]), f"Adam state of {name} differs"
    assert (a.step, a.sr_step, a.diverged) == (b.step, b.sr_step, b.diverged)


# ---------------------------------------------------------------------------------------------------------------------
# registry and config


def test_registry_has_the_study_methods():
    assert tuple(METHODS) == STUDY_METHODS
    sizes = {name: (m.train_sizes, m.output_size, m.srcnn) for name, m in METHODS.items()}
    assert sizes == {"dcgan32": ((32,), 32, False), "dcgan64": ((64,), 64, False), "dcgan128": ((128,), 128, False),
                     "stackgan128": ((64, 128), 128, False), "dcgan64+srcnn": ((64, 128), 128, True)}
    with pytest.raises(ValueError) as e:
        get_method("progan")
    assert str(e.value) == ("unknown method 'progan'; allowed: dcgan32, dcgan64, dcgan128, stackgan128, "
                            "dcgan64+srcnn")
    assert method_of(TrialConfig(image_size=64)).name == "dcgan64"  # a study-1 trial: the DCGAN at image_size
    assert method_of(tiny("stackgan128")).name == "stackgan128"
    assert isinstance(RESIZE, str) and "bicubic" in RESIZE


def test_config_fields_and_arm():
    cfg = tiny("dcgan64+srcnn", time_budget=12.5)
    assert cfg.arm == "dcgan64+srcnn" and TrialConfig(da="hflip", n_aug=10).arm == "hflip@10"
    assert TrialConfig().arm == "none" and TrialConfig().method == "" and TrialConfig().time_budget == 0.0
    assert TrialConfig(**flat(cfg)) == cfg  # the flat dict a trial receives rebuilds it


@pytest.mark.parametrize("kw, message", [
    (dict(method="progan"), "method 'progan' is unknown; allowed: dcgan32, dcgan64, dcgan128, stackgan128, "
                            "dcgan64+srcnn (or '' for a study-1 DA trial)"),
    (dict(method="stackgan128", image_size=64), "method stackgan128 trains at 64/128 px: image_size (the real set "
                                                "and evaluation size) must be at least 128, got 64"),
    (dict(method="dcgan64", image_size=32), "method dcgan64 trains at 64 px: image_size (the real set and "
                                            "evaluation size) must be at least 64, got 32"),
    (dict(method="dcgan64", image_size=128, da="hflip", n_aug=10),
     "da is a study-1 setting: a method trial trains on the real images alone (da=(), n_aug=0); got da='hflip' "
     "with method 'dcgan64'"),
    (dict(method="stackgan128", image_size=128, g_width=5),
     "stackgan128 needs an even g_width (its stage-II generator ends with g_width/2 channels), got 5"),
    (dict(time_budget=-1.0), "time_budget must be a number of seconds >= 0 (0 = no budget), got -1.0"),
    (dict(time_budget=float("inf")), "time_budget must be a number of seconds >= 0 (0 = no budget), got inf"),
    (dict(srcnn_steps=0), "srcnn_steps must be a positive integer, got 0"),
    (dict(srcnn_lr=0.0), "srcnn_lr must be > 0, got 0.0"),
    (dict(srcnn_patch=12), "srcnn_patch must be between 13 (the SRCNN's receptive field) and 128, got 12"),
])
def test_config_rejects(kw, message):
    with pytest.raises(ValueError) as e:
        TrialConfig(**kw)
    assert str(e.value) == message


# ---------------------------------------------------------------------------------------------------------------------
# the fixed resize and the training data


def test_to_size_is_the_sources_resize(photos):
    x = photos[0].images[:3]
    for size in (32, 64):
        out = to_size(x, size)
        assert out.dtype == torch.uint8 and out.shape == (3, 3, size, size)
        assert all(torch.equal(out[i], realsets.preprocess(x[i], size)) for i in range(3))  # one op, batch or not
    assert to_size(x, 128) is x  # already there: untouched
    assert torch.equal(to_size(torch.full((1, 3, 64, 64), 77, dtype=torch.uint8), 128),
                       torch.full((1, 3, 128, 128), 77, dtype=torch.uint8))  # a flat image stays flat, no overshoot
    with pytest.raises(ValueError, match="uint8"):
        to_size(x.float(), 64)


def test_prepare_data_makes_every_size_once(real):
    data = prepare_data(real, tiny("dcgan64+srcnn"), CPU)
    assert sorted(data.images) == [64, 128]
    assert torch.equal(data.images[64], to_size(real, 64)) and torch.equal(data.images[128], real)
    assert torch.equal(data.sr_input, to_size(to_size(real, 64), 128))
    stack = prepare_data(real, tiny("stackgan128"), CPU)
    assert sorted(stack.images) == [64, 128] and stack.sr_input is None
    assert list(prepare_data(real, tiny("dcgan32"), CPU).images) == [32]
    study1 = TrialConfig(image_size=128)
    assert prepare_data(real, study1, CPU).images[128] is real  # a study-1 set is trained on as given
    with pytest.raises(ValueError, match=r"training images are \(64, 64\), the config says 128"):
        prepare_data(to_size(real, 64), tiny("dcgan64"), CPU)
    with pytest.raises(ValueError, match="stackgan128 trains on images at 64, 128 px, got 128"):
        train_steps(build_state(tiny("stackgan128"), CPU), real, 1)  # a bare tensor cannot feed two sizes


# ---------------------------------------------------------------------------------------------------------------------
# every method builds, trains and samples


NETS = {"dcgan32": {"G", "D"}, "dcgan64": {"G", "D"}, "dcgan128": {"G", "D"}, "stackgan128": {"G", "D", "G2", "D2"},
        "dcgan64+srcnn": {"G", "D", "SR"}}


@pytest.mark.parametrize("name", STUDY_METHODS)
def test_every_method_trains_and_samples(name, real):
    cfg = tiny(name)
    state = build_state(cfg, CPU)
    assert set(state.nets) == set(state.opts) == NETS[name]
    before = {k: v.clone() for k, v in state.nets["G"].state_dict().items()}
    sr_stats, stats = train_until(state, prepare_data(real, cfg, CPU))
    assert state.step == cfg.steps and stats.steps == cfg.steps and state.finished and not state.diverged
    assert any(not torch.equal(before[k], v) for k, v in state.nets["G"].state_dict().items())
    if name == "dcgan64+srcnn":
        assert sr_stats.steps == state.sr_step == cfg.srcnn_steps and sr_stats.loss > 0
        assert 0 < state.sr_elapsed < state.elapsed
    else:
        assert sr_stats is None and state.sr_step == 0 and state.sr_elapsed == 0
    if name == "stackgan128":
        assert set(stats.extra) == {"loss_d2", "loss_g2", "d_real2", "d_fake2"} and stats.extra["loss_d2"] > 0
        assert {"loss_d", "loss_d2"} <= set(stats.as_dict()) and "extra" not in stats.as_dict()
    out = METHODS[name].output_size
    z = eval_noise(cfg, 3)
    images = sample(state, z)
    assert images.dtype == torch.uint8 and images.shape == (3, 3, out, out)
    assert torch.equal(sample(state, z, size=128), to_size(images, 128))
    assert all(net.training for net in state.nets.values())  # modes restored after sampling


def test_stage_one_and_method_b_gan_follow_dcgan64(real):
    """Same seed: stackgan128's stage I and dcgan64+srcnn's GAN take exactly dcgan64's steps (stage II sees the
    stage-I images detached, and stage II and the SRCNN draw from their own RNG streams)."""
    states = {name: build_state(tiny(name, steps=3), CPU) for name in ("dcgan64", "stackgan128", "dcgan64+srcnn")}
    for name, state in states.items():
        train_until(state, prepare_data(real, state.cfg, CPU))
    ref = states["dcgan64"]
    for name in ("stackgan128", "dcgan64+srcnn"):
        for net in ("G", "D"):
            a, b = ref.nets[net].state_dict(), states[name].nets[net].state_dict()
            assert all(torch.equal(a[k], b[k]) for k in a), f"{name} {net} differs from dcgan64's"


def test_stackgan_sample_is_stage_two_of_stage_one(real):
    cfg = tiny("stackgan128")
    state = build_state(cfg, CPU)
    train_steps(state, prepare_data(real, cfg, CPU), 2)
    z = eval_noise(cfg, 4)
    G, G2 = state.nets["G"].eval(), state.nets["G2"].eval()
    with torch.no_grad():
        expected = G2(G(z), z).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    G.train(), G2.train()
    assert torch.equal(sample(state, z), expected)


def test_method_b_sample_is_srcnn_of_rounded_gan_sample(real):
    cfg = tiny("dcgan64+srcnn")
    state = build_state(cfg, CPU)
    train_until(state, prepare_data(real, cfg, CPU))
    z = eval_noise(cfg, 4)
    low = generate(state.scored_nets["G"], z)  # the scored (EMA) GAN's own 64x64 samples, uint8
    with torch.no_grad():
        restored = state.nets["SR"](to_float(to_size(low, 128)))
    expected = restored.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(sample(state, z), expected)


def test_dcgan_method_sample_is_generate(real):
    cfg = tiny("dcgan32")
    state = build_state(cfg, CPU)
    train_steps(state, prepare_data(real, cfg, CPU), 1)
    z = eval_noise(cfg, 5)
    assert torch.equal(sample(state, z), generate(state.ema["G"], z))  # the scored generator is the EMA one


# ---------------------------------------------------------------------------------------------------------------------
# SRCNN


def test_untrained_srcnn_is_bicubic_and_scores_match_numpy(photos):
    held = photos[1].images[:4]
    state = build_state(tiny("dcgan64+srcnn"), CPU)
    q = srcnn_quality(state.nets["SR"], held)
    assert q["psnr_srcnn"] == q["psnr_bicubic"] and q["ssim_srcnn"] == q["ssim_bicubic"]  # zero residual
    truth, bicubic = held.double(), to_size(to_size(held, 64), 128).double()
    mse = (truth - bicubic).square().mean(dim=(1, 2, 3))
    assert q["psnr_bicubic"] == pytest.approx(float((10 * torch.log10(255.0 ** 2 / mse)).mean()), rel=1e-12)
    assert 0 < q["ssim_bicubic"] < 1
    with pytest.raises(ValueError, match=r"uint8 \(N,3,128,128\)"):
        srcnn_quality(state.nets["SR"], to_size(held, 64))


def test_srcnn_beats_bicubic_on_held_out_images(photos):
    """~300 cheap iterations (8 crops of 16x16) lift PSNR by ~0.5 dB over bicubic on 16 held-out tiles."""
    train_set, held = photos
    cfg = tiny("dcgan64+srcnn", batch_size=8, srcnn_patch=16, srcnn_steps=300)
    state = build_state(cfg, CPU)
    stats = train_srcnn(state, prepare_data(train_set.images, cfg, CPU), cfg.srcnn_steps)
    assert stats.steps == state.sr_step == 300 and not stats.diverged and state.step == 0
    q = srcnn_quality(state.nets["SR"], held.images)
    assert q["psnr_srcnn"] > q["psnr_bicubic"] + 0.2, q
    assert q["ssim_srcnn"] > q["ssim_bicubic"], q


def test_srcnn_learning_rate_schedule():
    state = build_state(tiny("dcgan64+srcnn", srcnn_lr=1e-3, srcnn_steps=10), CPU)
    assert [g["lr_scale"] for g in state.opts["SR"].param_groups] == [1.0, 0.1]  # the paper's slower last layer
    assert srcnn_lr(1e-3, 0, 10) == 1e-3 and srcnn_lr(1e-3, 5, 10) == pytest.approx(5e-4)
    assert srcnn_lr(1e-3, 10, 10) == 0.0 and srcnn_lr(1e-3, 12, 10) == 0.0
    data = TrainData({64: torch.zeros(2, 3, 64, 64, dtype=torch.uint8), 128: torch.zeros(2, 3, 128, 128,
                                                                                          dtype=torch.uint8)},
                     sr_input=torch.zeros(2, 3, 128, 128, dtype=torch.uint8))
    train_srcnn(state, data, 5)  # the last of these was iteration 4 of 10
    assert [g["lr"] for g in state.opts["SR"].param_groups] == pytest.approx([srcnn_lr(1e-3, 4, 10),
                                                                              srcnn_lr(1e-4, 4, 10)])
    with pytest.raises(ValueError, match="method dcgan64 has no SRCNN"):
        train_srcnn(build_state(tiny("dcgan64"), CPU), data, 1)


# ---------------------------------------------------------------------------------------------------------------------
# time budget


@pytest.fixture
def fake_clock(monkeypatch):
    """The training clock advances by exactly 1 s per iteration of any method or of the SRCNN, and not otherwise."""
    now = [100.0]

    def ticking(fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            now[0] += 1.0
            return out
        return wrapped

    for name, method in METHODS.items():
        monkeypatch.setitem(METHODS, name, dataclasses.replace(method, step=ticking(method.step)))
    monkeypatch.setattr(train, "srcnn_update", ticking(train.srcnn_update))
    monkeypatch.setattr(train, "clock", lambda: now[0])
    return now


def test_time_budget_stops_after_the_iteration_that_reaches_it(real, fake_clock):
    cfg = tiny("stackgan128", steps=100, time_budget=5.5)
    state = build_state(cfg, CPU)
    data = prepare_data(real, cfg, CPU)
    sr_stats, stats = train_until(state, data, until=4)  # a chunk: stops at the eval step, inside the budget
    assert sr_stats is None and stats.steps == 4 and state.elapsed == 4.0 and not state.finished
    sr_stats, stats = train_until(state, data)
    assert stats.steps == 2 and state.step == 6 and state.elapsed == 6.0  # 5.0 < 5.5 <= 6.0
    assert state.out_of_time and state.finished
    assert train_until(state, data) == (None, None) and train_steps(state, data, 3).steps == 0  # nothing more
    assert state.step == 6 and state.elapsed == 6.0


@pytest.mark.parametrize("budget, sr_step, step", [(5.5, 4, 2), (2.5, 3, 0), (0.0, 4, 7)])
def test_time_budget_counts_the_srcnn_phase(real, fake_clock, budget, sr_step, step):
    cfg = tiny("dcgan64+srcnn", steps=7, srcnn_steps=4, time_budget=budget)
    state = build_state(cfg, CPU)
    train_until(state, prepare_data(real, cfg, CPU))
    assert (state.sr_step, state.step) == (sr_step, step)
    assert state.sr_elapsed == float(sr_step) and state.elapsed == float(sr_step + step)
    assert state.finished


def test_time_budget_on_the_real_clock(real, monkeypatch):
    """With the real clock: the run stops once past the budget, by less than its slowest iteration."""
    ends = []
    step = METHODS["dcgan32"].step

    def timed(state, data):
        out = step(state, data)
        ends.append(train.clock())
        return out

    monkeypatch.setitem(METHODS, "dcgan32", dataclasses.replace(METHODS["dcgan32"], step=timed))
    cfg = tiny("dcgan32", steps=100_000, time_budget=0.3)
    state = build_state(cfg, CPU)
    train_until(state, prepare_data(real, cfg, CPU))
    assert 3 <= state.step < cfg.steps and state.out_of_time
    slowest = max(b - a for a, b in zip(ends, ends[1:]))
    assert cfg.time_budget <= state.elapsed < cfg.time_budget + slowest + 0.05  # 50 ms: the loop's own overhead


def test_sampling_and_scoring_are_not_training_time(real, photos):
    cfg = tiny("dcgan64+srcnn")
    state = build_state(cfg, CPU)
    train_until(state, prepare_data(real, cfg, CPU))
    elapsed, sr_elapsed = state.elapsed, state.sr_elapsed
    sample(state, eval_noise(cfg, 8))
    srcnn_quality(state.nets["SR"], photos[1].images[:2])
    assert (state.elapsed, state.sr_elapsed) == (elapsed, sr_elapsed)


# ---------------------------------------------------------------------------------------------------------------------
# exact resume, checkpoints, divergence


@pytest.mark.parametrize("name", ["stackgan128", "dcgan64+srcnn"])
def test_resume_is_bit_exact(tmp_path, real, name):
    cfg = tiny(name, steps=4, srcnn_steps=3)
    data = prepare_data(real, cfg, CPU)
    straight = build_state(cfg, CPU)
    train_until(state=straight, data=data)

    state = build_state(cfg, CPU)
    if name == "dcgan64+srcnn":  # stop inside the SRCNN phase too
        train_srcnn(state, data, 2)
        save_state(state, tmp_path / "a.pt")
        torch.manual_seed(999)  # disturb the global RNG, as a new process would have it
        build_state(tiny(name, seed=5), CPU)
        state = load_state(cfg, tmp_path / "a.pt", CPU)
        assert state.sr_step == 2 and state.step == 0
    train_until(state, data, until=1)
    save_state(state, tmp_path / "b.pt")
    torch.manual_seed(1234)
    state = load_state(cfg, tmp_path / "b.pt", CPU)
    assert state.step == 1
    train_until(state, data)

    assert_same_state(straight, state)
    z = eval_noise(cfg, 4)
    assert torch.equal(sample(straight, z), sample(state, z))
    sd = torch.load(tmp_path / "b.pt", weights_only=True)  # tensors, dicts, numbers and strings only
    assert sd["method"] == name and set(sd["nets"]) == set(sd["opts"]) == NETS[name]
    assert set(sd["rng"]) >= {"batch", "noise", "sr", "torch_cpu"} and not (tmp_path / "b.pt.tmp").exists()


def test_checkpoint_of_another_method_is_refused(tmp_path, real):
    state = build_state(tiny("stackgan128"), CPU)
    save_state(state, tmp_path / "s.pt")
    with pytest.raises(ValueError, match="networks G, D, G2, D2 \\(method stackgan128\\), this config's method "
                                         "dcgan64\\+srcnn has G, D, SR"):
        load_state(tiny("dcgan64+srcnn"), tmp_path / "s.pt", CPU)


def test_stage_two_divergence_sets_the_flag(real):
    state = build_state(tiny("stackgan128"), CPU)
    with torch.no_grad():
        state.nets["D2"].net[0].weight.fill_(float("nan"))
    stats = train_steps(state, prepare_data(real, state.cfg, CPU), 5)  # no exception
    assert stats.diverged and state.diverged and stats.steps == 1 and state.finished
    assert np.isnan(stats.extra["loss_d2"]) and np.isfinite(stats.loss_d)  # stage I was fine: stage II's loss counts


def test_srcnn_divergence_sets_the_flag(real):
    state = build_state(tiny("dcgan64+srcnn"), CPU)
    with torch.no_grad():
        state.nets["SR"].net[0].weight.fill_(float("nan"))
    sr_stats, stats = train_until(state, prepare_data(real, state.cfg, CPU))
    assert sr_stats.diverged and sr_stats.steps == 1 and state.diverged and stats is None and state.step == 0


def test_local_loop_trains_a_method(tmp_path, real, monkeypatch):
    monkeypatch.setattr(train, "GRID_SAMPLES", 4)
    cfg = tiny("dcgan64+srcnn", steps=3, eval_every=2)
    seen = []
    state = train.train(cfg, real, tmp_path, device=CPU, progress="off", on_eval=lambda st, s: seen.append(st.step))
    assert seen == [2, 3] and state.step == 3 and state.sr_step == cfg.srcnn_steps
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 3]
    assert lines[0]["sr"]["steps"] == cfg.srcnn_steps and "sr" not in lines[1]
    from PIL import Image
    with Image.open(tmp_path / "samples_step000002.png") as im:
        assert im.size == (2 * 130 + 2, 2 * 130 + 2)  # 2x2 samples at the method's 128x128 output, padding 2
    assert load_state(cfg, tmp_path / "state.pt", CPU).sr_step == cfg.srcnn_steps


# ---------------------------------------------------------------------------------------------------------------------
# the skimage-photos source


def test_skimage_photos_counts_and_tiles():
    catalog = sources.SOURCES["skimage-photos"].open(sources.parse_source("skimage-photos"))
    assert catalog.size == 277 and catalog.crop is None
    tiles = [catalog.decode(i) for i in range(catalog.size)]
    assert all(t.shape == (3, 128, 128) and t.dtype == torch.uint8 for t in tiles)
    import skimage.data

    astronaut = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)  # 512x512: a 4x4 grid, no margin
    assert torch.equal(tiles[0], astronaut[:, :128, :128]) and torch.equal(tiles[5], astronaut[:, 128:256, 128:256])
    retina = torch.from_numpy(skimage.data.retina()).permute(2, 0, 1)
    first_retina = [catalog.name(i) for i in range(catalog.size)].index("retina tile 0")
    top = (1411 - 896) // 2  # the central 896x896, tiled 7x7
    assert torch.equal(tiles[first_retina], retina[:, top:top + 128, top:top + 128])
    grey = [i for i in range(catalog.size) if torch.equal(tiles[i][0], tiles[i][1])]
    assert len(grey) == 106 and catalog.name(grey[0]) == "camera tile 0"  # the 171 colour tiles come first
    hashes = {t.numpy().tobytes() for t in tiles}
    assert len(hashes) == 277  # no two tiles alike


def test_skimage_photos_split_is_seeded_and_disjoint():
    train_set, held = realsets.load_split("skimage-photos", 200, 100, 128, seed=3, cache_dir=False)
    assert train_set.images.shape == (200, 3, 128, 128) and held.images.shape == (77, 3, 128, 128)  # 277 in all
    assert not set(train_set.index) & set(held.index)
    again = realsets.load_real("skimage-photos", 200, 128, seed=3, cache_dir=False)
    assert again.index == train_set.index and torch.equal(again.images, train_set.images)
    other = realsets.load_real("skimage-photos", 200, 128, seed=4, cache_dir=False)
    assert other.index != train_set.index
    small = realsets.load_real("skimage-photos", 10, 64, seed=3, cache_dir=False)
    assert small.index == train_set.index[:10] and torch.equal(small.images, to_size(train_set.images[:10], 64))
    with pytest.raises(ValueError, match="dataset source 'skimage-photos' takes no path"):
        sources.parse_source("skimage-photos:/data")
    import skimage
    assert sources.SOURCES["skimage-photos"].fingerprint(sources.Source("skimage-photos"))[0] == skimage.__version__

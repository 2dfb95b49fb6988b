"""Augmentation at the discriminator's input (gan.daug) and the EMA generator: gradients, identities, ADA's
adaptive p, exact resume, the EMA's closed form, checkpoints, config checks and the study arms."""

import math

import pytest
import torch
import torch.nn as nn

from gan import daug
from gan.checkpoint import TrainState, build_state, load_generator, load_state, save_generator, save_state
from gan.config import TrialConfig
from gan.models.dcgan import build_dcgan
from gan.train import eval_noise, generate, sample, train_steps

CPU = torch.device("cpu")


def tiny(**kw) -> TrialConfig:
    base = dict(image_size=32, g_width=8, d_width=8, batch_size=8, nz=16, steps=400, eval_every=400, seed=0)
    return TrialConfig(**{**base, **kw})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these tiny networks run many times faster so on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return torch.randint(0, 256, (20, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def images(n=6, side=32, dtype=torch.float32):
    x = torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return x.to(dtype).contiguous(memory_format=torch.channels_last)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- the ops ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", list(daug.OPS))
def test_each_op_passes_gradient_to_the_generator(op):
    G, _ = build_dcgan(32, 16, 8, 8)
    x = G(torch.randn(4, 16, 1, 1, generator=gen()))
    y = daug.OPS[op](x, 1.0, gen())
    weights = torch.randn(y.shape, generator=gen(2))
    (y * weights).sum().backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("op", list(daug.OPS))
def test_ops_at_p0_are_the_identity_and_change_images_at_p1(op):
    x = images()
    assert torch.equal(daug.OPS[op](x, 0.0, gen()), x)
    assert torch.equal(daug.OPS[op](x, torch.zeros(()), gen()), x)  # p as ADA holds it: a 0-d tensor
    assert not torch.equal(daug.OPS[op](x, 1.0, gen(3)), x)


@pytest.mark.parametrize("op", ["translation", "cutout", "xint"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("side", [32, 64])
def test_translation_and_cutout_keep_shape_and_dtype(op, dtype, side):
    x = images(side=side, dtype=dtype)
    y = daug.OPS[op](x, 1.0, gen())
    assert y.shape == x.shape and y.dtype == x.dtype


def test_shift_is_a_zero_padded_or_reflected_move():
    x = images(n=2, side=8)
    dy, dx = torch.tensor([1, -2]), torch.tensor([2, 0])
    moved = daug._shift(x, dy, dx, 2, "zeros")
    want = torch.zeros_like(x)
    want[0, :, 1:, 2:] = x[0, :, :-1, :-2]  # down 1, right 2
    want[1, :, :-2, :] = x[1, :, 2:, :]  # up 2
    assert torch.equal(moved, want)
    reflected = daug._shift(x, dy, dx, 2, "reflect")
    assert torch.equal(reflected[0, :, 0, 2:], x[0, :, 1, :-2])  # the row that came in mirrors row 1


def test_cutout_zeroes_a_half_side_square():
    x = images(n=16, side=32) + 3  # all values > 0, so zeros come only from the hole
    zeros = (daug.OPS["cutout"](x, 1.0, gen()) == 0).all(dim=1).flatten(1).sum(1)  # holes' pixels per image
    assert zeros.max() == 16 * 16 and zeros.min() > 0  # the full square, or its part inside the image


def test_rotate90_turns_by_whole_quarters():
    x = images(n=32, side=8)
    y = daug.OPS["rotate90"](x, 1.0, gen())
    turns = [next(k for k in range(4) if torch.equal(y[i], torch.rot90(x[i], k, dims=(1, 2)))) for i in range(32)]
    assert set(turns) == {0, 1, 2, 3}


def test_policy_parsing_names_what_is_allowed():
    assert daug.parse_policy("diffaugment", "") == ("color", "translation", "cutout")
    assert daug.parse_policy("ada", "xflip, rotate90") == ("xflip", "rotate90")
    with pytest.raises(ValueError, match="unknown op.*blur.*allowed: color"):
        daug.parse_policy("ada", "xflip,blur")
    with pytest.raises(ValueError, match="allowed: none, diffaugment, ada"):
        daug.parse_policy("stylegan", "")


# --- ADA's p ---------------------------------------------------------------------------------------------------------

def test_ada_adjustment_closed_form():
    """r_t above the target raises p by batch*interval/ada_images per interval up to 1; below it, p falls to 0."""
    cfg = tiny(d_aug="ada", ada_images=80, ada_interval=2, batch_size=8)  # a step of 8*2/80 = 0.2
    aug = daug.DAug(cfg, ["D"], CPU)
    overfit = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.1, 0.2, 0.3, -1.0])  # r_t = 6/8 = 0.75 > 0.6
    for k in range(1, 13):  # 6 whole intervals
        aug.observe("D", overfit)
        assert math.isclose(float(aug.p["D"]), min(0.2 * (k // 2), 1.0), abs_tol=1e-6)
    assert float(aug.last_rt["D"]) == 0.75
    balanced = torch.tensor([1.0, -1.0] * 4)  # r_t = 0
    for k in range(1, 14):
        aug.observe("D", balanced)
        assert math.isclose(float(aug.p["D"]), max(1.0 - 0.2 * (k // 2), 0.0), abs_tol=1e-6)


class CoinFlipD(nn.Module):
    """A discriminator that cannot overfit: an independent random logit per image (still a path to G)."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.coins = gen(5)

    def forward(self, x):
        return x.mean(dim=(1, 2, 3)) * 0 + self.bias + torch.randn(x.shape[0], generator=self.coins)


def test_ada_p_rises_on_an_overfitting_discriminator_and_stays_at_0_on_one_that_cannot(data):
    cfg = tiny(d_aug="ada", ada_images=400, ada_interval=4, lr=1e-3)  # 40 adjustments of 0.08 in 160 steps
    overfit = build_state(cfg, CPU)
    stats = train_steps(overfit, data[:4], 160)  # 4 real images, 160 steps: D learns them (p 0.3-0.5 on seeds 0-2)
    assert stats.extra["ada_p"] > 0.2
    coin = build_state(cfg, CPU)
    coin.nets["D"] = CoinFlipD()
    stats = train_steps(coin, data[:4], 40)
    assert stats.extra["ada_p"] == 0.0


def test_ada_trial_resumes_bit_for_bit(tmp_path, data):
    # p moves at step 9 (seed 0), after the cut at 4, which falls inside an interval of 3
    cfg = tiny(d_aug="ada", ada_images=200, ada_interval=3, ada_target=0.1, ema=0.9)
    straight = build_state(cfg, CPU)
    a = [train_steps(straight, data, 1).as_dict() for _ in range(10)]
    first = build_state(cfg, CPU)
    b = [train_steps(first, data, 1).as_dict() for _ in range(4)]
    save_state(first, tmp_path / "state.pt")
    torch.manual_seed(99)
    resumed = load_state(cfg, tmp_path / "state.pt", CPU)
    b += [train_steps(resumed, data, 1).as_dict() for _ in range(6)]
    drop = ("images_per_s", "seconds")
    assert [{k: v for k, v in s.items() if k not in drop} for s in a] == \
           [{k: v for k, v in s.items() if k not in drop} for s in b]
    assert a[-1]["ada_p"] > 0
    for x, y in ((straight.nets, resumed.nets), (straight.ema, resumed.ema)):
        for name in x:
            sx, sy = x[name].state_dict(), y[name].state_dict()
            assert all(torch.equal(sx[k], sy[k]) for k in sx), name
    assert torch.equal(straight.daug.p["D"], resumed.daug.p["D"])
    assert straight.daug.batches == resumed.daug.batches


def test_diffaugment_and_ada_apply_in_both_stackgan_stages(data):
    big = torch.randint(0, 256, (8, 3, 128, 128), generator=gen(), dtype=torch.uint8)
    from gan.methods import prepare_data

    cfg = TrialConfig(method="stackgan128", image_size=128, g_width=4, d_width=4, batch_size=2, nz=8, steps=2,
                      eval_every=2, d_aug="ada", ada_images=4)
    state = build_state(cfg, CPU)
    stats = train_steps(state, prepare_data(big, cfg, CPU), 2)
    assert set(state.daug.p) == {"D", "D2"} and {"ada_p", "ada_p_D2"} <= set(stats.extra)


# --- the EMA generator -----------------------------------------------------------------------------------------------

def test_ema_matches_its_closed_form():
    """Raw weights w_t = t + 1 (t = 0..T-1) from w_init = 0: ema_T = sum_t (1 - b_t) w_t prod_{s>t} b_s."""
    raw, decay, T = nn.Linear(3, 2), 0.9, 100
    with torch.no_grad():
        raw.weight.zero_()
    ema = daug.ema_copy(raw)
    betas = [min(decay, (1 + t) / (10 + t)) for t in range(T)]
    for t in range(T):
        with torch.no_grad():
            raw.weight.fill_(t + 1.0)
        daug.update_ema(ema, raw, daug.ema_decay(decay, t))
    want = sum((1 - betas[t]) * (t + 1) * math.prod(betas[t + 1:]) for t in range(T))
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, want), rtol=1e-5)
    assert not ema.weight.requires_grad
    assert betas[0] == 0.1 and betas[-1] == 0.9  # the warm-up, then the decay


def test_ema_generator_is_sampled_and_raw_is_trained(data):
    state = build_state(tiny(ema=0.99), CPU)
    train_steps(state, data, 5)
    z = eval_noise(state.cfg, 8)
    assert state.cfg.scored_generator == "ema"
    assert torch.equal(sample(state, z), generate(state.ema["G"], z))
    assert not torch.equal(sample(state, z), generate(state.nets["G"], z))
    raw = build_state(tiny(ema=0.0), CPU)
    train_steps(raw, data, 5)
    assert raw.ema == {} and raw.cfg.scored_generator == "raw"
    assert torch.equal(sample(raw, z), generate(raw.nets["G"], z))
    assert torch.equal(raw.nets["G"].state_dict()["net.0.weight"], state.nets["G"].state_dict()["net.0.weight"])


def test_checkpoints_hold_raw_and_ema_and_load_weights_only(tmp_path, data):
    state = build_state(tiny(d_aug="ada", ada_images=16), CPU)
    train_steps(state, data, 4)
    state.daug.p["D"] = torch.tensor(0.37)  # a p to carry (whether training moved it is the tests' above)
    save_state(state, tmp_path / "s.pt")
    sd = torch.load(tmp_path / "s.pt", weights_only=True)
    assert set(sd["nets"]) == {"G", "D"} and set(sd["ema"]) == {"G"} and "daug" in sd["rng"]
    assert float(sd["daug"]["D"]["p"]) == float(state.daug.p["D"]) > 0
    save_generator(state, tmp_path / "g.pt")
    saved = torch.load(tmp_path / "g.pt", weights_only=True)
    assert saved["scored_generator"] == "ema" and set(saved["ema"]) == {"G"}
    z = eval_noise(state.cfg, 4)
    assert torch.equal(sample(load_generator(tmp_path / "g.pt"), z), sample(state, z))
    again = TrainState.from_state_dict(state.cfg, sd, CPU)
    assert torch.equal(sample(again, z), sample(state, z))


# --- config and arms -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, needle", [
    (dict(d_aug="ada2"), "d_aug 'ada2' is unknown; allowed: none, diffaugment, ada"),
    (dict(d_aug="ada", d_aug_policy="xflip,zoom"), "unknown op(s) zoom"),
    (dict(d_aug_policy="xflip"), "needs d_aug diffaugment or ada"),
    (dict(ada_target=1.0), "ada_target must be between 0 and 1"),
    (dict(ada_images=0), "ada_images must be a positive integer"),
    (dict(ada_interval=0), "ada_interval must be a positive integer"),
    (dict(ema=1.0), "ema must be a decay in [0, 1)"),
])
def test_config_checks(bad, needle):
    with pytest.raises(ValueError) as e:
        TrialConfig(**bad)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_arm_labels_carry_d_aug():
    assert TrialConfig().arm == "none"
    assert TrialConfig(d_aug="ada").arm == "ada"
    assert TrialConfig(da="vflip", n_aug=10, d_aug="diffaugment").arm == "vflip@10+diffaugment"
    assert TrialConfig(method="dcgan32", d_aug="ada").arm == "dcgan32"  # a method's d_aug is a study setting


def test_paper_presets_and_demo_daug_have_the_arms():
    from search_spaces import build_study
    from search_spaces.da import DA_DESIGN

    arms = {TrialConfig(**c).arm: c for c in build_study("paper-celeba", seeds=1).configs}
    assert {"diffaugment", "ada", "vflip@1000+ada", "vflip@1000+diffaugment", "none"} <= set(arms)
    assert arms["none"]["d_aug"] == "none" and DA_DESIGN.baseline == "none" and "d_aug" in DA_DESIGN.arm_fields
    demo = build_study("demo-daug")
    labels = [TrialConfig(**c).arm for c in demo.configs]
    assert labels[:6] == ["none", "vflip@64", "diffaugment", "ada", "vflip@64+ada", "vflip@64+diffaugment"]
    assert {c["ada_images"] for c in demo.configs} == {4800}


def test_mlflow_params_and_the_report_say_which_generator_was_scored():
    from gan.config import flat
    from sweep.mlflow.layout import trial_params as mlflow_params
    from sweep.report.write import generator_note

    assert mlflow_params(flat(TrialConfig()))["scored_generator"] == "ema"
    assert mlflow_params(flat(TrialConfig(ema=0.0)), arm=False)["scored_generator"] == "raw"

    class Record:
        def __init__(self, **kw):
            self.config = flat(TrialConfig(**kw))

    note = generator_note([Record(), Record(seed=1), Record(ema=0.0)])
    assert "EMA generator (decay 0.999" in note and "in 2 trial(s)" in note and "raw generator in 1 trial(s)" in note

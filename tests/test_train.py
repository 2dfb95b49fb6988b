"""Training step, checkpoints that continue bit-exactly, divergence, precision, sampling and `gansweep train`."""

import json
import re

import pytest
import torch
from PIL import Image

from gan.config import TrialConfig, flat
from gan.checkpoint import TrainState, build_state, load_state, save_state
from gan.runtime import resolve_precision, select_device
from gan.steps import sample_batch
from gan.train import eval_noise, generate, grid_name, grid_step, save_grid, train, train_steps

CPU = torch.device("cpu")


def tiny(**kw) -> TrialConfig:
    """A DCGAN small enough to train in milliseconds on the CPU."""
    base = dict(image_size=32, g_width=8, d_width=8, batch_size=8, nz=16, steps=6, eval_every=3, seed=0)
    return TrialConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def data():
    return torch.randint(0, 256, (20, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def per_step_losses(state, data, n):
    """Run n single steps and return the (loss_d, loss_g) of each."""
    out = []
    for _ in range(n):
        s = train_steps(state, data, 1)
        out.append((s.loss_d, s.loss_g, s.d_real, s.d_fake))
    return out


def assert_same_models(a: TrainState, b: TrainState):
    for ma, mb in ((a.G, b.G), (a.D, b.D)):
        sa, sb = ma.state_dict(), mb.state_dict()  # parameters and BN running statistics
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), "models differ"


def test_resume_is_bit_exact(tmp_path, data):
    cfg, n, k = tiny(), 6, 2
    straight = build_state(cfg, CPU)
    losses_straight = per_step_losses(straight, data, n)

    first = build_state(cfg, CPU)
    losses = per_step_losses(first, data, k)
    save_state(first, tmp_path / "state.pt")
    torch.manual_seed(1234)  # disturb the global RNG, as a new process would have it
    build_state(tiny(seed=7), CPU)  # and build something else in between
    resumed = load_state(cfg, tmp_path / "state.pt", CPU)
    assert resumed.step == k and resumed.elapsed == first.elapsed
    losses += per_step_losses(resumed, data, n - k)

    assert losses == losses_straight  # exact float equality, step by step
    assert_same_models(straight, resumed)
    assert straight.step == resumed.step == n
    for oa, ob in ((straight.opt_g, resumed.opt_g), (straight.opt_d, resumed.opt_d)):
        for sa, sb in zip(oa.state.values(), ob.state.values()):
            assert all(torch.equal(sa[key], sb[key]) for key in sa)  # Adam moments and step counts


def test_checkpoint_loads_weights_only(tmp_path, data):
    state = build_state(tiny(), CPU)
    train_steps(state, data, 1)
    save_state(state, tmp_path / "s.pt")
    sd = torch.load(tmp_path / "s.pt", weights_only=True)  # only tensors, dicts, numbers and strings inside
    assert sd["step"] == 1 and set(sd["rng"]) >= {"batch", "noise", "torch_cpu"}
    assert not (tmp_path / "s.pt.tmp").exists()  # written atomically
    again = TrainState.from_state_dict(tiny(), sd, CPU)
    assert_same_models(state, again)


def test_study1_checkpoint_layout_still_loads(tmp_path, data):
    """Checkpoints written before TrainState held named networks (G, D, opt_g, opt_d at the top) resume exactly."""
    cfg = tiny()
    straight = build_state(cfg, CPU)
    losses_straight = per_step_losses(straight, data, 4)
    first = build_state(cfg, CPU)
    losses = per_step_losses(first, data, 2)
    sd = first.state_dict()
    old = {k: v for k, v in sd.items() if k not in ("nets", "opts", "sr_step", "sr_elapsed", "method")}
    old.update(G=sd["nets"]["G"], D=sd["nets"]["D"], opt_g=sd["opts"]["G"], opt_d=sd["opts"]["D"])
    del old["rng"]["sr"]
    torch.save(old, tmp_path / "old.pt")
    resumed = load_state(cfg, tmp_path / "old.pt", CPU)
    losses += per_step_losses(resumed, data, 2)
    assert losses == losses_straight
    assert_same_models(straight, resumed)


def test_init_depends_on_seed():
    a, b, c = build_state(tiny(), CPU), build_state(tiny(), CPU), build_state(tiny(seed=1), CPU)
    assert_same_models(a, b)
    assert not torch.equal(a.G.net[0].weight, c.G.net[0].weight)


def test_stats(data):
    state = build_state(tiny(), CPU)
    s = train_steps(state, data, 3)
    assert s.steps == 3 and state.step == 3 and not s.diverged and not state.diverged
    assert 0 < s.d_real < 1 and 0 < s.d_fake < 1 and s.loss_d > 0 and s.loss_g > 0
    assert s.images_per_s > 0 and state.elapsed == pytest.approx(s.seconds)


def test_divergence_from_nan_weights(data):
    state = build_state(tiny(), CPU)
    with torch.no_grad():
        state.D.net[0].weight.fill_(float("nan"))
    s = train_steps(state, data, 5)  # no exception
    assert s.diverged and state.diverged and s.steps == 1 and state.step == 1  # stopped at once


def test_divergence_from_huge_lr(data):
    state = build_state(tiny(lr=1e30), CPU)
    s = train_steps(state, data, 50)
    assert s.diverged and s.steps < 50


def test_train_stops_on_divergence(tmp_path, data):
    state = build_state(tiny(), CPU)
    with torch.no_grad():
        state.G.net[0].weight.fill_(float("nan"))
    seen = []
    out = train(tiny(), data, tmp_path, state=state, progress="off", on_eval=lambda st, s: seen.append(s))
    assert out.diverged and out.step == 1 and len(seen) == 1 and seen[0].diverged
    assert (tmp_path / "state.pt").exists() and not list(tmp_path.glob("samples_*.png"))
    assert torch.load(tmp_path / "state.pt", weights_only=True)["diverged"] is True


def test_bf16_autocast_on_cpu(data):
    state = build_state(tiny(precision="bf16"), CPU)
    assert state.precision == "bf16"
    s = train_steps(state, data, 2)
    assert not s.diverged and all(map(lambda v: v == v and abs(v) < 1e3, (s.loss_d, s.loss_g)))
    assert state.G.net[0].weight.dtype == torch.float32  # autocast: the weights stay fp32
    img = generate(state.G, eval_noise(state.cfg, 4), precision="bf16")
    assert img.dtype == torch.uint8 and img.shape == (4, 3, 32, 32)


def test_precision_and_device():
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16" and resolve_precision("fp32", CPU) == "fp32"
    assert select_device("cpu") == CPU
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="allowed"):
        resolve_precision("fp16", CPU)


def test_channels_last(data):
    state = build_state(tiny(), CPU)
    cl = torch.channels_last
    assert state.G.net[3].weight.is_contiguous(memory_format=cl)
    assert state.D.net[0].weight.is_contiguous(memory_format=cl)
    x = sample_batch(state, data)
    assert x.is_contiguous(memory_format=cl) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.shape == (8, 3, 32, 32)


def test_eval_noise_fixed(data):
    cfg = tiny()
    z1 = eval_noise(cfg, 10)
    state = build_state(cfg, CPU)
    train_steps(state, data, 2)  # training draws from its own streams...
    assert torch.equal(eval_noise(cfg, 10), z1)  # ...and never moves the eval noise
    assert z1.shape == (10, cfg.nz, 1, 1)
    assert torch.equal(eval_noise(cfg, 4), z1[:4])  # a prefix of the same stream
    assert not torch.equal(eval_noise(tiny(seed=1), 10), z1)
    # two states of one seed generate the same images from it
    a, b = build_state(cfg, CPU), build_state(cfg, CPU)
    assert torch.equal(generate(a.G, z1), generate(b.G, z1))


def test_generate(data):
    state = build_state(tiny(), CPU)
    state.G.train()
    img = generate(state.G, eval_noise(state.cfg, 5), batch_size=2)  # several chunks
    assert img.dtype == torch.uint8 and img.shape == (5, 3, 32, 32) and img.is_contiguous()
    assert int(img.min()) >= 0 and int(img.max()) <= 255 and img.float().std() > 0
    assert state.G.training  # mode restored
    state.G.eval()
    generate(state.G, eval_noise(state.cfg, 1))
    assert not state.G.training


def test_save_grid(tmp_path):
    imgs = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    save_grid(imgs, tmp_path / "g.png", nrow=3)
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (3 * 34 + 2, 2 * 34 + 2)  # padding 2 around every tile
    save_grid(imgs[:2], tmp_path / "two.png")
    with Image.open(tmp_path / "two.png") as im:
        assert im.getpixel((2, 2)) == tuple(imgs[0, :, 0, 0].tolist())  # pixel values survive exactly


def test_train_loop_writes_files(tmp_path, data):
    seen = []
    state = train(tiny(steps=5, eval_every=2), data, tmp_path, device=CPU, progress="off",
                  on_eval=lambda st, s: seen.append(st.step))
    assert seen == [2, 4, 5] and state.step == 5 and not state.diverged
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"samples_step{s:06d}.png" for s in (2, 4, 5)]
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 3
    assert load_state(tiny(steps=5, eval_every=2), tmp_path / "state.pt", CPU).step == 5


def test_grid_names_carry_their_step():
    assert grid_name(300) == "samples_step000300.png" and grid_step(grid_name(300)) == 300
    assert grid_step("samples.png") is None and grid_step("samples_step000300.png.tmp") is None


def test_progress_lines_every_tenth_of_the_steps(tmp_path, data, capsys):
    """A log (a Ray task's) gets a whole line every tenth of the steps, across chunk ends, and the last step."""
    train(tiny(steps=23, eval_every=7), data, tmp_path, device=CPU, progress="lines", desc="donor x")
    lines = capsys.readouterr().err.splitlines()
    steps = [int(re.fullmatch(r"donor x: step (\d+)/23 \((\d+)%\), [\d.]+ s", line).group(1)) for line in lines]
    assert steps == [3, 6, 9, 12, 15, 18, 21, 23]  # every ceil(23 / 10) = 3 steps, then the end
    with pytest.raises(ValueError, match="allowed: bar, lines, off"):
        train(tiny(), data, tmp_path, progress=False)


def test_checkpoint_config_is_the_flat_config(data):
    cfg = tiny(da="hflip", n_aug=4)
    sd = build_state(cfg, CPU).state_dict()
    assert sd["config"] == flat(cfg) and TrialConfig(**sd["config"]) == cfg


# ---------------------------------------------------------------------------------------------------------------------
# gansweep train


def run_cli(argv, capsys):
    from sweep.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr()


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code, cap = run_cli(["train", "--dataset", "lfw-subset", "--n-real", "16", "--da", "hflip", "--n-aug", "8",
                         "--image-size", "32", "--g-width", "8", "--d-width", "8", "--batch-size", "8",
                         "--steps", "4", "--eval-every", "2", "--seed", "3", "--precision", "fp32",
                         "--threads", "1", "--quiet", "--out", str(out)], capsys)
    assert code == 0, cap.err
    assert (out / grid_name(2)).exists() and (out / grid_name(4)).exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["da"] == "hflip" and cfg["n_aug"] == 8 and cfg["seed"] == 3  # flat: as params.json and MLflow
    state = load_state(TrialConfig(**cfg), out / "state.pt", CPU)
    assert state.step == 4


@pytest.mark.parametrize("argv,needle", [
    (["--da", "sideways", "--n-aug", "4"], "unknown DA type"),
    (["--image-size", "48"], "48"),
    (["--precision", "fp16"], "fp16"),
    (["--da", "generated", "--n-aug", "4"], "--generated"),
    (["--steps", "0"], "steps"),
])
def test_cli_bad_input(tmp_path, capsys, argv, needle):
    code, cap = run_cli(["train", "--out", str(tmp_path / "x"), "--n-real", "8", *argv], capsys)
    assert code == 2
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], cap.err
    assert not (tmp_path / "x").exists()  # failed before any work

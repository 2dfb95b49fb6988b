"""Checkpoint state that continues bit-exactly: `TrainState`, `build_state`, and the files a run is saved to.

`TrainState` holds everything needed to continue exactly: every network and its Adam optimiser by name (`nets`,
`opts`: "G" and "D", plus "G2" and "D2" for stackgan128 or "SR" for dcgan64+srcnn), the counters (GAN iterations
`step`, SRCNN iterations `sr_step`, training seconds `elapsed`, of which `sr_elapsed` in the SRCNN phase), and every
RNG stream (`gens`: batch indices, noise, augmentation at D's input, SRCNN crops; torch's global CPU/CUDA
generators), the EMA generators (`ema`, by the name of the raw one) and ADA's adaptive state (`daug`).

Two files, both written atomically and read with `torch.load(weights_only=True)`: `save_state` / `load_state`, the
whole state (what a trial resumes from), and `save_generator` / `load_generator`, the sampling side of a trained
method with the config that builds it (what a researcher samples an arm from later). The loops that advance a state
live in `gan.train`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from gan import storage
from gan.config import TrialConfig, flat
from gan.daug import GEN_NETS, DAug, ema_copy
from gan.methods import build_networks, method_of
from gan.runtime import configure_backends, resolve_precision, select_device
from gan.steps import stream_seed

GENERATOR_NETS = ("G", "G2", "SR")  # what sampling needs of every method (no discriminator, no optimiser)


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped."""

    cfg: TrialConfig  # the trial this state trains
    device: torch.device  # where the networks, their optimisers and the noise stream live
    precision: str  # resolved: fp32 | bf16
    nets: dict[str, torch.nn.Module]  # every network of the method, by name ("G", "D", "G2", "D2", "SR")
    opts: dict[str, torch.optim.Optimizer]  # one optimiser per network, same keys
    gens: dict[str, torch.Generator]  # named RNG streams: "batch" (CPU), "noise", "daug" (on the device), "sr" (CPU)
    daug: DAug  # augmentation at the discriminators' input, with ADA's p per discriminator
    ema: dict[str, torch.nn.Module] = field(default_factory=dict)  # EMA copies of the generators (cfg.ema > 0)
    step: int = 0  # GAN iterations done (one update of every adversarial network each)
    sr_step: int = 0  # SRCNN iterations done (dcgan64+srcnn; 0 otherwise)
    elapsed: float = 0.0  # training seconds so far, SRCNN phase included (evaluation excluded)
    sr_elapsed: float = 0.0  # the part of `elapsed` spent training the SRCNN
    diverged: bool = False  # a non-finite loss stopped training

    # the study-1 names
    G = property(lambda self: self.nets["G"])
    D = property(lambda self: self.nets["D"])
    opt_g = property(lambda self: self.opts["G"])
    opt_d = property(lambda self: self.opts["D"])
    batch_gen = property(lambda self: self.gens["batch"])
    noise_gen = property(lambda self: self.gens["noise"])

    @property
    def method(self):
        """The `gan.methods.Method` this state trains."""
        return method_of(self.cfg)

    @property
    def scored_nets(self) -> dict[str, torch.nn.Module]:
        """The networks sampling uses: every network, with each generator's EMA copy in its place when there is
        one (`cfg.scored_generator`)."""
        return {**self.nets, **self.ema}

    @property
    def sr_remaining(self) -> int:
        """SRCNN iterations still to run before the GAN's (0 for methods without an SRCNN)."""
        return max(self.cfg.srcnn_steps - self.sr_step, 0) if self.method.srcnn else 0

    @property
    def out_of_time(self) -> bool:
        """The training clock has reached the config's time budget (never, without one)."""
        return self.cfg.time_budget > 0 and self.elapsed >= self.cfg.time_budget

    @property
    def finished(self) -> bool:
        """Nothing left to train: every iteration done, the time budget spent, or diverged."""
        return self.diverged or self.out_of_time or (self.step >= self.cfg.steps and self.sr_remaining == 0)

    def state_dict(self) -> dict:
        """Tensors, dicts, numbers and strings only, so `torch.load(weights_only=True)` can read it back."""
        rng = {name: gen.get_state() for name, gen in self.gens.items()}
        rng["noise_device"] = self.device.type
        rng["torch_cpu"] = torch.get_rng_state()
        if torch.cuda.is_available():
            rng["torch_cuda"] = torch.cuda.get_rng_state_all()
        return {"method": self.method.name, "step": self.step, "sr_step": self.sr_step, "elapsed": self.elapsed,
                "sr_elapsed": self.sr_elapsed, "diverged": self.diverged,
                "nets": {name: net.state_dict() for name, net in self.nets.items()},
                "opts": {name: opt.state_dict() for name, opt in self.opts.items()},
                "ema": {name: net.state_dict() for name, net in self.ema.items()}, "daug": self.daug.state_dict(),
                "rng": rng, "config": flat(self.cfg)}

    def load_state_dict(self, sd: dict) -> None:
        """Restore networks, optimisers, counters and every RNG stream from `state_dict()` (or from the study-1
        checkpoints written before methods existed, so sweeps in flight resume across the upgrade)."""
        sd = _upgrade(sd)
        if set(sd["nets"]) != set(self.nets):
            raise ValueError(f"the checkpoint holds networks {', '.join(sd['nets'])} (method {sd['method']}), this "
                             f"config's method {self.method.name} has {', '.join(self.nets)}")
        for name, net in self.nets.items():
            net.load_state_dict(sd["nets"][name])
            self.opts[name].load_state_dict(sd["opts"][name])
        for name, net in self.ema.items():  # a checkpoint written before EMA existed: the average starts from G
            net.load_state_dict(sd.get("ema", {}).get(name, sd["nets"][name]))
        if "daug" in sd:
            self.daug.load_state_dict(sd["daug"])
        self.step, self.sr_step = int(sd["step"]), int(sd["sr_step"])
        self.elapsed, self.sr_elapsed = float(sd["elapsed"]), float(sd["sr_elapsed"])
        self.diverged = bool(sd["diverged"])
        rng = sd["rng"]
        for name, gen in self.gens.items():
            if name not in rng:  # a stream the checkpoint's code did not have (it never drew from it): keep it fresh
                continue
            if gen.device.type == "cpu" or rng["noise_device"] == self.device.type:
                gen.set_state(rng[name])
            else:  # CPU and CUDA generator states are not interchangeable: continue on a fresh, still seeded stream
                gen.manual_seed(stream_seed(self.cfg.seed, f"{name}@{self.step}"))
        torch.set_rng_state(rng["torch_cpu"])
        if "torch_cuda" in rng and torch.cuda.is_available() and len(rng["torch_cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["torch_cuda"])

    @classmethod
    def from_state_dict(cls, cfg: TrialConfig, sd: dict, device: torch.device | None = None) -> "TrainState":
        state = build_state(cfg, device)
        state.load_state_dict(sd)
        return state


def _upgrade(sd: dict) -> dict:
    """A checkpoint in today's layout: the study-1 layout (G, D, opt_g, opt_d at the top, no SRCNN counters) is
    mapped onto the named networks of a DCGAN; today's passes through."""
    if "nets" in sd:
        return sd
    old = {k: v for k, v in sd.items() if k not in ("G", "D", "opt_g", "opt_d")}
    return {**old, "method": f"dcgan{sd['config']['image_size']}", "sr_step": 0, "sr_elapsed": 0.0,
            "nets": {"G": sd["G"], "D": sd["D"]}, "opts": {"G": sd["opt_g"], "D": sd["opt_d"]}}


def build_state(cfg: TrialConfig, device: torch.device | None = None) -> TrainState:
    """Fresh networks and optimisers of cfg's method, every RNG stream seeded from `cfg.seed` (same seed -> same
    init). A study-1 config gets exactly the DCGAN it always got."""
    device = device or select_device()
    nets, opts = build_networks(cfg, device)
    gens = {"batch": torch.Generator().manual_seed(stream_seed(cfg.seed, "batch")),
            "noise": torch.Generator(device=device).manual_seed(stream_seed(cfg.seed, "noise")),
            "daug": torch.Generator(device=device).manual_seed(stream_seed(cfg.seed, "daug")),
            "sr": torch.Generator().manual_seed(stream_seed(cfg.seed, "sr"))}
    ema = {name: ema_copy(net) for name, net in nets.items() if name in GEN_NETS} if cfg.ema > 0 else {}
    daug = DAug(cfg, [name for name in nets if name.startswith("D")], device)
    configure_backends(device, cfg.deterministic)  # cuDNN benchmark, or deterministic kernels (gan.runtime)
    return TrainState(cfg, device, resolve_precision(cfg.precision, device), nets, opts, gens, daug, ema)


def _save_atomically(payload: dict, path) -> None:
    """torch.save through `gan.storage.atomic`: a crash never leaves half a file."""
    with storage.atomic(path) as tmp:
        torch.save(payload, tmp)


def save_state(state: TrainState, path) -> None:
    """Write `state.state_dict()` atomically: what `load_state` continues from."""
    _save_atomically(state.state_dict(), path)


def load_state(cfg: TrialConfig, path, device: torch.device | None = None) -> TrainState:
    """A TrainState restored from `save_state`'s file, safely (`weights_only=True`)."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return TrainState.from_state_dict(cfg, sd, device)



def save_generator(state: TrainState, path) -> None:
    """The sampling side of a trained method (its generators and SRCNN, without discriminators or optimisers) with
    the config that builds it: what a researcher loads to sample an arm later (`load_generator`). The raw
    generators under "nets", their EMA copies under "ema", and which one is scored. Written atomically; plain
    tensors and values, so it loads with `weights_only=True`."""
    nets = {name: net.state_dict() for name, net in state.nets.items() if name in GENERATOR_NETS}
    ema = {name: net.state_dict() for name, net in state.ema.items()}
    _save_atomically({"nets": nets, "ema": ema, "scored_generator": state.cfg.scored_generator,
                      "config": flat(state.cfg), "step": state.step}, path)


def load_generator(path, device: torch.device | str = "cpu") -> TrainState:
    """A state whose generators hold `save_generator`'s weights (read with `weights_only=True`), ready to sample:

        state = load_generator("generator.pt")
        images = gan.train.sample(state, gan.train.eval_noise(state.cfg, 64))
    """
    saved = torch.load(path, map_location="cpu", weights_only=True)
    state = build_state(TrialConfig(**saved["config"]), torch.device(device))
    for name, weights in saved["nets"].items():
        state.nets[name].load_state_dict(weights)
    for name, net in state.ema.items():
        net.load_state_dict(saved.get("ema", {}).get(name, saved["nets"][name]))
    state.step = int(saved["step"])
    return state

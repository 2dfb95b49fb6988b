"""gan.runtime's backend flags: what `configure_backends` sets in each mode, that the old flags come back, that a CPU
run is identical with and without `deterministic`, and the TrialConfig field."""

import pytest
import torch

from gan.config import TrialConfig, flat
from gan.runtime import BackendFlags, configure_backends


@pytest.fixture
def restore_flags():
    before = BackendFlags.current()
    yield before
    before.apply()


def test_deterministic_sets_every_flag_and_the_old_ones_come_back(restore_flags, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    start = BackendFlags.current()
    previous = configure_backends("cuda", deterministic=True)  # flags are process-wide: settable without a GPU
    assert previous == start
    now = BackendFlags.current()
    assert now == BackendFlags(cudnn_benchmark=False, cudnn_deterministic=True, deterministic_algorithms=True,
                               tf32_matmul=False, tf32_cudnn=False, cublas_workspace=":4096:8")
    assert torch.are_deterministic_algorithms_enabled()
    previous.apply()
    assert BackendFlags.current() == start


def test_default_mode_turns_benchmark_on_and_undoes_a_deterministic_trial(restore_flags, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    configure_backends("cpu", deterministic=True)
    assert BackendFlags.current().cublas_workspace == ":16:8"  # a deterministic setting already there is kept
    configure_backends("cpu", deterministic=False)  # the next trial on a reused worker
    assert BackendFlags.current() == BackendFlags(cudnn_benchmark=True, cudnn_deterministic=False,
                                                  deterministic_algorithms=False, tf32_matmul=False,
                                                  tf32_cudnn=True, cublas_workspace=":16:8")
    with pytest.raises(ValueError, match="allowed: cpu, cuda"):
        configure_backends("meta")


def short_run(cfg):
    from gan.checkpoint import build_state
    from gan.train import train_steps

    data = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    state = build_state(cfg, torch.device("cpu"))
    stats = train_steps(state, data, 3)
    return state, stats


def test_a_cpu_run_is_identical_with_and_without_deterministic(restore_flags):
    cfg = TrialConfig(g_width=8, d_width=8, batch_size=8, nz=16, steps=3, precision="fp32")
    a, stats_a = short_run(cfg)
    assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
    b, stats_b = short_run(cfg.replace(deterministic=True))
    assert torch.are_deterministic_algorithms_enabled()  # build_state applied the trial's setting
    assert (stats_a.loss_d, stats_a.loss_g) == (stats_b.loss_d, stats_b.loss_g)
    for name, tensor in a.G.state_dict().items():
        assert torch.equal(tensor, b.G.state_dict()[name]), name
    for name, tensor in a.D.state_dict().items():
        assert torch.equal(tensor, b.D.state_dict()[name]), name


def test_trial_config_deterministic_field():
    assert TrialConfig().deterministic is False
    cfg = TrialConfig(deterministic=True)
    assert flat(cfg)["deterministic"] is True
    assert TrialConfig(**flat(cfg)) == cfg
    with pytest.raises(ValueError, match="deterministic must be true or false"):
        TrialConfig(deterministic="yes")


def test_a_deterministic_sweep_sets_the_cublas_workspace_in_every_process_from_its_start():
    from sweep.execution.driver import process_env
    from sweep.plan import resolve_plan

    # cuBLAS reads CUBLAS_WORKSPACE_CONFIG once per process: the driver puts it in its own environment and in Ray's
    # job-level runtime_env before any process touches the GPU
    assert process_env(resolve_plan("demo", seeds=1, overrides={"deterministic": "true"})) == {
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    assert process_env(resolve_plan("demo", seeds=1)) == {}

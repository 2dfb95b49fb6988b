"""`--in-process`: the sweep's trials one after another in the driver, through the same trainable code.

For debugging (breakpoints work, no Ray workers). Trial folders mirror Tune's on-disk layout (`params.json`,
`result.json` with one JSON line per report, `checkpoint_NNNNNN/`), so reports, backfill and resume read both the
same way. A failing trial is recorded and the sweep goes on, as under Tune.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import traceback
from pathlib import Path

from gan.config import TrialConfig, params
from sweep.report import trial_outcome


def trial_id_for(index: int, config: dict) -> str:
    """Stable id, named like a Tune trial folder: arm, seed, position in the study and a hash of the config (so a
    resumed sweep finds its trials), e.g. `contrast_hflip_200-s0-00009_2e4523de`."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]
    arm = re.sub(r"[^A-Za-z0-9_.-]", "_", TrialConfig(**config).arm)
    return f"{arm}-s{config.get('seed', 0)}-{index:05d}_{digest}"


def _config_dict(cfg: TrialConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["da"] = params(cfg)["da"]
    return d


def _read_results(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _finished(trial_dir: Path, cfg: TrialConfig) -> bool:
    results = _read_results(trial_dir)
    return bool(results) and (results[-1].get("diverged") == 1 or results[-1].get("step", 0) >= cfg.steps)


def _suggestions(sweep):
    """(trial_id, config) pairs: the grid, or an Optuna searcher's suggestions fed back with each result."""
    if sweep.space.configs is not None:
        for i, cfg in enumerate(sweep.configs):
            config = _config_dict(cfg)
            yield trial_id_for(i, config), config, None
        return
    searcher = sweep.space.search_alg(metric=sweep.metric, mode=sweep.mode)
    for i in range(sweep.space.num_samples):
        config = {**sweep.space.constants, **searcher.suggest(f"optuna_{i:05d}")}  # as Tune merges param_space
        yield trial_id_for(i, config), config, (searcher, f"optuna_{i:05d}")


def run_in_process(sweep, opts, inputs: dict, tracker) -> None:
    from trainables import train_arm
    from trainables.session import InProcessSession

    root = Path(sweep.path)
    for trial_id, config, search in _suggestions(sweep):
        cfg = TrialConfig(**config)
        trial_dir = root / trial_id
        if _finished(trial_dir, cfg):
            continue
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "params.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        tracker.trial_started(trial_id, config, run_name=f"{cfg.arm} seed{cfg.seed}")
        results = _read_results(trial_dir)
        last: dict = results[-1] if results else {}

        def on_report(metrics: dict, checkpoint: str | None, _tid=trial_id, _dir=trial_dir):
            nonlocal last
            row = {**metrics, "trial_id": _tid, "timestamp": int(time.time()), "config": config,
                   "training_iteration": session.iteration,  # already counts this report
                   "checkpoint_dir_name": Path(checkpoint).name.removesuffix(".tmp") if checkpoint else None}
            with open(_dir / "result.json", "a") as f:
                f.write(json.dumps(row, default=str) + "\n")
            last = metrics
            tracker.trial_result(_tid, metrics)
            if checkpoint:
                tracker.trial_artifact(_tid, str(Path(checkpoint) / "samples.png"),
                                       name=f"step_{int(metrics['step']):06d}.png")
            if opts.verbose:
                ext = cfg.extractor
                print(f"[{_tid}] {cfg.arm:<22} step {metrics['step']:>6}  IS {metrics.get(f'is_mean_{ext}', float('nan')):.3f}"
                      f"  FID {metrics.get(f'fid_{ext}', float('nan')):.2f}  diverged {metrics['diverged']}", flush=True)

        session = InProcessSession(trial_dir, on_report, cpus=int(opts.cpus_per_trial or 0))  # 0: every core
        session.iteration = len(results)
        try:
            with session:
                train_arm(config, inputs)
            outcome = trial_outcome(last, config, status="TERMINATED")
        except Exception:
            (trial_dir / "error.txt").write_text(traceback.format_exc())
            print(f"[{trial_id}] failed:\n{traceback.format_exc()}", flush=True)
            outcome = "failed"
        tracker.trial_finished(trial_id, outcome)
        if search is not None:  # tell Optuna how the point it suggested did
            searcher, suggestion_id = search
            searcher.on_trial_complete(suggestion_id, last if outcome != "failed" else None,
                                       error=outcome == "failed")

"""The resolved plan of a sweep: its study, configs, paths and options, decided once and frozen.

`resolve_plan` does every check that needs neither data nor Ray (bad input raises ValueError with one line), so
`gansweep run` fails before Ray starts. Nothing changes a plan afterwards: what is only known at run time (how many
GPUs a trial gets on the cluster it joined) is computed where it is used. `gansweep.json` in the sweep folder is
the plan's record, resolved configs included; `plan_from_record` rebuilds the plan for `resume` and `report` from
the record's study and overrides, with the options a resume may change (address, MLflow URI) replaced, and
`configs_changed` says whether today's code resolves them to the configs the sweep was started with.

A resume (`plan_for_resume`) is refused when it does not: the trials already written ran with the recorded configs,
and continuing them (or preparing their inputs) with others would mix two experiments in one sweep. Rebuilding the
study from the recorded configs instead would still run today's code on them (an Optuna study's space is code, and a
field the record lacks would take today's default), so the safe answer is the one line that names the first change
and the commit the sweep was started with: nothing already written is touched, and a resume with that code is
bit-exact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field

from gan.config import TrialConfig, flat
from gan.metrics.schema import direction, rankable
from search_spaces import Design, GridStudy, OptunaStudy, build_study
from sweep.mlflow.active import source_version
from gan import storage
from sweep.mlflow.layout import DEFAULT_EXPERIMENT
from sweep.mlflow.tracker import DEFAULT_PATIENCE, DEFAULT_URI

RECORD = "gansweep.json"
SCHEDULERS = ("fifo", "asha")


@dataclass(frozen=True)
class Options:
    """How and where a sweep runs (everything but the study)."""

    storage: str = "./gansweep_results"  # local folder or URI (s3://...) for Tune results, checkpoints, donor cache
    name: str | None = None  # sweep folder name; default <study>-<timestamp>
    mlflow_uri: str = DEFAULT_URI  # MLflow tracking URI (a sqlite file or an http(s) server)
    experiment: str = DEFAULT_EXPERIMENT  # MLflow experiment
    mlflow_patience: float = DEFAULT_PATIENCE  # seconds each MLflow call retries an unreachable store, then offline
    address: str | None = None  # join this Ray cluster ("auto" = the one this machine belongs to)
    in_process: bool = False  # run trials one by one in this process (debugging; no Ray workers)
    cpus_per_trial: float | None = None  # None = 1 under Ray; every core in-process
    gpus_per_trial: float | None = None  # None = 1 when the cluster has GPUs, else 0; fractions pack trials
    max_concurrent: int | None = None  # cap on trials running at once (None = as resources allow)
    scheduler: str = "fifo"  # fifo | asha
    metric: str | None = None  # what ASHA/Optuna optimise and the report ranks by (default: the study's)
    mode: str | None = None  # min | max (default: the study's, or the metric's direction)
    max_failures: int = 2  # restarts of a trial from its last checkpoint after its worker dies
    keep_checkpoints: int = 2  # checkpoints Tune keeps per trial (the last is always kept)
    num_cpus: int | None = None  # CPUs of the one-node Ray started when no --address is given
    cache_dir: str | None = None  # image-set and feature caches (default: gan.cache.cache_root())
    verbose: int = 1  # Tune's verbosity (0 = quiet)
    argv: tuple[str, ...] = field(default_factory=lambda: ("gansweep", *sys.argv[1:]))  # the command line


@dataclass(frozen=True)
class Plan:
    """A resolved sweep."""

    study: GridStudy | OptunaStudy  # the study, already restricted to `only`
    configs: tuple[TrialConfig, ...]  # grid: every trial in run order; optuna: a validated sample of its space
    name: str  # the sweep folder's name
    path: str  # <storage>/<name>: absolute, or a URI
    metric: str  # what the report ranks by (and ASHA/Optuna optimise)
    mode: str  # min | max
    seeds: int | None  # seeds per arm asked for (None = the study's default)
    overrides: tuple[tuple[str, object], ...]  # the study overrides as given, for the record
    num_samples: int | None  # Optuna trials asked for (None = the study's default)
    only: tuple[str, ...]  # arms kept (grid studies); empty = all
    options: Options  # storage and MLflow URI absolute

    @property
    def design(self) -> Design:
        return self.study.design

    @property
    def donor_dir(self) -> str:
        """Where donor GANs are cached: beside the sweeps of the same storage, so later sweeps reuse them."""
        return storage.join(storage.absolute(self.options.storage), "donors")

    def record(self) -> dict:
        """What `gansweep.json` holds: enough to rebuild this plan, the configs it resolved to (flat, to check a
        rebuild against) and the code that resolved them."""
        return {"study": self.study.name, "seeds": self.seeds, "overrides": dict(self.overrides), "name": self.name,
                "num_samples": self.num_samples, "only": list(self.only), "metric": self.metric, "mode": self.mode,
                "design": self.design.as_dict(), "options": dataclasses.asdict(self.options),
                "configs": [flat(c) for c in self.configs], "code": source_version(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def absolute_mlflow_uri(uri: str) -> str:
    """`sqlite:///mlflow.db` -> `sqlite:////abs/cwd/mlflow.db`, so resume/report later find the same store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + os.path.abspath(uri[len(prefix):])
    return uri


STORAGE_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")  # what pyarrow.fs (and Tune) open


def check_storage(path: str) -> None:
    """Where results go must be usable before Ray starts (one line, ValueError): a URI of a scheme pyarrow opens
    (reached only when the sweep writes), or a local folder that exists or can be made, writable. Probing writes
    and removes one temporary file in the nearest folder that exists."""
    import tempfile

    if storage.is_uri(path):
        scheme = str(path).split("://", 1)[0].lower()
        if scheme not in STORAGE_SCHEMES:
            raise ValueError(f"--storage {path}: unknown scheme {scheme!r}; allowed: a local folder or "
                             + ", ".join(f"{s}://" for s in STORAGE_SCHEMES))
        return
    folder = storage.absolute(path)
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "is a file" if existing == folder else f"is inside {existing}, which is a file"
        raise ValueError(f"--storage {path} {what}; give a folder (it is made if missing)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise ValueError(f"--storage {path}: cannot write in {existing} ({e.strerror or e}); give a writable "
                         "folder") from e


def _check_options(options: Options) -> None:
    check_storage(options.storage)
    if options.scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler {options.scheduler!r} is unknown; allowed: {', '.join(SCHEDULERS)}")
    if options.in_process and storage.is_uri(options.storage):
        raise ValueError(f"--in-process writes trials to a local folder; give a local --storage, not "
                         f"{options.storage}")
    if not options.mlflow_uri.startswith(("sqlite:///", "http://", "https://", "postgresql", "mysql")):
        raise ValueError(f"MLflow URI {options.mlflow_uri!r} is not supported; allowed: sqlite:///PATH, "
                         "http(s)://HOST:PORT, postgresql://..., mysql://...")


def _metric(study, configs: tuple[TrialConfig, ...], options: Options) -> tuple[str, str]:
    """The ranking metric and its mode: the options' or the study's, checked against what the trials report."""
    metric = options.metric or study.metric
    known = sorted({k for c in configs for k in rankable(c.extractor)})
    if metric not in known:
        raise ValueError(f"metric {metric!r} is not reported by this study; allowed: {', '.join(known)}")
    mode = options.mode or (study.mode if metric == study.metric else direction(metric) or "max")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be min or max, got {mode!r}")
    return metric, mode


def resolve_plan(study: str, *, seeds: int | None = None, overrides: dict | None = None,
                 num_samples: int | None = None, only=(), options: Options = Options()) -> Plan:
    """Everything that can be checked without data or Ray; raises ValueError with one line on bad input."""
    overrides = dict(overrides or {})
    if isinstance(overrides.get("dataset"), (list, tuple)) and len(overrides["dataset"]) == 1:
        overrides["dataset"] = overrides["dataset"][0]
    _check_options(options)
    space = build_study(study, seeds=seeds, overrides=overrides, num_samples=num_samples)
    if only:
        space = space.restrict(list(only))
    configs = tuple(TrialConfig(**c) for c in space.planned())
    options = dataclasses.replace(options, mlflow_uri=absolute_mlflow_uri(options.mlflow_uri))
    metric, mode = _metric(space, configs, options)
    if any(c.time_budget > 0 for c in configs) and options.gpus_per_trial and options.gpus_per_trial < 1:
        raise ValueError(f"study {study!r} compares methods at equal training time, which needs the same hardware "
                         f"for every trial; --gpus-per-trial {options.gpus_per_trial:g} would make trials share a "
                         "GPU: use --gpus-per-trial 1 (or 0 on CPUs)")
    name = options.name or f"{study}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Plan(study=space, configs=configs, name=name, path=storage.join(storage.absolute(options.storage), name),
                metric=metric, mode=mode, seeds=seeds, overrides=tuple(overrides.items()), num_samples=num_samples,
                only=tuple(only), options=options)


def load_record(path: str) -> dict:
    """The `gansweep.json` of the sweep at `path`; FileNotFoundError (one line) for a folder that is not a sweep."""
    path = storage.absolute(path)
    record_path = storage.join(path, RECORD)
    if not storage.exists(record_path):
        raise FileNotFoundError(f"{path} is not a gansweep sweep folder (no {RECORD}); pass the folder `gansweep run` "
                                "printed, e.g. ./gansweep_results/demo-20260101-120000")
    return json.loads(storage.read_text(record_path))


def plan_from_record(path: str, record: dict | None = None, **changes) -> Plan:
    """The plan of the sweep at `path`, as it was resolved (from `record`, its `gansweep.json` when the caller has
    read it already), with `changes` (Options fields such as `address` or `mlflow_uri`; None = keep) applied. The
    folder stays where it is now (storage may have moved)."""
    path = storage.absolute(path)
    record = load_record(path) if record is None else record
    known = {f.name for f in dataclasses.fields(Options)}
    saved = {k: v for k, v in record["options"].items() if k in known}
    parent, name = (path.rstrip("/").rsplit("/", 1) if storage.is_uri(path) else
                    (os.path.dirname(path.rstrip("/")), os.path.basename(path.rstrip("/"))))
    saved.update(storage=parent, name=name, argv=("gansweep", *sys.argv[1:]))
    saved.update({k: v for k, v in changes.items() if v is not None})
    return resolve_plan(record["study"], seeds=record["seeds"], overrides=record["overrides"],
                        num_samples=record.get("num_samples"), only=tuple(record.get("only") or ()),
                        options=Options(**saved))


def configs_changed(plan: Plan, record: dict) -> str | None:
    """How the configs `plan` resolves to differ from those `record` was resolved to, in words (the first differing
    field of the first differing trial), or None when they are the same. A record written before configs were
    recorded compares as unchanged."""
    recorded = record.get("configs")
    if recorded is None:
        return None
    now = [json.loads(json.dumps(flat(c))) for c in plan.configs]  # as the record holds them
    if len(now) != len(recorded):
        return f"this code resolves {len(now)} trials, the sweep was started with {len(recorded)}"
    missing = "(no such field)"
    for i, (was, new) in enumerate(zip(recorded, now)):
        for key in list(new) + [k for k in was if k not in new]:
            if was.get(key, missing) != new.get(key, missing):
                return (f"this code resolves trial {i} ({plan.configs[i].arm}, seed {plan.configs[i].seed}) with "
                        f"{key}={new.get(key, missing)}, the sweep was started with {key}={was.get(key, missing)}")
    return None


def plan_for_resume(path: str, **changes) -> Plan:
    """`plan_from_record` for a resume: ValueError (one line) when today's code resolves the sweep to other configs
    than it was started with (see the module's docstring for why this refuses rather than guesses)."""
    record = load_record(path)
    plan = plan_from_record(path, record, **changes)
    changed = configs_changed(plan, record)
    if changed:
        raise ValueError(f"cannot resume {plan.path}: {changed}; resume it with the code that started it "
                         f"({record.get('code', 'unknown version')}), or start a new sweep")
    if "configs" not in record:
        print(f"gansweep: note: {plan.path} was recorded without its configs (an older gansweep): resuming with the "
              "configs this code resolves", file=sys.stderr, flush=True)
    return plan


def dry_run_lines(plan: Plan, as_json: bool) -> list[str]:
    """One line per trial config (an Optuna study's are sampled points, marked as such)."""
    lines = []
    for cfg in plan.configs:
        row = {**flat(cfg), "arm": cfg.arm}
        if plan.study.sampled:
            row["sampled"] = True
        budget = f"time_budget={cfg.time_budget:g}s" if cfg.time_budget else f"steps={cfg.steps}"
        lines.append(json.dumps(row, sort_keys=True) if as_json else
                     f"{cfg.arm:<24} dataset={cfg.dataset} seed={cfg.seed} size={cfg.image_size} {budget} "
                     f"extractor={cfg.extractor}")
    return lines

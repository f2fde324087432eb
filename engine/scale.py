"""Training on several GPUs: `ponder launch-command SPEC --gpus N [--sharding zero2|zero3|fsdp]`.

The stages are TRL trainers, which are accelerate-native, so the same worker runs unchanged
under `accelerate launch`; every rank trains, only rank 0 (`engine.stages.is_main_process`)
writes to the run store, so the GUI and `ponder show` follow the run as usual. This module
prepares the run like `engine.launch.create_run` (a queued run in the store, RUN_DIR/spec.toml),
writes RUN_DIR/accelerate.yaml from the configs TRL ships (trl/accelerate_configs) and prints
the command:

    accelerate launch --config_file RUN_DIR/accelerate.yaml -m engine.worker RUN_DIR --store DB

`--cpu` runs N processes on the CPU (gloo) to try a launch without GPUs. accelerate's own
`--cpu` flag would not: with it, `accelerate launch` always takes its single-process launcher
(multi-CPU runs there go through mpirun only), so the config says MULTI_GPU, which launches
N processes through torchrun, and each worker trains on the CPU because no GPU is visible.
No torch here.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --sharding -> TRL's config file (DDP needs none: plain data parallel)
STRATEGIES = {"ddp": "multi_gpu.yaml", "zero2": "zero2.yaml", "zero3": "zero3.yaml", "fsdp": "fsdp2.yaml"}
PRECISIONS = {"float32": "no", "float16": "fp16", "bfloat16": "bf16", "auto": "bf16"}


class LaunchError(ValueError):
    """The launch cannot be prepared as asked; the message says why and what to change."""


@dataclass
class Launch:
    run_id: int
    run_dir: Path
    config: Path
    argv: list[str]
    notes: list[str]

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def trl_config(name: str) -> Path:
    """A config file TRL ships (found without importing trl, which is slow to import)."""
    found = importlib.util.find_spec("trl")
    if found is None or not found.submodule_search_locations:
        raise LaunchError("trl is not installed")
    return Path(found.submodule_search_locations[0]) / "accelerate_configs" / name


def accelerate_config(spec, gpus: int, strategy: str = "ddp", cpu: bool = False) -> dict[str, Any]:
    """The accelerate config for `gpus` processes with `strategy`, from TRL's own files."""
    import yaml

    if strategy not in STRATEGIES:
        raise LaunchError(f"--sharding must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    if gpus < 1:
        raise LaunchError(f"--gpus must be at least 1; got {gpus}")
    if cpu and strategy != "ddp":
        raise LaunchError(f"--cpu runs plain data-parallel processes; {strategy} needs GPUs")
    name = "single_gpu.yaml" if gpus == 1 and strategy == "ddp" else STRATEGIES[strategy]
    config = yaml.safe_load(trl_config(name).read_text(encoding="utf-8"))
    config["num_processes"] = gpus
    # The trainer's bf16/fp16 flags (from spec.model.dtype) win over this; with float32 they are both off and
    # this value would apply (transformers' TrainingArguments reads ACCELERATE_MIXED_PRECISION), so say "no".
    config["mixed_precision"] = "no" if cpu else PRECISIONS.get(spec.model.dtype, "bf16")
    if cpu:
        config.update(distributed_type="MULTI_GPU" if gpus > 1 else "NO", use_cpu=False, gpu_ids="all")
    return config


def notes_for(spec, gpus: int, strategy: str, cpu: bool) -> list[str]:
    notes = []
    if "grpo" in spec.stages and gpus > 1:
        g = spec.grpo
        total = gpus * g.batch_size
        notes.append(f"grpo.batch_size counts completions per process: each step now takes {total} "
                     f"completions ({total // g.num_generations} prompts) across {gpus} processes")
    if strategy in ("zero2", "zero3") and importlib.util.find_spec("deepspeed") is None:
        notes.append("DeepSpeed is not installed here: pip install deepspeed on the training machine first")
    if spec.model.device == "cpu" and not cpu:
        notes.append("model.device is cpu: every process trains on the CPU; set it to auto to use the GPUs")
    if spec.model.device.startswith("cuda:") and gpus > 1:
        notes.append(f"model.device is {spec.model.device}: every process would load the model there; set it "
                     "to auto")
    if "eval" in spec.stages and gpus > 1:
        notes.append("the eval stage generates on the main process only")
    if gpus > 1:
        notes.append("`ponder stop` (or Stop in the app) stops every process at the same step with a checkpoint; "
                     "to resume, run this command again with --resume at the end")
    return notes


def accelerate_executable() -> list[str]:
    script = Path(sys.executable).parent / "accelerate"
    return [str(script)] if script.is_file() else ["accelerate"]


def prepare_launch(spec, store, gpus: int, strategy: str = "ddp", cpu: bool = False) -> Launch:
    """Register a queued run, write RUN_DIR/spec.toml and RUN_DIR/accelerate.yaml; returns the command."""
    import yaml

    from engine.launch import create_run
    from engine.spec import resolve_paths, spec_from_dict

    spec = spec_from_dict(resolve_paths(spec.to_dict(), Path.cwd()))  # the worker finds them from any folder
    config = accelerate_config(spec, gpus, strategy, cpu)  # before the run exists: a bad request leaves none
    run_id, run_dir = create_run(spec, store)
    config_path = run_dir / "accelerate.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=True), encoding="utf-8")
    argv = [*accelerate_executable(), "launch", "--config_file", str(config_path), "-m", "engine.worker",
            str(run_dir), "--store", str(Path(store.path).resolve())]
    return Launch(run_id, run_dir, config_path, argv, notes_for(spec, gpus, strategy, cpu))


# ---- command line ---------------------------------------------------------------------------------

def cmd_launch_command(args) -> int:
    from engine.cli import EXIT_USAGE, _out, load_spec_or_say
    from engine.store import RunStore

    spec = load_spec_or_say(args.spec, args.name)
    if spec is None:
        return EXIT_USAGE
    with RunStore(args.store) as store:
        try:
            launch = prepare_launch(spec, store, args.gpus, args.sharding, args.cpu)
        except LaunchError as exc:
            _out(str(exc))
            return EXIT_USAGE
    # Comments and one command: the output is a shell script (ponder launch-command ... > run.sh).
    where = f"{args.gpus} process{'es' * (args.gpus > 1)} on the CPU" if args.cpu else \
        f"{args.gpus} GPU{'s' * (args.gpus > 1)}, {args.sharding}"
    _out(f"# run {launch.run_id} ({spec.name}), {where}: {launch.run_dir}")
    _out(f"# accelerate config: {launch.config}")
    for note in launch.notes:
        _out(f"# note: {note}")
    _out(f"# follow it with `ponder show {launch.run_id}` or in the app")
    _out(launch.command)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("launch-command",
                       help="prepare a run for several GPUs and print its accelerate launch command")
    p.add_argument("spec", type=Path)
    p.add_argument("--gpus", type=int, required=True, help="processes, one per GPU")
    p.add_argument("--sharding", "--deepspeed", dest="sharding", default="ddp", choices=list(STRATEGIES),
                   help="ddp (default: a full copy per GPU), DeepSpeed zero2 / zero3, or fsdp (FSDP2)")
    p.add_argument("--cpu", action="store_true", help="N processes on the CPU instead (to try the setup)")
    p.add_argument("--name", default=None, help="override the spec's run name")
    p.set_defaults(func=cmd_launch_command)

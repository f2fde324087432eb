"""The run spec: everything a run needs, as dataclasses, loaded from and saved to TOML.

Validation reports every problem at once, each with the dotted path of its field and a
fix in words a user understands, so the GUI can mark each widget. No torch here.

errors: SpecError, SpecInvalid and the number rules; inputs: model, LoRA and data; rewards: the
reward settings; stages: each stage's settings; run: RunSpec; files: TOML in and out.
"""

from engine.spec.errors import INT_MAX, SEED_MAX, SpecError, SpecInvalid
from engine.spec.files import PATH_FIELDS, dumps_spec, load_spec, resolve_paths, save_spec, spec_from_dict
from engine.spec.inputs import (BUILTIN_MODELS, BUNDLED_MODELS, DEVICES, DTYPES, DataSpec, LoraSpec,
                                ModelSpec)
from engine.spec.rewards import PROMPT_MODES, RewardSpec
from engine.spec.run import STAGE_ORDER, RunSpec
from engine.spec.stages import (DPO_LOSS_TYPES, LOSS_TYPES, SCALE_REWARDS, SFT_TRACES, TEACHER_PROMPT,
                                EvalSpec, GRPOSpec, HealthSpec, JudgeSpec, PreferSpec, SFTSpec,
                                grpo_prompts_per_step)

__all__ = ["BUILTIN_MODELS", "BUNDLED_MODELS", "DEVICES", "DPO_LOSS_TYPES", "DTYPES", "INT_MAX", "LOSS_TYPES",
           "PATH_FIELDS", "PROMPT_MODES", "SCALE_REWARDS", "SEED_MAX", "SFT_TRACES", "STAGE_ORDER",
           "TEACHER_PROMPT", "DataSpec", "EvalSpec", "GRPOSpec", "HealthSpec", "JudgeSpec", "LoraSpec",
           "ModelSpec", "PreferSpec", "RewardSpec", "RunSpec", "SFTSpec", "SpecError", "SpecInvalid",
           "dumps_spec", "grpo_prompts_per_step", "load_spec", "resolve_paths", "save_spec", "spec_from_dict"]

"""The cosmology domain: CosmoGridV1 weak-lensing maps → patches → SOP regressors of Ωm and σ8
→ voids and clusters. docs/pipeline.md maps the stages to modules, rules and result folders.

The public names below load on first use, so ``import sop_cosmo.cosmo.config`` (as the
Snakefile does) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name → the module that owns it.
_OWNERS: dict[str, str] = {
    # stages
    "simulate_grid": "stages.simulate",
    "preprocess": "stages.preprocess",
    "train": "stages.train",
    "evaluate": "stages.evaluate",
    "run_baselines": "stages.attribute",
    "analyze": "stages.analyse",
    "run_controls": "stages.controls",
    "describe_findings": "stages.report",
    "describe_baselines": "stages.report",
    "describe_controls": "stages.report",
    # configs (one per stage) and shared constants
    "SimulateConfig": "config",
    "PreprocessConfig": "config",
    "TrainConfig": "config",
    "TrainStageConfig": "config",
    "EvaluateConfig": "config",
    "Thresholds": "config",
    "AnalyzeConfig": "config",
    "BaselinesConfig": "config",
    "ControlsConfig": "config",
    "CNNOptions": "config",
    "SOPOptions": "config",
    "StatsOptions": "config",
    "GROUP_TYPES": "config",
    "MODEL_KINDS": "config",
    # contracts
    "find_maps": "contracts.cosmogrid",
    "read_map": "contracts.cosmogrid",
    "read_metainfo": "contracts.cosmogrid",
    "read_patches": "contracts.patchfile",
    "write_patch_file": "contracts.patchfile",
    "Checkpoint": "contracts.checkpoint",
    "load_checkpoint": "contracts.checkpoint",
    # shared layers
    "load_split": "dataset",
    "build_model": "models",
    "load_model": "models",
    "select_device": "runtime",
}

__all__ = sorted(_OWNERS)


def __getattr__(name: str) -> Any:
    owner = _OWNERS.get(name)
    if owner is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{owner}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

# Config loading and validation, and helpers shared by the rules. No science lives here.
import json
import shlex
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


# Fills defaults and stops before any job starts, naming the offending key.
validate(config, "../schemas/config.schema.yaml")

RESULTS = Path(config["results"])
LOGS = Path(config["logs"])
SPLITS = ("train", "val", "test")
SIMULATED = config["data"]["source"] == "simulated"
DATA_ROOT = RESULTS / "simulate" if SIMULATED else Path(config["data"]["root"])
# Training and attribution jobs ask for one GPU (sbatch --gpus=1 under profiles/slurm) unless
# the config pins them to the CPU; a GPU request would then only wait for a node it never uses.
GPU = 0 if config["train"]["device"] == "cpu" else 1


def metainfo_input():
    """The metainfo file: made by the simulate rule, or the real data's own."""
    if SIMULATED:
        return DATA_ROOT / "CosmoGrid" / "CosmoGridV1_metainfo.h5"
    path = DATA_ROOT / "CosmoGrid" / "CosmoGridV1_metainfo.h5"
    if not path.is_file():
        raise ValueError(
            f"data.root: {path} not found; data.root must contain CosmoGrid/ "
            "with CosmoGridV1_metainfo.h5 (see config/README.md)"
        )
    return path


def json_option(options):
    """A dict as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(options, sort_keys=True))


def optional_flag(name, value):
    """A command-line option, or nothing when the config leaves it unset.

    ``None`` and ``False`` give nothing, ``True`` gives the bare flag, any other value
    ``name value`` (shell-quoted).
    """
    if value is None or value is False:
        return ""
    if value is True:
        return name
    return f"{name} {shlex.quote(str(value))}"


def threshold_flags():
    """The void/cluster thresholds and bin of the analysis, shared by analyze and baselines."""
    cfg = config["analyze"]
    return " ".join(
        optional_flag(f"--{key.replace('_', '-')}", cfg[key])
        for key in ("void_sigma", "cluster_sigma", "tau_void", "tau_cluster", "bin")
    )


def all_outputs():
    """Final targets of the workflow."""
    targets = [RESULTS / "theory" / "theory.csv", RESULTS / "theory" / "theory.png"]
    targets += [
        RESULTS / "evaluate" / m / "test_metrics.json" for m in ("cnn", "sop", "stats")
    ]
    targets += [
        RESULTS / "analyze" / "summary.json",
        RESULTS / "baselines" / "baselines.csv",
        RESULTS / "controls" / "controls.json",
        RESULTS / "report" / "void_cluster_findings.ipynb",
    ]
    return targets

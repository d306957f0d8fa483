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


def all_outputs():
    """Final targets of the workflow."""
    targets = [RESULTS / "theory" / "theory.csv", RESULTS / "theory" / "theory.png"]
    targets += [
        RESULTS / "evaluate" / m / "test_metrics.json" for m in ("cnn", "sop", "stats")
    ]
    return targets

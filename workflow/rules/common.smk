# Config loading and validation, and helpers shared by the rules. No science lives here.
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


# Fills defaults and stops before any job starts, naming the offending key.
validate(config, "../schemas/config.schema.yaml")

RESULTS = Path(config["results"])
LOGS = Path(config["logs"])


def all_outputs():
    """Final targets of the workflow."""
    return [RESULTS / "theory" / "theory.csv", RESULTS / "theory" / "theory.png"]

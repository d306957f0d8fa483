# Config loading and validation, and helpers shared by the rules. No science lives here.
import dataclasses
import json
import shlex
from pathlib import Path

import yaml
from snakemake.utils import min_version, validate

from sop_cosmo.cosmo.config import SPLITS, Thresholds
from sop_cosmo.cosmo.contracts.cosmogrid import metainfo_path
from sop_cosmo.workflow_config import check_config, fill_defaults, stage_flags

min_version("9.0")


configfile: "config/config.yaml"


# Stops before any job starts. The schema checks types and ranges; check_config's error is one
# line naming the key, its value and what is allowed (with a "did you mean"), so Snakemake's
# validate, kept for the top-level defaults it fills in, never dumps the schema. The defaults
# of the stage sections come from the package's config dataclasses (their one source, shared
# with the CLI), filled in after validation.
SCHEMA = Path(workflow.current_basedir).parent / "schemas" / "config.schema.yaml"
SCHEMA_DICT = yaml.safe_load(SCHEMA.read_text())
check_config(config, SCHEMA_DICT)
validate(config, str(SCHEMA))
fill_defaults(config, SCHEMA_DICT)

# noise_levels: one level is the run's own preprocess noise and smoothing (the same paths as
# without it); several add one preprocess -> train -> evaluate branch per level (levels.smk).
LEVELS = {level["name"]: level for level in config["noise_levels"]}
for name in LEVELS:
    if [level["name"] for level in config["noise_levels"]].count(name) > 1:
        raise ValueError(
            f"config: noise_levels: the name {name!r} is given to more than one level; "
            "give each level its own name"
        )
if len(LEVELS) == 1:
    config["preprocess"].update(
        {k: v for k, v in config["noise_levels"][0].items() if k != "name"}
    )

RESULTS = Path(config["results"])
LOGS = Path(config["logs"])
SIMULATED = config["data"]["source"] == "simulated"
DATA_ROOT = RESULTS / "simulate" if SIMULATED else Path(config["data"]["root"])
# Training and attribution jobs ask for one GPU (sbatch --gpus=1 under profiles/slurm) unless
# the config pins them to the CPU; a GPU request would then only wait for a node it never uses.
GPU = 0 if config["train"]["device"] == "cpu" else 1
# The void/cluster typing rule of the analysis; baselines score purity with the same one.
THRESHOLDS = {f.name: config["analyze"][f.name] for f in dataclasses.fields(Thresholds)}
# Training seeds: every model is trained once per seed; the analysis combines the SOP seeds.
SEEDS = [int(s) for s in config["train"]["seeds"]]
if config["nulls"]["gaussian_maps"] and not SIMULATED:
    raise ValueError(
        "config: nulls.gaussian_maps = true needs data.source simulated (the Gaussian maps "
        "come from the simulator); set it false for real data"
    )


wildcard_constraints:
    seed=r"\d+",


def metainfo_input():
    """The metainfo file: made by the simulate rule, or the real data's own."""
    path = metainfo_path(DATA_ROOT)
    if not SIMULATED and not path.is_file():
        raise ValueError(
            f"data.root: {path} not found; data.root must contain CosmoGrid/ "
            "with CosmoGridV1_metainfo.h5 (see config/README.md)"
        )
    return path


def json_option(options):
    """A dict as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(options, sort_keys=True))


def flags(section, **overrides):
    """The config section as the stage's command-line options (sop_cosmo.workflow_config)."""
    return stage_flags(section, {**config[section], **overrides})


def train_flags(kind, seed):
    """Options of one training run: its seed, the train section's device, the model's epochs
    (left out when null: the package default) and model options."""
    cfg = config["train"]
    # The statistics MLP is small: it always runs on the CPU.
    device = "cpu" if kind == "stats" else cfg["device"]
    out = f"--model {kind} --seed {int(seed)} --device {device}"
    if cfg[f"{kind}_epochs"] is not None:
        out += f" --epochs {cfg[f'{kind}_epochs']}"
    if kind != "stats":
        out += f" --model-options {json_option(cfg[f'{kind}_options'])}"
    return out


def sop_models():
    """The SOP checkpoint of every training seed, in the order of train.seeds."""
    return [RESULTS / "train" / "sop" / f"seed{s}" / "model.pt" for s in SEEDS]


def checkpoint_flags(models):
    """--checkpoint FIRST [--ensemble REST...]: the SOP of every seed, in seed order."""
    first, *rest = (shlex.quote(str(m)) for m in models)
    return f"--checkpoint {first}" + (f" --ensemble {' '.join(rest)}" if rest else "")


# The permuted-label null's analysis (nulls.smk); with nulls.permuted_labels the real analysis
# gates its claims on it.
NULL_SUMMARY = RESULTS / "analyze_null_permuted" / "summary.json"


def null_input():
    """{"null": the null's summary.json} when nulls.permuted_labels is on, else nothing."""
    return {"null": NULL_SUMMARY} if config["nulls"]["permuted_labels"] else {}


def null_flag(wildcards, input):
    """--null-summary PATH when the rule has a null input (the null's own analysis has none)."""
    null = input.get("null")
    return f"--null-summary {shlex.quote(str(null))}" if null else ""


# The Gaussian-maps null (nulls.smk): its analysis, and its skill and effects next to the
# lognormal run's (sop-cosmo compare).
GAUSSIAN_SUMMARY = RESULTS / "analyze_null_gaussian" / "summary.json"
GAUSSIAN_COMPARISON = RESULTS / "nulls" / "gaussian_vs_lognormal.json"


def gaussian_input():
    """{"gaussian": the comparison JSON} when nulls.gaussian_maps is on, else nothing."""
    return {"gaussian": GAUSSIAN_COMPARISON} if config["nulls"]["gaussian_maps"] else {}


def gaussian_flag(wildcards, input):
    """-p gaussian_null PATH (papermill) when the notebook rule has the comparison input."""
    path = input.get("gaussian")
    return f"-p gaussian_null {shlex.quote(str(path))}" if path else ""


# The noise-level sweep (levels.smk): one folder per level, and the gathered skill.
LEVELS_DIR = RESULTS / "levels"
# The models that sop-cosmo compare sets side by side, each of the first training seed.
COMPARED_MODELS = ("cnn", "sop")


def first_seed_metrics(evaluate_dir):
    """{model: test_metrics.json of the first training seed} under an evaluate folder."""
    return {
        m: Path(evaluate_dir) / m / f"seed{SEEDS[0]}" / "test_metrics.json"
        for m in COMPARED_MODELS
    }


def compare_flags(runs):
    """--metrics LABEL MODEL FILE for every run ({label: {model: file}}), reference first."""
    return " ".join(
        f"--metrics {shlex.quote(name)} {model} {shlex.quote(str(path))}"
        for name, models in runs.items()
        for model, path in models.items()
    )


def level_flags(wildcards):
    """The preprocess options of one level: its noise and smoothing over the preprocess section."""
    level = LEVELS[wildcards.level]
    return flags("preprocess", **{k: v for k, v in level.items() if k != "name"})


def all_outputs():
    """Final targets of the workflow."""
    targets = [RESULTS / "theory" / "theory.csv", RESULTS / "theory" / "theory.png"]
    targets += expand(
        RESULTS / "evaluate" / "{model}" / "seed{seed}" / "test_metrics.json",
        model=("cnn", "sop", "stats"),
        seed=SEEDS,
    )
    targets += [
        RESULTS / "analyze" / "summary.json",
        RESULTS / "baselines" / "baselines.csv",
        RESULTS / "controls" / "controls.json",
        RESULTS / "report" / "void_cluster_findings.ipynb",
        RESULTS / "report" / "void_cluster_findings.html",
    ]
    if config["nulls"]["permuted_labels"]:  # nulls.smk
        targets.append(NULL_SUMMARY)
    if config["nulls"]["gaussian_maps"]:  # nulls.smk
        targets += [GAUSSIAN_SUMMARY, GAUSSIAN_COMPARISON]
    if len(LEVELS) > 1:  # levels.smk
        targets += [
            LEVELS_DIR / "skill_by_level.csv",
            LEVELS_DIR / "skill_by_level.png",
        ]
    return targets

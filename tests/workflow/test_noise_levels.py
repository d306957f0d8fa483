"""noise_levels: one level is the run's own setting (same jobs, same paths); several plan, per
level, preprocess -> train (first seed) -> evaluate under results/levels/<name>/ and one
skill_by_level job; a bad level stops the plan naming the key."""

import re

import pytest

from tests.workflow.test_snakemake import snakemake

TWO_LEVELS = """noise_levels:
  - {name: none, noise: none, smoothing_arcmin: 0}
  - {name: desy3, noise: des-y3, smoothing_arcmin: 60}
"""
LEVEL_RULES = {"preprocess_level": 2, "train_cnn_level": 2, "train_sop_level": 2,
               "evaluate_level": 4, "skill_by_level": 1}  # fmt: skip


def _plan(tmp_path, levels, *configs):
    """(job counts, printed commands) of a dry run of the .test config with ``levels``."""
    extra = tmp_path / "levels.yaml"
    extra.write_text(levels)
    result = snakemake("--cores", "2", "--dry-run", "-p", "--configfile", ".test/config.yaml",
                       *configs, str(extra), "--config", f"results={tmp_path / 'results'}",
                       f"logs={tmp_path / 'logs'}")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    counts = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M)}
    return counts, re.findall(r"^Shell command: (.*)$", result.stdout, flags=re.M)


def test_two_levels_plan_a_branch_each_and_one_gather(tmp_path):
    counts, commands = _plan(tmp_path, TWO_LEVELS)
    assert {rule: counts.get(rule) for rule in LEVEL_RULES} == LEVEL_RULES
    # the real pipeline is unchanged: one preprocess, every training seed (.test: 0 and 1)
    assert counts["preprocess"] == 1 and counts["train_sop"] == 2 and counts["evaluate"] == 6
    levels = tmp_path / "results" / "levels"
    cuts = {c.split(" --out ")[1].split()[0]: c for c in commands
            if c.startswith("sop-cosmo preprocess") and str(levels) in c}  # fmt: skip
    none, desy3 = cuts[f"{levels}/none/patches"], cuts[f"{levels}/desy3/patches"]
    assert "--noise none --smoothing-arcmin 0 " in none
    assert "--noise des-y3 --smoothing-arcmin 60 " in desy3
    assert "--patch-size 24 " in desy3  # the rest of the preprocess section
    trains = [c for c in commands if c.startswith("sop-cosmo train") and str(levels) in c]
    assert len(trains) == 4 and all("--seed 0 " in c for c in trains)  # first seed only
    (gather,) = [c for c in commands if "--name skill_by_level" in c]
    metrics = re.findall(r"--metrics (\w+) (\w+) (\S+)", gather)
    assert [(n, m) for n, m, _ in metrics] == [("none", "cnn"), ("none", "sop"),
                                               ("desy3", "cnn"), ("desy3", "sop")]  # fmt: skip
    assert metrics[3][2] == f"{levels}/desy3/evaluate/sop/seed0/test_metrics.json"
    assert f"--out {levels} " in gather


def test_one_level_is_the_runs_own_setting(tmp_path):
    base, base_commands = _plan(tmp_path, "noise_levels: []\n")  # as without the key
    one, commands = _plan(tmp_path, "noise_levels:\n  - {name: y3, noise: des-y3, "
                          "smoothing_arcmin: 30}\n")  # fmt: skip
    assert one == base and not set(LEVEL_RULES) & set(one)
    cut = [c for c in commands if f"--out {tmp_path / 'results' / 'patches'} " in c]
    assert len(cut) == 1 and "--noise des-y3 --smoothing-arcmin 30 " in cut[0]
    outs = {re.search(r"--out (\S+)", c).group(1) for c in commands if "--out " in c}
    assert outs == {re.search(r"--out (\S+)", c).group(1) for c in base_commands if "--out " in c}


def test_levels_under_the_chunked_preprocess(tmp_path):
    chunks = tmp_path / "chunks.yaml"
    chunks.write_text("preprocess:\n  chunks: 2\n")
    counts, commands = _plan(tmp_path, TWO_LEVELS, str(chunks))
    assert counts["preprocess_chunk_level"] == 4 and counts["preprocess_level"] == 2
    gathers = [c for c in commands if c.startswith("sop-cosmo gather") and "/levels/" in c]
    assert len(gathers) == 2 and all(len(c.split(" 2>&1")[0].split()) == 6 for c in gathers)


@pytest.mark.parametrize(
    ("levels", "named"),
    [
        ("noise_levels:\n  - {name: a, noize: des-y3}\n", "noise_levels[0].noize"),
        ("noise_levels:\n  - {name: a, noise: desy3}\n", "did you mean 'des-y3'"),
        ("noise_levels:\n  - {noise: des-y3}\n", "'name' is a required property"),
        ("noise_levels:\n  - {name: a/b}\n", "noise_levels[0].name"),
        ("noise_levels:\n  - {name: a, smoothing_arcmin: -1}\n", "≥ 0"),
        ("noise_levels: {name: a}\n", "expected array"),
        ("noise_levels:\n  - {name: a}\n  - {name: a, noise: des-y3}\n",
         "the name 'a' is given to more than one level"),
    ],
)  # fmt: skip
def test_a_bad_level_stops_the_plan_naming_it(tmp_path, levels, named):
    bad = tmp_path / "bad.yaml"
    bad.write_text(levels)
    result = snakemake("--cores", "1", "--dry-run", "--configfile", str(bad))
    out = result.stdout + result.stderr
    assert result.returncode != 0 and named in out and "noise_levels" in out
    assert "rule simulate" not in out

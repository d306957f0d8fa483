"""nulls.gaussian_maps: the grid simulated again as Gaussian maps, cut, trained (first seed),
evaluated and analysed like the real one, and compared with it; planned only when asked, and
refused on real data. The .test/ config asks for it (its tiny run checks the outputs)."""

import re

from tests.workflow.test_snakemake import snakemake

GAUSSIAN_RULES = {"simulate_null_gaussian": 1, "preprocess_null_gaussian": 1,
                  "train_cnn_null_gaussian": 1, "train_sop_null_gaussian": 1,
                  "evaluate_null_gaussian": 2, "analyze_null_gaussian": 1,
                  "compare_null_gaussian": 1}  # fmt: skip


def _plan(tmp_path, *configs):
    result = snakemake("--cores", "2", "--dry-run", "-p", "--configfile", *configs, "--config",
                       f"results={tmp_path / 'results'}", f"logs={tmp_path / 'logs'}")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    counts = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M)}
    return counts, re.findall(r"^Shell command: (.*)$", result.stdout, flags=re.M)


def test_the_branch_runs_the_real_stages_on_gaussian_maps(tmp_path):
    counts, commands = _plan(tmp_path, ".test/config.yaml")
    assert {rule: counts.get(rule) for rule in GAUSSIAN_RULES} == GAUSSIAN_RULES
    assert counts["simulate"] == 1 and counts["train_sop"] == 2  # the real run is unchanged
    results = tmp_path / "results"
    sims = [c for c in commands if c.startswith("sop-cosmo simulate")]
    real, gauss = sorted(sims, key=lambda c: "simulate_null_gaussian" in c)
    assert "--field lognormal " in real and f"--out {results}/simulate_null_gaussian " in gauss
    assert gauss.replace("--field gaussian", "--field lognormal").replace(
        "simulate_null_gaussian", "simulate").replace("_null_gaussian", "") == real  # fmt: skip
    cut = next(c for c in commands if f"--out {results}/patches_null_gaussian " in c)
    assert f"--root {results}/simulate_null_gaussian " in cut and "--permute-labels" not in cut
    (analysis,) = [c for c in commands if f"--out {results}/analyze_null_gaussian " in c]
    assert "--checkpoint" in analysis and "--ensemble" not in analysis  # the first seed
    # gated on the permuted-label null like the real analysis
    assert f"--null-summary {results}/analyze_null_permuted/summary.json" in analysis
    (compare,) = [c for c in commands if c.startswith("sop-cosmo compare")]
    assert f"--metrics lognormal sop {results}/evaluate/sop/seed0/test_metrics.json" in compare
    assert f"--metrics gaussian cnn {results}/evaluate_null_gaussian/cnn/seed0/" in compare
    assert f"--summary gaussian {results}/analyze_null_gaussian/summary.json" in compare
    assert f"--out {results}/nulls --name gaussian_vs_lognormal" in compare
    (notebook,) = [c for c in commands if c.startswith("papermill")]
    assert f"-p gaussian_null {results}/nulls/gaussian_vs_lognormal.json" in notebook


def test_off_by_default_and_in_the_demo(tmp_path):
    counts, commands = _plan(tmp_path, "config/config.yaml")
    assert not set(GAUSSIAN_RULES) & set(counts) and "analyze" in counts
    assert not any("gaussian" in c for c in commands)


def test_real_data_refuses_it(tmp_path):
    (tmp_path / "CosmoGrid").mkdir()
    (tmp_path / "CosmoGrid" / "CosmoGridV1_metainfo.h5").write_bytes(b"")
    config = tmp_path / "real.yaml"
    config.write_text(f"data:\n  source: cosmogrid\n  root: {tmp_path}\n"
                      "nulls:\n  gaussian_maps: true\n")  # fmt: skip
    result = snakemake("--cores", "1", "--dry-run", "--configfile", str(config))
    assert result.returncode != 0
    assert "nulls.gaussian_maps = true needs data.source simulated" in result.stdout + result.stderr

"""The Snakemake workflow: lint, format, config validation, dry runs and a tiny real run.

The tiny run (.test/config.yaml) is the CI's end-to-end check: every stage from the simulated
grid to the executed findings notebook, then `snakemake --report`, then the rerun behaviour.
"""

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv that runs the tests also provides the CLI
GPU_RULES = {"train_cnn", "train_sop", "analyze", "baselines"}


def snakemake(*args, cwd=ROOT):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "snakemake"), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def dry_run_jobs(*args, fresh=None, config=()):
    """{rule: resources dict} of every job a dry run would start.

    With ``fresh`` (a folder), results and logs go there, so outputs of earlier runs in the
    checkout (e.g. `make demo`) do not shorten the plan.
    """
    if fresh is not None:
        config = (f"results={fresh / 'results'}", f"logs={fresh / 'logs'}", *config)
    if config:
        args = (*args, "--config", *config)
    result = snakemake("--cores", "2", "--dry-run", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {}
    for block in re.split(r"\n(?=rule \w+:)", result.stdout):
        rule = re.match(r"rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and res:
            pairs = (kv.split("=", 1) for kv in res.group(1).split(", "))
            jobs[rule.group(1)] = dict(pairs)
    return jobs


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_dry_run_has_every_stage_with_resources(tmp_path):
    jobs = dry_run_jobs(fresh=tmp_path)
    stages = {"simulate", "preprocess", "train_cnn", "train_sop", "train_stats", "evaluate",
              "analyze", "baselines", "controls", "notebook", "theory"}  # fmt: skip
    assert stages <= set(jobs)
    for rule in stages:
        assert {"mem_mb", "runtime"} <= set(jobs[rule]), rule
        assert jobs[rule].get("gpu", "0") == ("1" if rule in GPU_RULES else "0"), rule


def test_cpu_config_requests_no_gpu(tmp_path):
    jobs = dry_run_jobs("--configfile", ".test/config.yaml", fresh=tmp_path)
    assert {"train_cnn", "analyze", "controls"} <= set(jobs)
    assert all(res.get("gpu", "0") == "0" for res in jobs.values())


def test_cosmogrid_config_skips_the_simulator(tmp_path):
    meta = tmp_path / "CosmoGrid" / "CosmoGridV1_metainfo.h5"
    meta.parent.mkdir()
    meta.write_bytes(b"")  # only its existence matters to a dry run
    jobs = dry_run_jobs("--configfile", "config/cosmogrid.yaml", fresh=tmp_path / "out",
                        config=[f"data={{source: cosmogrid, root: {tmp_path}}}"])  # fmt: skip
    assert "simulate" not in jobs and "preprocess" in jobs


NULL_RULES = ("preprocess_null_permuted", "train_cnn_null_permuted", "train_sop_null_permuted",
              "analyze_null_permuted")  # fmt: skip


def test_permuted_label_null_is_planned_only_when_asked(tmp_path):
    # .test/ and the demo (config/config.yaml) ask for it; the package default does not
    no_null = tmp_path / "no_null.yaml"
    no_null.write_text("nulls:\n  permuted_labels: false\n")
    off_jobs = dry_run_jobs("--configfile", "config/config.yaml", str(no_null),
                            fresh=tmp_path / "default")  # fmt: skip
    assert not set(NULL_RULES) & set(off_jobs) and "analyze" in off_jobs
    fresh = tmp_path / "null"
    out = (f"results={fresh / 'results'}", f"logs={fresh / 'logs'}")
    plan = snakemake("--cores", "2", "--dry-run", "-p", "--configfile", ".test/config.yaml",
                     "--config", *out)  # fmt: skip
    assert plan.returncode == 0, plan.stdout + plan.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", plan.stdout, flags=re.M))
    assert all(counts.get(rule) == "1" for rule in NULL_RULES), counts  # one training seed
    assert counts["train_sop"] == "2"  # the real pipeline still trains every seed
    null = fresh / "results" / "patches_null_permuted"
    permuted = [c for c in re.findall(r"sop-cosmo preprocess .*", plan.stdout) if str(null) in c]
    assert len(permuted) == 1 and "--permute-labels" in permuted[0]
    assert not any("--permute-labels" in c for c in re.findall(r"sop-cosmo .*", plan.stdout)
                   if str(null) not in c)  # fmt: skip
    analyze = (rf"sop-cosmo analyze --checkpoint \S+/train_null_permuted/sop/seed0/model\.pt"
               rf" --data {null}/test\.h5 --out \S+/analyze_null_permuted ")  # fmt: skip
    assert re.search(analyze, plan.stdout), plan.stdout
    # the real analysis gates its claims on the null's summary; the null's own does not
    summary = fresh / "results" / "analyze_null_permuted" / "summary.json"
    (real,) = re.findall(r"sop-cosmo analyze .* --out \S+/analyze .*", plan.stdout)
    assert f"--null-summary {summary} " in real
    (own,) = re.findall(r"sop-cosmo analyze .* --out \S+/analyze_null_permuted .*", plan.stdout)
    assert "--null-summary" not in own
    off = snakemake("--cores", "2", "--dry-run", "-p", "--configfile", ".test/config.yaml",
                    str(no_null), "--config", *out)  # fmt: skip
    assert off.returncode == 0 and "sop-cosmo analyze" in off.stdout, off.stdout + off.stderr
    assert "--null-summary" not in off.stdout


@pytest.mark.parametrize(
    ("yaml", "named"),
    [
        ("theory:\n  max_d: 40\n", "max_d"),  # out of range
        ("analyze:\n  n_boot: many\n", "n_boot"),  # wrong type
        ("analyze:\n  tau_void: 1.5\n", "tau_void"),
        ("controls:\n  quick: 3\n", "quick"),
        ("baselines:\n  max_maps: 2.5\n", "max_maps"),
        ("theory:\n  max_dd: 4\n", "max_dd"),  # unknown keys, at every level
        ("baseline:\n  methods: all\n", "baseline"),
        ("baselines:\n  metods: all\n", "metods"),
        ("report:\n  notebok: x.ipynb\n", "notebok"),
        ("train:\n  sop_options: {n_group: 4}\n", "n_group"),
    ],
)
def test_bad_config_stops_before_any_job_naming_the_key(tmp_path, yaml, named):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml)
    result = snakemake("--cores", "1", "--configfile", str(bad), "--dry-run")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert named in out
    assert "rule simulate" not in out  # it stopped while loading, before planning jobs


def test_real_data_root_must_exist(tmp_path):
    bad = tmp_path / "real.yaml"
    bad.write_text(f"data:\n  source: cosmogrid\n  root: {tmp_path / 'nowhere'}\n")
    result = snakemake("--cores", "1", "--configfile", str(bad), "--dry-run")
    assert result.returncode != 0
    assert "data.root" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The .test/ config run end to end in the venv; yields (results, logs, config args)."""
    tmp = tmp_path_factory.mktemp("tiny")
    results, logs = tmp / "results", tmp / "logs"
    args = ("--configfile", ".test/config.yaml", "--config", f"results={results}", f"logs={logs}")
    t0 = time.perf_counter()
    result = snakemake("--cores", "2", *args)
    seconds = time.perf_counter() - t0
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    print(f"\n.test end-to-end run: {seconds:.0f} s on --cores 2")
    (tmp / "console.txt").write_text(result.stdout + result.stderr)
    return results, logs, args


@pytest.mark.slow
def test_tiny_config_runs_end_to_end(tiny_run):
    results, logs, _ = tiny_run
    table = (results / "theory" / "theory.csv").read_text().splitlines()
    assert table[0].startswith("function,kind,d,per_feature_error")
    assert len(table) == 1 + 2 * (3 + 2)  # header + monomial d=1..3, binomial d=2..3, 2 kinds
    for model in ("cnn", "sop", "stats"):
        for seed in (0, 1):  # .test trains seeds 0 and 1
            path = results / "evaluate" / model / f"seed{seed}" / "test_metrics.json"
            metrics = json.loads(path.read_text())
            assert set(metrics["mse"]) == set(metrics["r2"]) == {"Om", "s8"} and metrics["n"] > 0
            assert (logs / "train" / model / f"seed{seed}.log").exists()
    # every step's output reaches the console as well as its log (training's epochs among
    # it), as whole lines: no bar redrawn with carriage returns in a log
    console = (logs.parent / "console.txt").read_text()
    epoch = "sop_cosmo.cosmo.stages.train: epoch 1/1 step"
    assert epoch in console and epoch in (logs / "train" / "sop" / "seed0.log").read_text()
    assert "controls: negative" in console and "Executing Cell 1" in console
    assert not [p for p in logs.rglob("*.log") if "\r" in p.read_text()]
    for split in ("train", "val", "test"):
        assert (results / "patches" / f"{split}.h5").exists()
    summary = json.loads((results / "analyze" / "summary.json").read_text())
    assert 0 < summary["n_maps"] <= 8  # .test caps analyze.max_maps at 8
    # skill before interpretation, and the claims the analysis makes (on every seed)
    skill = summary["skill"]
    assert {"r2", "mse", "mse_constant", "passed"} <= set(skill)
    assert set(skill["r2"]) == set(skill["mse_constant"]) == {"Om", "s8"}
    assert isinstance(skill["passed"], bool) and len(skill["r2_per_seed"]["Om"]) == 2
    assert summary["seeds"] == [0, 1] and summary["bootstrap"]["n_seeds"] == 2
    assert summary["type_units"] == "noise" and len(summary["sigma_noise"]) == 2
    assert summary["thresholds"]["cluster_sigma"] == 4.0  # ν_c
    # one test cosmology and one-epoch models: no claim, and the summary says why
    assert summary["claims"] == [] and summary["no_claim"]
    # the permuted-label null (.test asks for it): no claim either, on one training seed
    null = json.loads((results / "analyze_null_permuted" / "summary.json").read_text())
    assert null["claims"] == [] and null["no_claim"] and null["skill"]["passed"] is False
    assert null["seeds"] == [0] and (logs / "analyze_null_permuted" / "analyze.log").exists()
    # the Gaussian-maps null (.test asks for it too): its analysis, and its skill and effects
    # next to the lognormal run's
    gauss = json.loads((results / "analyze_null_gaussian" / "summary.json").read_text())
    assert gauss["seeds"] == [0] and gauss["claims"] == []
    versus = json.loads((results / "nulls" / "gaussian_vs_lognormal.json").read_text())
    assert versus["labels"] == ["lognormal", "gaussian"] and len(versus["skill"]) == 2 * 2 * 2
    assert {e["candidate"] for e in versus["effects"]} >= {"void: Ωm − σ8", "cluster: Ωm − σ8"}
    assert (results / "nulls" / "gaussian_vs_lognormal.png").stat().st_size > 0
    baselines = json.loads((results / "baselines" / "baselines.json").read_text())
    assert "sop" in json.dumps(baselines)
    controls = json.loads((results / "controls" / "controls.json").read_text())
    assert {"positive", "negative", "swapped"} <= set(controls)
    for stage, figures in {
        "analyze": (
            "groups_gallery",
            "contributions",
            "weight_hist",
            "threshold_sweep",
            "predicted_vs_true",
            "region_importance",
        ),
        "baselines": ("mse_vs_purity", "insertion_deletion"),
        "controls": ("controls",),
    }.items():
        for name in figures:
            assert (results / stage / "figures" / f"{name}.png").stat().st_size > 0
        assert (logs / stage / f"{stage}.log").exists()


@pytest.mark.slow
def test_notebook_is_executed_on_the_run(tiny_run):
    results, _, _ = tiny_run
    nb = json.loads((results / "report" / "void_cluster_findings.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c.get("execution_count") for c in code)  # every cell ran
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and str(results / "analyze") in "".join(injected[0]["source"])
    assert str(results / "nulls" / "gaussian_vs_lognormal.json") in "".join(injected[0]["source"])
    assert not list((results / "report").glob("*.partial.*"))
    # The HTML rendering of that executed notebook: its title, the injected parameters, and
    # the figures its cells displayed, embedded so the page opens without the results folder.
    html = (results / "report" / "void_cluster_findings.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "Void and cluster findings of an SOP regressor" in html
    assert str(results / "analyze") in html
    n_images = sum(
        1 for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    )
    assert n_images > 0 and html.count("data:image/png;base64,") >= n_images


@pytest.mark.slow
def test_report_gathers_figures_and_metrics(tiny_run, tmp_path):
    _, _, args = tiny_run
    html = tmp_path / "report.html"
    result = snakemake("--report", str(html), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    text = html.read_text(errors="replace")
    for name in ("groups_gallery", "mse_vs_purity", "controls", "theory.png", "summary.json",
                 "baselines.csv", "test_metrics.json"):  # fmt: skip
        assert name in text, name
    # The notebook is in the report as its HTML page (shown in a frame), not as .ipynb JSON.
    assert "filename=void_cluster_findings.ipynb" not in text
    embedded = re.search(
        r"data:text/html;charset=[\w-]+;filename=void_cluster_findings\.html;base64,([\w+/=]+)",
        text,
    )
    assert embedded, "notebook HTML not embedded in the report"
    page = base64.b64decode(embedded.group(1)).decode()
    assert "Void and cluster findings of an SOP regressor" in page


@pytest.mark.slow
def test_rerun_redoes_only_what_is_missing(tiny_run):
    results, _, args = tiny_run
    nothing = snakemake("--cores", "2", "--dry-run", *args)
    assert nothing.returncode == 0 and "Nothing to be done" in nothing.stdout, nothing.stdout
    (results / "analyze" / "summary.json").unlink()  # as if the analyze job had failed
    jobs = dry_run_jobs(*args)  # args carry the run's own results and logs
    # the Gaussian-maps null's comparison reads the real analysis too
    assert set(jobs) == {"analyze", "compare_null_gaussian", "notebook", "notebook_html", "all"}
    rerun = snakemake("--cores", "2", *args)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert (results / "analyze" / "summary.json").exists()

"""`sop-cosmo analyze` end to end on a tiny trained SOP: outputs, schema, consistency, errors."""

import csv
import json

import h5py
import numpy as np
import pytest
from scipy import ndimage

from sop_cosmo.cli import main
from sop_cosmo.cosmo.config import TrainConfig
from sop_cosmo.cosmo.maths.group_types import (
    STAT_NAMES,
    TYPE_NAMES,
    classify_groups,
    group_statistics,
    group_statistics_nu,
    upsample_masks,
)
from sop_cosmo.cosmo.stages.analyse import analyze
from sop_cosmo.cosmo.stages.evaluate import evaluate
from sop_cosmo.cosmo.stages.train import train

# Trains a tiny cnn and SOP once per module (~10-15 s on a loaded 2-core machine).
pytestmark = pytest.mark.slow

SIZE, PATCH, GROUPS = 24, 4, 4
TINY_CNN = {"widths": [8], "kernel": 3, "hidden": [16]}
TINY_SOP = {"attention_patch": PATCH, "n_groups": GROUPS, "keep_fraction": 0.25, "n_heads": 1}
ATTRS = {"pixel_arcmin": 6.87, "patch_size": SIZE, "nside": 64, "bins": [1, 3],
         "smoothing_arcmin": 0.0, "noise": "none", "source": "simulated"}  # fmt: skip
# σ per bin of the ν typing: about the ensemble σ of these maps (amplitudes 0.008 and 0.016)
SIGMA_NOISE = [0.008, 0.016]


def _lognormal_patches(path, n, seed, first_id, sigma_noise=SIGMA_NOISE):
    """Skewed, spatially smooth κ (voids below 0, rare high peaks), 2 bins, learnable params;
    ``sigma_noise`` None writes a file as preprocess did before it recorded σ_noise."""
    rng = np.random.default_rng(seed)
    om, s8 = rng.uniform(0.2, 0.4, n), rng.uniform(0.6, 1.0, n)
    g = ndimage.gaussian_filter(rng.standard_normal((n, 2, SIZE, SIZE)), (0, 0, 1.5, 1.5))
    g /= g.std(axis=(2, 3), keepdims=True)
    amp = (0.01 * s8)[:, None, None, None] * np.array([1.0, 2.0])[None, :, None, None]
    kappa = amp * (np.exp(0.8 * g) - np.exp(0.32)) + 0.002 * om[:, None, None, None]
    with h5py.File(path, "w") as f:
        f["kappa"] = kappa.astype("f4")
        f["params"] = np.stack([om, s8], 1).astype("f4")
        f["params"].attrs["names"] = ["Om", "s8"]
        f["cosmo_id"] = np.arange(first_id, first_id + n, dtype="i8")
        f.attrs.update(ATTRS)
        if sigma_noise is not None:
            f.attrs["sigma_noise"] = sigma_noise
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("analysis")
    tr = _lognormal_patches(d / "train.h5", 48, 0, 0)
    va = _lognormal_patches(d / "val.h5", 16, 1, 100)
    te = _lognormal_patches(d / "test.h5", 20, 2, 200)
    base = {"epochs": 1, "batch_size": 8, "lr": 3e-3, "device": "cpu"}
    sops = []
    for seed in (0, 1):  # two training seeds: the ensemble analysis
        cnn = train(tr, va, d / f"cnn{seed}",
                    TrainConfig(kind="cnn", model_options=TINY_CNN, seed=seed, **base),
                    progress=False)  # fmt: skip
        sops.append(train(tr, va, d / f"sop{seed}",
                          TrainConfig(kind="sop", backbone=str(cnn), model_options=TINY_SOP,
                                      seed=seed, **base), progress=False))  # fmt: skip
        if seed == 0:
            cnn0 = cnn
    out = d / "A"
    code = main(["analyze", "--checkpoint", str(sops[0]), "--data", str(te), "--out", str(out),
                 "--n-boot", "200", "--seed", "1", "--device", "cpu", "--quiet",
                 "--type-units", "patch"])  # fmt: skip
    assert code == 0
    ens = d / "E"
    code = main(["analyze", "--checkpoint", str(sops[0]), "--ensemble", str(sops[1]),
                 "--data", str(te), "--out", str(ens), "--n-boot", "200", "--device", "cpu",
                 "--quiet"])  # fmt: skip
    assert code == 0
    return {"dir": d, "cnn": cnn0, "sop": sops[0], "sops": sops, "test": te, "out": out,
            "ensemble": ens}  # fmt: skip


CONTRACT_TOP = {"thresholds", "contributions", "differences", "group_type_rates", "purity",
                "n_maps"}  # fmt: skip


def _strict(text):
    def refuse(name):
        raise AssertionError(f"summary.json holds {name}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


def _is_ci(ci):
    return (
        isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, float) for v in ci)
        and ci[0] <= ci[1]
    )  # fmt: skip


def test_summary_has_exactly_the_contract_schema(run):
    s = _strict((run["out"] / "summary.json").read_text())
    assert CONTRACT_TOP <= set(s)
    assert set(s["thresholds"]) == {"void_sigma", "cluster_sigma"}
    assert s["thresholds"] == {"void_sigma": 0.0, "cluster_sigma": 3.0}
    assert set(s["contributions"]) == {"Om", "s8"}
    for p in ("Om", "s8"):
        c = s["contributions"][p]
        assert set(c) == {"void", "cluster", "other", "ci95"}
        assert set(c["ci95"]) == set(TYPE_NAMES)
        assert all(isinstance(c[t], float) for t in TYPE_NAMES)
        assert all(_is_ci(c["ci95"][t]) for t in TYPE_NAMES)
        # (a tolerance: a constant column's replicates may differ from its mean by rounding)
        assert all(
            lo - 1e-12 <= c[t] <= hi + 1e-12 for t in TYPE_NAMES for lo, hi in [c["ci95"][t]]
        )
        assert sum(c[t] for t in TYPE_NAMES) == pytest.approx(1.0, abs=1e-5)
    assert set(s["differences"]) == set(TYPE_NAMES)
    for t in TYPE_NAMES:
        d = s["differences"][t]
        assert set(d) == {"value", "ci95"} and isinstance(d["value"], float)
        assert _is_ci(d["ci95"])
        assert d["value"] == pytest.approx(
            s["contributions"]["Om"][t] - s["contributions"]["s8"][t]
        )
    assert set(s["group_type_rates"]) == set(TYPE_NAMES)
    assert all(isinstance(v, float) for v in s["group_type_rates"].values())
    assert sum(s["group_type_rates"].values()) == pytest.approx(1.0)
    assert isinstance(s["purity"], float) and 0.0 <= s["purity"] <= 1.0
    assert s["n_maps"] == 20 and isinstance(s["n_maps"], int)
    # extras
    assert s["class_thresholds"] == {"tau_void": 0.6, "tau_cluster": 0.015}
    assert s["bin"] == 3 and s["bin_index"] == 1  # -1 = the last bin, labelled 3
    assert s["n_groups"] == GROUPS and s["attention_patch"] == PATCH
    # skill first: R² and the constant predictor's MSE per parameter, and the gate
    assert s["type_units"] == "patch" and s["typed_bins"] == [3]
    sk = s["skill"]
    assert set(sk["r2"]) == set(sk["mse"]) == set(sk["mse_constant"]) == {"Om", "s8"}
    assert sk["mse"] == pytest.approx(s["mse"]) and isinstance(sk["passed"], bool)
    assert sk["passed"] == all(v >= 0.5 for vals in sk["r2_per_seed"].values() for v in vals)
    # one epoch on 48 maps predicts nothing: no skill, so no claim, and the reason says so
    assert not sk["passed"] and s["claims"] == [] and "no skill" in s["no_claim"]
    assert s["bootstrap"] == {"unit": "cosmology", "n_cosmologies": 20, "n_seeds": 1,
                              "resample_seeds": False}  # fmt: skip
    assert len(s["per_cosmology"]) == 20 and s["seeds"] == [0]


def test_outputs_are_consistent(run):
    out = run["out"]
    with h5py.File(out / "groups.h5", "r") as f, h5py.File(run["test"], "r") as t:
        kappa, masks, weights = f["kappa"][...], f["masks"][...], f["weights"][...]
        types = f["types"][...]
        assert f.attrs["param_names"].tolist() == ["Om", "s8"]
        assert list(f.attrs["type_names"]) == list(TYPE_NAMES)
        assert int(f.attrs["attention_patch"]) == PATCH
        # the physical κ of the last bin, signs intact
        np.testing.assert_array_equal(kappa, t["kappa"][:, -1])
        assert (kappa < 0).any() and (kappa > 0).any()
        assert masks.shape == (20, GROUPS, 6, 6) and masks.dtype == np.uint8
        assert types.dtype == np.int8
        np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
        # the SOP identity holds in physical units too
        np.testing.assert_allclose(
            (weights * f["group_outputs"][...]).sum(1), f["prediction"][...], rtol=1e-4
        )
        np.testing.assert_array_equal(f["params"][...], t["params"][...])
        stats = {k: f[k][...] for k in STAT_NAMES}
    # recomputing from the stored κ and masks gives the stored statistics and types
    again = group_statistics(kappa, upsample_masks(masks, kappa.shape[1:], patch=PATCH))
    for k in STAT_NAMES:
        np.testing.assert_allclose(again[k], stats[k], rtol=1e-6, err_msg=k)
    np.testing.assert_array_equal(classify_groups(again), types)

    with open(out / "groups.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20 * GROUPS
    assert rows[5]["type"] == TYPE_NAMES[types[1, 1]]
    assert float(rows[5]["weight_s8"]) == pytest.approx(float(weights[1, 1, 1]), rel=1e-6)

    with open(out / "threshold_sweep.csv") as fh:
        sweep = list(csv.DictReader(fh))
    summary = json.loads((out / "summary.json").read_text())
    mine = [r for r in sweep if float(r["cluster_sigma"]) == 3.0
            and float(r["tau_void"]) == 0.6 and float(r["tau_cluster"]) == 0.015]  # fmt: skip
    assert len(mine) == 1
    assert float(mine[0]["purity"]) == pytest.approx(summary["purity"])
    assert float(mine[0]["Om_void"]) == pytest.approx(summary["contributions"]["Om"]["void"])
    for name in ("groups_gallery", "contributions", "weight_hist", "threshold_sweep"):
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob(".*"))  # atomic writes leave no temporary files


def test_mse_agrees_with_evaluate(run, tmp_path):
    summary = json.loads((run["out"] / "summary.json").read_text())
    metrics = evaluate(run["sop"], run["test"], tmp_path / "m.json", device="cpu")
    for p in ("Om", "s8"):
        assert summary["mse"][p] == pytest.approx(metrics["mse"][p], rel=1e-4)
        assert summary["skill"]["r2"][p] == pytest.approx(metrics["r2"][p], rel=1e-4)
        assert summary["skill"]["mse_constant"][p] == pytest.approx(metrics["mse_constant"][p])
        # R² = 1 − MSE / Var(y): evaluate's three numbers agree with the file's targets
        with h5py.File(run["test"]) as f:
            y = f["params"][:, ["Om", "s8"].index(p)].astype(np.float64)
        assert metrics["r2"][p] == pytest.approx(1 - metrics["mse"][p] / y.var(), rel=1e-6)
    assert sum(summary["mean_active_groups"].values()) / 2 == pytest.approx(
        metrics["sop"]["mean_active_groups"], rel=1e-6
    )


def test_deterministic_and_bin_and_max_maps(run, tmp_path):
    kw = {"n_boot": 100, "seed": 4, "device": "cpu", "progress": False, "figures": False}
    a = analyze(run["sop"], run["test"], tmp_path / "a", max_maps=7, bin=0, **kw)
    b = analyze(run["sop"], run["test"], tmp_path / "b", max_maps=7, bin=0, **kw)
    for s in (a, b):
        s.pop("checkpoint"), s.pop("data")
    assert a == b
    assert a["n_maps"] == 7 and a["bin"] == 1 and a["bin_index"] == 0
    with h5py.File(tmp_path / "a" / "groups.h5", "r") as f, h5py.File(run["test"], "r") as t:
        idx = f["file_index"][...]
        assert idx[0] == 0 and idx[-1] == 19
        np.testing.assert_array_equal(f["kappa"][...], t["kappa"][idx, 0])
    assert not (tmp_path / "a" / "figures").exists()


def test_bad_inputs_give_clear_errors(run, tmp_path, capsys):
    base = ["analyze", "--data", str(run["test"]), "--out", str(tmp_path / "x"), "--quiet",
            "--device", "cpu", "--n-boot", "10"]  # fmt: skip
    assert main([*base, "--checkpoint", str(run["cnn"])]) == 2
    assert "'cnn' model" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main([*base, "--checkpoint", str(junk)]) == 2
    assert "not a sop-cosmo checkpoint" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(run["sop"]), "--bin", "2"]) == 2
    err = capsys.readouterr().err
    assert "bin" in err and "2 tomographic bins" in err
    args = ["analyze", "--checkpoint", str(run["sop"]), "--data", str(tmp_path / "none.h5"),
            "--out", str(tmp_path / "y"), "--quiet"]  # fmt: skip
    assert main(args) == 2
    assert "no such patch file" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(run["sop"]), "--tau-void", "0"]) == 2
    assert "tau_void" in capsys.readouterr().err
    assert not (tmp_path / "x" / "summary.json").exists()


def test_the_ensemble_combines_seeds_in_noise_units(run, tmp_path):
    s = _strict((run["ensemble"] / "summary.json").read_text())
    assert s["type_units"] == "noise" and s["typed_bins"] == [1, 3]
    assert s["thresholds"] == {"void_sigma": 0.0, "cluster_sigma": 4.0}
    assert s["sigma_noise"] == SIGMA_NOISE and set(s["by_bin"]) == {"1", "3"}
    assert s["seeds"] == [0, 1] and len(s["per_seed"]) == 2
    assert s["bootstrap"] == {"unit": "cosmology", "n_cosmologies": 20, "n_seeds": 2,
                              "resample_seeds": True}  # fmt: skip
    for t in TYPE_NAMES:  # every map has both seeds: the ensemble mean is the seeds' mean
        per = [p["contributions"]["Om"][t] for p in s["per_seed"]]
        assert s["contributions"]["Om"][t] == pytest.approx(np.mean(per))
    for seed, sop in zip((0, 1), run["sops"], strict=True):
        metrics = evaluate(sop, run["test"], tmp_path / f"m{seed}.json", device="cpu")
        assert s["per_seed"][seed]["skill"]["r2"]["s8"] == pytest.approx(metrics["r2"]["s8"],
                                                                          rel=1e-4)  # fmt: skip
        assert s["skill"]["r2_per_seed"]["s8"][seed] == s["per_seed"][seed]["skill"]["r2"]["s8"]
    with h5py.File(run["ensemble"] / "groups.h5") as f, h5py.File(run["test"]) as t:
        assert f["seed_type_weights"].shape == (2, 20, 2, 3)
        assert f["seed_prediction"].shape == (2, 20, 2)
        assert f.attrs["type_units"] == "noise" and list(f.attrs["seeds"]) == [0, 1]
        masks, types = f["masks"][...], f["types"][...]
        stats = {k: f[k][...] for k in STAT_NAMES}
        kappa = t["kappa"][...].astype(np.float64)
    # the stored statistics are those of ν = κ/σ_noise on both bins, pooled
    pix = upsample_masks(masks, (SIZE, SIZE), patch=PATCH)
    again, _ = group_statistics_nu(kappa, pix, SIGMA_NOISE, nu_void=0.0, nu_cluster=4.0)
    for k in STAT_NAMES:
        np.testing.assert_allclose(again[k], stats[k], rtol=1e-6, err_msg=k)
    np.testing.assert_array_equal(classify_groups(again), types)
    with open(run["ensemble"] / "groups.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 20 * GROUPS and {r["seed"] for r in rows} == {"0", "1"}


def test_noise_units_need_sigma_noise_in_the_file(run, tmp_path, capsys):
    old = _lognormal_patches(tmp_path / "old.h5", 6, 3, 300, sigma_noise=None)
    base = ["analyze", "--checkpoint", str(run["sop"]), "--data", str(old), "--quiet",
            "--device", "cpu", "--n-boot", "10"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "n")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no sigma_noise" in err and "rerun preprocess" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "n").exists()
    assert main([*base, "--out", str(tmp_path / "p"), "--type-units", "patch"]) == 0
    assert (tmp_path / "p" / "summary.json").is_file()
    assert main([*base, "--out", str(tmp_path / "e"), "--ensemble", str(run["sop"])]) == 2
    assert "given twice" in capsys.readouterr().err


def test_region_importance_and_predicted_vs_true(run):
    for out, n_seeds in ((run["out"], 1), (run["ensemble"], 2)):
        s = _strict((out / "summary.json").read_text())
        base, gauss = s["region_importance"], s["region_importance_gaussianised"]
        for ri in (base, gauss):
            assert set(ri) == {"void", "cluster"}
            for t in ri:
                assert set(ri[t]) == {"Om", "s8"}
                for e in ri[t].values():
                    vals = [e["delta_mse"], e["random_delta_mse"], e["excess"],
                            e["area_fraction"]]  # fmt: skip
                    assert all(isinstance(v, float) and np.isfinite(v) for v in vals)
                    assert _is_ci(e["ci95"]) and _is_ci(e["random_ci95"])
                    assert _is_ci(e["excess_ci95"])
                    assert len(e["per_seed"]) == n_seeds
                    assert e["delta_mse"] == pytest.approx(np.mean(e["per_seed"]))
        # the same regions, replaced otherwise: the same areas, other ΔMSE
        assert gauss["void"]["Om"]["area_fraction"] == base["void"]["Om"]["area_fraction"]
        assert gauss["void"]["Om"]["delta_mse"] != base["void"]["Om"]["delta_mse"]
        for name in ("predicted_vs_true", "region_importance"):
            png = out / "figures" / f"{name}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # patch units type the last bin alone and replace it on every bin; noise units per bin
    s = _strict((run["out"] / "summary.json").read_text())
    with h5py.File(run["test"]) as f:
        kappa = f["kappa"][...].astype(np.float64)
    k = kappa[:, -1]
    assert s["region_importance"]["void"]["Om"]["area_fraction"] == pytest.approx(np.mean(k < 0))
    e = _strict((run["ensemble"] / "summary.json").read_text())
    nu = kappa / np.array(SIGMA_NOISE)[None, :, None, None]
    assert e["region_importance"]["cluster"]["s8"]["area_fraction"] == pytest.approx(
        np.mean(nu >= 4.0)
    )


def test_type_base_rates_of_random_masks(run):
    for out, n_seeds in ((run["out"], 1), (run["ensemble"], 2)):
        s = _strict((out / "summary.json").read_text())
        b = s["type_base_rates"]
        assert b["n_maps"] == 20 and b["n_seeds"] == n_seeds
        with open(out / "groups.csv") as fh:
            rows = list(csv.DictReader(fh))
        chosen = [r for r in rows if float(r["weight_Om"]) > 0 or float(r["weight_s8"]) > 0]
        assert b["n_selected_groups"] == len(chosen)
        # the generator's share is that of its selected groups in groups.csv
        for t in TYPE_NAMES:
            share = sum(r["type"] == t for r in chosen) / len(chosen)
            assert b["generator"][t] == pytest.approx(share)
        for block in (b["generator"], b["random"], *b["weighted"]["generator"].values(),
                      *b["weighted"]["random"].values()):  # fmt: skip
            assert set(block) == set(TYPE_NAMES) and sum(block.values()) == pytest.approx(1.0)
        # weighted by the selector, the generator's shares are the contributions
        for p in ("Om", "s8"):
            for t in TYPE_NAMES:
                assert b["weighted"]["generator"][p][t] == pytest.approx(
                    s["contributions"][p][t], abs=1e-6
                )


def test_a_null_summary_gates_every_candidate(run, tmp_path):
    # Without --null-summary the gate is "not run"; every candidate has its detectable size.
    plain = _strict((run["ensemble"] / "summary.json").read_text())
    assert plain["null_gate"] is None
    assert all(c["null_gate"] == "not run" and c["null_value"] is None
               for c in plain["claim_checks"])  # fmt: skip
    assert all(c["detectable"] > 0 for c in plain["claim_checks"])
    assert "the run could have detected (80% power, two-sided 5%)" in plain["no_claim"]
    # The run as its own null: the same values, so none exceeds the null's.
    out = tmp_path / "N"
    assert main(["analyze", "--checkpoint", str(run["sops"][0]), "--ensemble", str(run["sops"][1]),
                 "--data", str(run["test"]), "--out", str(out), "--n-boot", "200",
                 "--device", "cpu", "--quiet",
                 "--null-summary", str(run["ensemble"] / "summary.json")]) == 0  # fmt: skip
    s = _strict((out / "summary.json").read_text())
    assert s["null_gate"]["summary"] == str(run["ensemble"] / "summary.json")
    assert s["null_gate"]["n_claims"] == 0
    for c, own in zip(s["claim_checks"], plain["claim_checks"], strict=True):
        assert c["null_gate"] == "failed" and c["null_value"] == own["value"] == c["value"]


def test_region_importance_on_a_subsample_of_the_maps(run, tmp_path):
    out = tmp_path / "R"
    assert main(["analyze", "--checkpoint", str(run["sop"]), "--data", str(run["test"]),
                 "--out", str(out), "--n-boot", "200", "--seed", "1", "--device", "cpu",
                 "--quiet", "--type-units", "patch", "--region-maps", "5"]) == 0  # fmt: skip
    s, full = (_strict((p / "summary.json").read_text()) for p in (out, run["out"]))
    assert s["region_importance_maps"] == 5 and full["region_importance_maps"] == 20
    # the evenly spread maps of the file: its area fraction, not the whole file's
    with h5py.File(run["test"]) as f:
        k = f["kappa"][...].astype(np.float64)[:, -1]
    keep = np.unique(np.round(np.linspace(0, len(k) - 1, 5)).astype(int))
    area = s["region_importance"]["void"]["Om"]["area_fraction"]
    assert area == pytest.approx(np.mean(k[keep] < 0))
    # the rest of the analysis does not change
    assert s["differences"] == full["differences"] and s["n_maps"] == full["n_maps"]

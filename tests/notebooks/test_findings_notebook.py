"""The findings notebook executes headless on the outputs of a tiny analysis run."""

import json

import h5py
import numpy as np
import pytest

from sop_cosmo.cli import main

pytest.importorskip("papermill")
NOTEBOOK = "notebooks/void_cluster_findings.ipynb"


def _patch_file(path, n, seed):
    rng = np.random.default_rng(seed)
    params = np.stack([rng.uniform(0.1, 0.5, n), rng.uniform(0.4, 1.4, n)], 1).astype("f4")
    field = rng.standard_normal((n, 1, 24, 24))
    kappa = 0.01 * params[:, 1, None, None, None] * (field + params[:, 0, None, None, None])
    with h5py.File(path, "w") as f:
        f["kappa"] = kappa.astype("f4")
        f["params"] = params
        f["params"].attrs["names"] = ["Om", "s8"]
        f["cosmo_id"] = np.arange(n, dtype="i8") + 1000 * seed
        attrs = {"pixel_arcmin": 6.87, "patch_size": 24, "nside": 64, "bins": [1],
                 "smoothing_arcmin": 0.0, "noise": "none", "source": "simulated",
                 "sigma_noise": [0.008]}  # fmt: skip
        f.attrs.update(attrs)


@pytest.fixture(scope="module")
def analysis_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    for i, (split, n) in enumerate([("train", 64), ("val", 16), ("test", 12)]):
        _patch_file(d / f"{split}.h5", n, i)
    base = ["train", "--train", str(d / "train.h5"), "--val", str(d / "val.h5"), "--device", "cpu",
            "--quiet", "--epochs", "1"]  # fmt: skip
    assert main([*base, "--model", "cnn", "--out", str(d / "cnn"),
                 "--model-options", '{"widths": [4, 8], "hidden": [8]}']) == 0  # fmt: skip
    assert main([*base, "--model", "sop", "--out", str(d / "sop"),
                 "--backbone", str(d / "cnn" / "model.pt"),
                 "--model-options", '{"attention_patch": 4, "n_groups": 4}']) == 0  # fmt: skip
    out = d / "analyze"
    assert main(["analyze", "--checkpoint", str(d / "sop" / "model.pt"),
                 "--data", str(d / "test.h5"), "--out", str(out), "--n-boot", "50",
                 "--device", "cpu", "--quiet"]) == 0  # fmt: skip
    return out


@pytest.mark.slow
def test_notebook_executes_headless(analysis_dir, tmp_path):
    import papermill

    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        NOTEBOOK,
        str(out),
        parameters={
            "analysis_dir": str(analysis_dir),
            "baselines_dir": str(tmp_path / "none"),
            "controls_dir": str(tmp_path / "none"),
            "map_index": 1,
        },
        kernel_name="python3",
        progress_bar=False,
    )
    nb = json.loads(out.read_text())
    text = "".join(
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/markdown", ""))
        for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
    )  # fmt: skip
    summary = json.loads((analysis_dir / "summary.json").read_text())
    # the prose is generated from this run's numbers: skill first, findings only from claims
    assert f"**{summary['n_maps']} test maps**" in text
    assert text.index("**Skill**") < text.index("test maps** were analysed")
    if summary["claims"]:
        assert all(c["text"] in text for c in summary["claims"])
    else:
        assert f"No claim: {summary['no_claim']}." in text
    assert "Conclusion" not in text
    # the generator's type shares are shown next to those of random masks of the same sizes
    rates = summary["type_base_rates"]
    assert f"Of the SOP's {rates['n_selected_groups']} selected groups" in text
    assert f"{rates['random']['void']:.1%} void" in text
    assert "with 95% CIs over test cosmologies × seeds" in text
    # the predicted-vs-true figure follows the skill table, and the map browser drew a figure
    skill_cell = next(i for i, c in enumerate(nb["cells"]) if "describe_skill(summary)" in
                      "".join(c["source"]))  # fmt: skip
    assert any("image/png" in o.get("data", {}) for o in nb["cells"][skill_cell]["outputs"])
    assert any(
        "image/png" in o.get("data", {}) for c in nb["cells"][-1:] for o in c.get("outputs", [])
    )


def test_notebook_names_a_missing_analysis(tmp_path):
    import papermill

    with pytest.raises(papermill.PapermillExecutionError, match=r"summary\.json: not found"):
        papermill.execute_notebook(
            NOTEBOOK, str(tmp_path / "o.ipynb"), kernel_name="python3", progress_bar=False,
            parameters={"analysis_dir": str(tmp_path / "missing")},
        )  # fmt: skip

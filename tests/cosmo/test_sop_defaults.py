"""An SOP trained with the package defaults learns: it beats the constant predictor and its
own untrained twin on every parameter, with at most ``active_groups`` groups per map.

With the old defaults (raw-score selector, independent groups, frozen CNN) the SOP around a CNN
that never saw a masked map stayed at the constant predictor's error in Ωm on 840 training
patches (docs/training.md, "SOP defaults"). At this test's smaller size the old defaults learn
too (MSE / constant 0.89 and 0.47) but use 7.5 groups; the new ones give 0.69 and 0.93.
"""

import pytest
import torch

from sop_cosmo.cosmo.config import TrainConfig
from sop_cosmo.cosmo.maths.planted import ControlSpec
from sop_cosmo.cosmo.stages.controls import untrained_checkpoint, write_control
from sop_cosmo.cosmo.stages.evaluate import evaluate
from sop_cosmo.cosmo.stages.train import train


@pytest.mark.slow
def test_sop_with_the_defaults_learns_on_planted_maps(tmp_path, sop_options=None):
    torch.set_num_threads(1)
    spec = ControlSpec(kind="positive", n_cosmologies=150, n_perms=4, patch_size=32, seed=1)
    write_control(spec, tmp_path / "data")
    train_h5, val_h5, test_h5 = (tmp_path / "data" / f"{s}.h5" for s in ("train", "val", "test"))
    common = {"seed": 1, "device": "cpu", "checkpoint_every": 0}
    cnn = train(train_h5, val_h5, tmp_path / "cnn", TrainConfig(kind="cnn", epochs=15, **common),
                progress=False)  # fmt: skip
    sop_cfg = TrainConfig(
        kind="sop", epochs=8, backbone=str(cnn), model_options=sop_options or {}, **common
    )
    sop = train(train_h5, val_h5, tmp_path / "sop", sop_cfg, progress=False)
    twin = untrained_checkpoint(sop, cnn, tmp_path / "twin" / "model.pt")
    black_box = evaluate(cnn, test_h5, tmp_path / "cnn.json", device="cpu")
    assert all(black_box["r2"][p] > 0.3 for p in ("Om", "s8")), black_box  # a CNN with skill
    trained = evaluate(sop, test_h5, tmp_path / "sop.json", device="cpu")
    untrained = evaluate(twin, test_h5, tmp_path / "twin.json", device="cpu")
    ratio = {p: trained["mse"][p] / trained["mse_constant"][p] for p in ("Om", "s8")}
    for p in ("Om", "s8"):
        assert ratio[p] < 1.0, (p, ratio)
        assert trained["mse"][p] < untrained["mse"][p], (p, trained, untrained)
    assert trained["sop"]["mean_active_groups"] <= 5.0 + 1e-9

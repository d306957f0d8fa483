import h5py
import numpy as np
import pytest

from sop_cosmo.cosmo.contracts.cosmogrid import (
    CosmoGridError,
    find_maps,
    map_filename,
    read_map,
    read_metainfo,
)
from tests.cosmo.tree import make_tree, write_map, write_metainfo


def test_finds_every_map_with_its_parameters(tmp_path):
    cosmologies = make_tree(tmp_path, n_cosmo=3, n_perms=2)
    records = find_maps(tmp_path)
    assert len(records) == 6
    assert [r.perm for r in records[:2]] == [0, 1]
    for r in records:
        assert r.path.name == "projected_probes_maps_nobaryons512.h5"
        assert r.set == "grid"
        assert r.params["Om"] == pytest.approx(cosmologies[r.cosmo]["Om"])
        assert r.params["s8"] == pytest.approx(cosmologies[r.cosmo]["s8"])


@pytest.mark.parametrize("layout", ["v1", "v1.1"])
def test_reads_both_layouts_at_any_nside(tmp_path, layout):
    maps = np.random.default_rng(1).standard_normal((4, 12 * 4 * 4)).astype("f4")
    path = write_map(tmp_path / "m.h5", maps, layout=layout)
    out = read_map(path, bins=(2, 4))
    assert out.dtype == np.float32 and out.shape == (2, 192)
    np.testing.assert_array_equal(out, maps[[1, 3]])


def test_intrinsic_alignment_is_added_with_its_amplitude(tmp_path):
    kg = np.ones((1, 48), "f4")
    ia = np.full((1, 48), 2.0, "f4")
    path = write_map(tmp_path / "m.h5", kg, ia=ia)
    np.testing.assert_allclose(read_map(path, bins=(1,)), kg)
    np.testing.assert_allclose(read_map(path, bins=(1,), a_ia=0.5), kg + 1.0)


def test_baryonified_variant_is_selectable(tmp_path):
    make_tree(tmp_path, n_cosmo=1, n_perms=1, variant="baryonified")
    assert find_maps(tmp_path, variant="baryonified")[0].path.name == map_filename("baryonified")
    with pytest.raises(CosmoGridError, match=r"perm_0000/projected_probes_maps_nobaryons512"):
        find_maps(tmp_path)  # the default variant is absent from that folder


def test_metainfo_keys_on_last_path_component(tmp_path):
    path = write_metainfo(tmp_path, {"cosmo_delta_s8_p": {"Om": 0.26, "s8": 0.86}}, "fiducial")
    meta = read_metainfo(path)
    assert meta["fiducial"]["cosmo_delta_s8_p"]["s8"] == pytest.approx(0.86)


# ---- every bad input is an error that names the file and says what to do ----


def test_missing_file(tmp_path):
    with pytest.raises(CosmoGridError, match=r"nope\.h5: map file not found"):
        read_map(tmp_path / "nope.h5")


def test_truncated_file(tmp_path):
    maps = np.random.default_rng(0).standard_normal((4, 12 * 64 * 64))
    path = write_map(tmp_path / "m.h5", maps)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CosmoGridError, match=r"m\.h5.*(truncated|corrupt).*download it again"):
        read_map(path)


def test_wrong_length(tmp_path):
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f["kg/stage3_lensing1"] = np.zeros(100, "f4")
    with pytest.raises(CosmoGridError, match=r"m\.h5: kg/stage3_lensing1 .*12·nside²"):
        read_map(path, bins=(1,))


def test_nan_pixels(tmp_path):
    maps = np.zeros((1, 48), "f4")
    maps[0, 5] = np.nan
    maps[0, 7] = np.inf
    path = write_map(tmp_path / "m.h5", maps)
    with pytest.raises(CosmoGridError, match=r"m\.h5: kg/stage3_lensing1 has 2 NaN or inf"):
        read_map(path, bins=(1,))


def test_absent_bin(tmp_path):
    path = write_map(tmp_path / "m.h5", np.zeros((2, 48), "f4"))
    with pytest.raises(CosmoGridError, match=r"bin 3 was asked for.*bins present: \[1, 2\]"):
        read_map(path, bins=(1, 3))


def test_cosmology_without_metainfo_row(tmp_path):
    make_tree(tmp_path, n_cosmo=2, n_perms=1)
    extra = tmp_path / "CosmoGrid/stage3_forecast/grid/cosmo_000099/perm_0000"
    write_map(extra / map_filename(), np.zeros((4, 48), "f4"))
    with pytest.raises(CosmoGridError, match=r"cosmo_000099/perm_0000/.*no row in .*cosmo_000099"):
        find_maps(tmp_path)


def test_missing_metainfo_and_missing_tree(tmp_path):
    with pytest.raises(CosmoGridError, match=r"stage3_forecast: not found.*sop-cosmo simulate"):
        find_maps(tmp_path)
    (tmp_path / "CosmoGrid/stage3_forecast/grid").mkdir(parents=True)
    with pytest.raises(CosmoGridError, match="metainfo file not found"):
        find_maps(tmp_path)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(CosmoGridError, match="variant"):
        map_filename("dmo")
    make_tree(tmp_path, n_cosmo=1, n_perms=1)
    with pytest.raises(CosmoGridError, match="sets"):
        find_maps(tmp_path, sets=("benchmarks",))
    with pytest.raises(CosmoGridError, match=r"no projected_probes_maps_nobaryons512\.h5 found"):
        find_maps(tmp_path, sets=("fiducial",))
    assert isinstance(CosmoGridError("x"), ValueError)  # CLI turns it into exit code 2

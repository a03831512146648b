"""Tests of dcsim.sweep.plot: Pareto fronts against hand-worked points, the PNG."""

import numpy as np

from dcsim.sweep.plot import pareto_mask, plot_pareto


def test_pareto_mask_by_hand():
    pts = np.array([[1, 5], [2, 2], [3, 1], [3, 3], [2, 2], [4, 4], [1, 6]])
    # (3,3) and (4,4) are dominated by (2,2); (1,6) by (1,5); the two (2,2) tie
    assert pareto_mask(pts).tolist() == [True, True, True, False, True, False, False]
    three = np.array([[1, 1, 9], [1, 1, 8], [2, 0, 9]])
    assert pareto_mask(three).tolist() == [False, True, True]


def row(key, latency, energy, area, fits, n_pe):
    return {"key": key, "time_us_per_image": str(latency), "energy_sram_pj": str(energy),
            "area_total_um2": str(area), "fits": "true" if fits else "false",
            "n_pe": str(n_pe)}


def test_plot_front_skips_points_that_do_not_fit(tmp_path):
    rows = [row("a", 10, 100, 5, True, 4), row("b", 5, 200, 9, True, 8),
            row("c", 2, 50, 1, False, 16),           # best everywhere, but does not fit
            row("d", 12, 150, 4, True, 2), row("e", 7, 120, 3, True, 4)]
    out = tmp_path / "p.png"
    result = plot_pareto(rows, "latency", "energy", out, color="n_pe")
    assert result["points"] == 5 and result["fitting"] == 4
    assert result["pareto_2d"] == ["b", "e", "a"]    # d is dominated by a, c is hollow
    assert result["pareto_3d"] == 3                  # e beats d on all three axes
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

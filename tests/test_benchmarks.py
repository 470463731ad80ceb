"""The benchmark command runs end to end (fast mode) and writes what the appendix shows."""

import json

from benchmarks.run import main
from sbgm_edu.solver_study import COMPARED_METHODS


def test_fast_benchmark_writes_results_and_markdown(tmp_path):
    out = tmp_path / "results.json"
    results = main(["--fast", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["fast"] is True and saved["machine"]["cpu_count"] >= 1
    assert set(saved["training"]["recipes"]) == {"original", "book"}
    for row in saved["sampling"].values():
        assert row["repeats"] == 1 and row["median_s"] > 0 and row["nfe"] >= 20
    assert len(saved["solver_error"]["rows"]) == 2 * len(COMPARED_METHODS)  # 2 problems x each (solver, grid) pair
    markdown = out.with_suffix(".md").read_text()
    assert "| training time (s) |" in markdown and "dpm_solver_2m" in markdown and "unipc" in markdown
    assert results["total_seconds"] > 0

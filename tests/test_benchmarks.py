"""The benchmark command runs end to end (fast mode) and writes what the appendix shows."""

import json
import math

import pytest

from benchmarks.run import STEPS, main, parse_args
from sbgm_edu.solver_study import COMPARED_METHODS


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    results = main(["--fast", "--out", str(out)])
    return out, results


def test_fast_benchmark_writes_results_and_markdown(fast_run):
    out, results = fast_run
    saved = json.loads(out.read_text())
    assert list(saved) == list(STEPS)
    for section in saved.values():
        measured = section["measured"]
        assert measured["fast"] is True and measured["machine"]["cpu_count"] >= 1 and measured["seconds"] > 0
        assert measured["command"] == f"python -m benchmarks --fast --out {out}"
    assert set(saved["training"]["recipes"]) == {"original", "book"}
    for row in saved["sampling"]["solvers"].values():
        assert row["repeats"] == 1 and row["median_s"] > 0 and row["nfe"] >= 20
    assert len(saved["solver_error"]["rows"]) == 2 * len(COMPARED_METHODS)  # 2 problems x each (solver, grid) pair
    markdown = out.with_suffix(".md").read_text()
    assert "| training time (s) |" in markdown and "dpm_solver_2m" in markdown and "unipc" in markdown
    assert markdown.count("*Measured on ") == len(STEPS)  # one provenance line per section
    assert results["total_seconds"] > 0


def test_fast_likelihood_section(fast_run):
    lik = json.loads(fast_run[0].read_text())["likelihood"]
    uniform = lik["baselines"]["rows"]["uniform (17 levels)"]
    assert uniform["bits_per_dim"] == pytest.approx(math.log2(17), abs=1e-9)  # closed form, eq. (ch10-bpd)
    assert uniform["standard_error"] == pytest.approx(0.0, abs=1e-9)
    for by_steps in lik["models"].values():
        for row in by_steps.values():  # a score model of the digits: finite and below the uniform model
            assert math.isfinite(row["bits_per_dim"]) and 0 < row["bits_per_dim"] < math.log2(17)
    assert set(lik["quality"]) == {"unconditional", "likelihood"}


def test_only_refreshes_the_named_sections_and_keeps_the_others(fast_run, tmp_path):
    out = tmp_path / "results.json"
    old = json.loads(fast_run[0].read_text())
    out.write_text(json.dumps(old))
    main(["--fast", "--out", str(out), "--only", "solver_error"])
    new = json.loads(out.read_text())
    assert list(new) == list(STEPS)
    for key in STEPS:
        same = new[key] == old[key]
        assert same == (key != "solver_error"), key
    assert "--only solver_error" in new["solver_error"]["measured"]["command"]
    assert "--only" not in new["training"]["measured"]["command"]


def test_only_rejects_unknown_steps():
    with pytest.raises(SystemExit):
        parse_args(["--only", "solver_error,sampler"])
    assert parse_args(["--only", "likelihood, book"]).steps == ["likelihood", "book"]


def test_sections_of_an_older_file_get_its_one_date_and_command(tmp_path):
    from benchmarks.run import previous_sections

    legacy = {"command": "python -m benchmarks", "fast": False, "threads": 1, "machine": {"date": "2026-11-30"},
              "total_seconds": 1.0, "sampling": {"euler": {"nfe": 20}}, "book": {"build": None}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(legacy))
    sections = previous_sections(path)
    assert set(sections) == {"sampling", "book"}
    assert sections["sampling"]["solvers"] == {"euler": {"nfe": 20}}
    for section in sections.values():
        assert section["measured"]["machine"]["date"] == "2026-11-30"
        assert section["measured"]["command"] == "python -m benchmarks"

"""A read run's path is W&B's list, and still the text earlier modelreg versions gave."""

from __future__ import annotations

from modelreg.public_run import RunPath


def test_a_run_path_joins_as_w_and_b_scripts_join_it_and_reads_as_the_text_it_was() -> None:
    path = RunPath(["acme", "nature", "r1"])
    assert "/".join(path) == "acme/nature/r1" and list(path) == ["acme", "nature", "r1"]  # W&B's
    assert path == "acme/nature/r1" and f"{path}" == "acme/nature/r1"  # what it was
    assert {path: 1}["acme/nature/r1"] == 1 and path.split("/")[0] == "acme"
    assert path != "acme/nature/r2" and path == ["acme", "nature", "r1"]

"""A projector started with a projection name misspelt exits at once, naming the ones there are: it was started again
every 10 s for ever, exiting 0 under a supervisor's timeout."""

from __future__ import annotations

from click.testing import CliRunner

from modelreg.services.cli import main


def test_a_projector_told_to_run_a_projection_that_does_not_exist_exits_naming_the_known_ones() -> None:
    result = CliRunner().invoke(
        main, ["projector", "--projection", "registy", "--database-url", "postgresql://nobody@127.0.0.1:1/none"]
    )
    assert result.exit_code == 2
    assert "no projection 'registy'; known: " in result.output and "registry" in result.output

"""The command line prints names, reasons and errors others wrote, and jobs' output: a terminal sequence in them
(clearing the screen, moving the cursor, OSC 52 writing the clipboard) or a right-to-left override is shown as its
escape. A job's colours and progress bars still show as its terminal showed them."""

from __future__ import annotations

from modelreg.services.terminal_text import shown, shown_output


def test_a_name_holding_terminal_sequences_is_shown_as_their_escapes() -> None:
    assert shown("done \x1b[2J\x1b[H fake") == "done \\u001b[2J\\u001b[H fake"
    assert shown("ok \x1b]52;c;aGk=\x1b\\") == "ok \\u001b]52;c;aGk=\\u001b\\"
    assert shown("model\u202egnp.exe") == "model\\u202egnp.exe"
    assert shown("\x9b2J") == "\\u009b2J"  # the one-byte CSI of C1


def test_line_breaks_tabs_and_other_scripts_are_shown_as_they_are() -> None:
    assert shown("line one\n\tline two") == "line one\n\tline two"
    assert shown("Modèle 分类器 ✓") == "Modèle 分类器 ✓"


def test_a_jobs_output_keeps_its_colours_and_progress_bars_but_nothing_else() -> None:
    coloured = "\x1b[1;32mPASSED\x1b[0m\r 50%|#####     |\r100%|##########|\n"
    assert shown_output(coloured) == coloured
    assert shown_output("epoch 1\x1b]52;c;aGk=\x07\x1b[2J") == "epoch 1\\u001b]52;c;aGk=\\u0007\\u001b[2J"

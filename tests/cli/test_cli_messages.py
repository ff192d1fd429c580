"""What the CLI prints keeps the user's text as it is: brackets are not markup."""

import pytest
import typer

from facekit_cli import ui


def test_an_error_keeps_its_brackets(capsys):
    with pytest.raises((SystemExit, typer.Exit)):
        ui.fail("pip install 'facekit[plot]' for model.png; see [the docs]")
    err = capsys.readouterr().err
    assert "facekit[plot]" in err and "[the docs]" in err


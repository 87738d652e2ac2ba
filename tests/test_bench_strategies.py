"""``nfx bench --strategy`` takes a comma list, as ``--cores`` does (``--cores 1,2 --strategy locks,tm``
was refused as an invalid choice)."""
from __future__ import annotations

from pathlib import Path

import pytest

from explorer.cli import main
from explorer.commands.bench import parse_strategies
from explorer.errors import ConfigError

FW = str(Path(__file__).resolve().parent.parent / "sample_nfs" / "fw.c")


def test_a_comma_list_and_repeated_options_mean_the_same():
    assert parse_strategies(["locks,tm"]) == ["locks", "tm"]
    assert parse_strategies(["locks", "tm", "locks"]) == ["locks", "tm"]
    assert parse_strategies([]) == []


def test_an_unknown_strategy_is_named_cleanly(capsys):
    with pytest.raises(ConfigError, match="bogus is not a strategy; choose from seq, sn, locks, tm"):
        parse_strategies(["locks,bogus"])
    assert main(["bench", FW, "--strategy", "locks,"]) == 1
    err = capsys.readouterr().err
    assert "an empty name is not a strategy" in err and "Traceback" not in err

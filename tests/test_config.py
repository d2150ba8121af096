"""Config files: schema validation with errors that name the key, defaults, round trip, CLI errors."""

from __future__ import annotations

import pytest

from hal.cli import main
from hal.config import ConfigError, Field, dumps, load, validate
from hal.protocols import alloy, default_config

SCHEMA = {
    "seed": Field(int, 0),
    "name": Field(str, required=True),
    "sub": {"x": Field(float, 1.0), "moves": Field(list, ["a"], item=str, choices=("a", "b"))},
    "stages": [{"n": Field(int, 5), "tau": Field(float)}],
}


def test_defaults_are_filled_and_ints_become_floats():
    out = validate({"name": "r", "sub": {"x": 2}, "stages": [{}, {"tau": 1}]}, SCHEMA)
    assert out == {
        "seed": 0,
        "name": "r",
        "sub": {"x": 2.0, "moves": ["a"]},
        "stages": [{"n": 5}, {"n": 5, "tau": 1.0}],
    }
    assert isinstance(out["sub"]["x"], float)


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"name": "r", "sede": 1}, ["'sede'", "allowed keys", "seed"]),
        ({"name": "r", "sub": {"y": 1}}, ["sub.'y'", "[sub]", "moves, x"]),
        ({"name": "r", "stages": [{"n": 1}, {"m": 2}]}, ["stages[1].'m'", "n, tau"]),
        ({"name": "r", "seed": "1"}, ["seed", "an integer", "'1'"]),
        ({"name": "r", "seed": True}, ["seed", "an integer"]),
        ({"name": "r", "sub": {"x": "fast"}}, ["sub.x", "a number"]),
        ({"name": "r", "sub": {"moves": ["a", 3]}}, ["sub.moves[1]", "a string"]),
        ({"name": "r", "sub": {"moves": ["c"]}}, ["sub.moves", "'c'", "['a', 'b']"]),
        ({"name": "r", "sub": 3}, ["sub", "table"]),
        ({"name": "r", "stages": {"n": 1}}, ["stages", "array of tables"]),
        ({}, ["name", "required"]),
    ],
)
def test_errors_name_the_key(raw, words):
    with pytest.raises(ConfigError) as err:
        validate(raw, SCHEMA)
    for w in words:
        assert w in str(err.value)


def test_default_alloy_config_round_trips(tmp_path):
    config = load(default_config("alloy"), alloy.SCHEMA)
    alloy.check(config)
    assert [s["name"] for s in config["stages"]] == ["solid", "liquid"]
    (tmp_path / "c.toml").write_text(dumps(config))
    assert load(tmp_path / "c.toml", alloy.SCHEMA) == config


@pytest.mark.parametrize(
    "text, words",
    [
        ('protocol = "alloy"\nworkrs = 2\n', ["workrs", "allowed keys"]),
        ('protocol = "alloy"\n[system]\nelements = ["Cu"]\n[[stages]]\nname = "s"\n', ["system.elements", "two"]),
        ('protocol = "alloy"\n[[stages]]\nname = "s"\ntemperature_K = "hot"\n', ["stages[0].temperature_K", "number"]),
        ('protocol = "alloy"\n', ["stages", "at least one"]),
        ('protocol = "polymerz"\n', ["polymerz", "known: hal, alloy"]),
        ("protocol = \n", ["not valid TOML"]),
    ],
)
def test_hal_run_rejects_bad_configs(tmp_path, capsys, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["run", str(path), "--dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    for w in words:
        assert w in err
    assert not (tmp_path / "run" / "data.db").exists()


def test_run_dir_with_another_config_is_refused_naming_the_keys(tmp_path, capsys):
    from ase import Atoms
    from ase.db import connect

    from hal.cli import _claim
    from hal.config import ConfigError

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = load(default_config("alloy"), alloy.SCHEMA)
    old = {**config, "seed": 99, "stages": [{**config["stages"][0], "temperature_K": 900.0}, *config["stages"][1:]]}
    (run_dir / "config.toml").write_text(dumps(old))
    _claim(run_dir, config, alloy.SCHEMA)  # no labels yet: nothing is lost, the configuration is replaced
    assert load(run_dir / "config.toml", alloy.SCHEMA) == config and "replaced" in capsys.readouterr().out
    (run_dir / "config.toml").write_text(dumps(old))
    connect(str(run_dir / "data.db")).write(Atoms("Cu"), uid="init-0")
    with pytest.raises(ConfigError, match=r"seed \(99 there, 0 here\).*stages\[0\].temperature_K.*--resume"):
        _claim(run_dir, config, alloy.SCHEMA)
    assert main(["run", "alloy", "--dir", str(run_dir)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "nowhere")]) == 2
    assert main(["report", str(tmp_path / "nowhere")]) == 2

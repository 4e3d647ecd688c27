"""Station files: a bad one is one ConfigError naming the file and the key, before anything opens."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hil.errors import ConfigError
from hil.station import expand_refs, load_station, parse_ref

STATIONS = Path(__file__).resolve().parents[1] / "stations"
EXAMPLES = Path(__file__).resolve().parents[2] / "protocols" / "stations"


def test_refs_expand_with_ranges_and_width():
    assert parse_ref("daq.101:103") == ("daq", "101", "103")
    assert parse_ref("smu") == ("smu", "", None)
    assert expand_refs(["daq.101:103", "smu", "board.08:10"]) == [
        ("daq", "101"), ("daq", "102"), ("daq", "103"), ("smu", ""), ("board", "08"), ("board", "09"),
        ("board", "10")]
    with pytest.raises(ValueError):
        expand_refs(["daq.105:101"])
    with pytest.raises(ValueError):
        parse_ref("daq 101")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")) + [STATIONS / "sim_station.yaml"],
                         ids=lambda p: p.name)
def test_shipped_stations_validate(path):
    station = load_station(path)
    assert station.instruments and station.limits.v_abs_max > 0


def _broken(tmp_path, edit) -> Path:
    data = yaml.safe_load((STATIONS / "sim_station.yaml").read_text())
    edit(data)
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d["limits"].update(v_abs_maxx=1.0), r"limits\.v_abs_maxx: unknown key"),
        (lambda d: d["instruments"]["daq"].update(kind="daq9700"), r"instruments\.daq\.kind: Input should be"),
        (lambda d: d["wiring"]["layers"][0].__setitem__(0, "daq2.101:102"),
         r"wiring\.layers\.0\.0: no instrument named 'daq2'"),
        (lambda d: d["instruments"].pop("smu"), r"nudge\.sources\.0: no instrument named 'smu'"),
        (lambda d: d["limits"].update(ramp_v_per_s=0), r"limits\.ramp_v_per_s: Input should be greater than 0"),
        (lambda d: d["limits"].update(g_max_s=1e-7), r"limits\.g_max_s: must exceed g_min_s"),
        (lambda d: d["limits"].update(v_abs_max_per_source={"smu": 5.0}),
         r"limits\.v_abs_max_per_source: smu \(5 V\) exceeds v_abs_max"),
        (lambda d: d["instruments"]["daq"].update(timeout_s=-1), r"instruments\.daq\.timeout_s"),
        (lambda d: d["wiring"].update(inputs=["daq.101:104"]), r"wiring\.inputs\.0: 'daq' is a daq970a"),
        (lambda d: d.pop("limits"), r"limits: Field required"),
    ],
    ids=["typo", "kind", "missing-ref", "missing-instrument", "limit-range", "g-range", "per-source",
         "timeout", "wrong-kind", "no-limits"],
)
def test_bad_station_is_one_line_naming_the_key(tmp_path, edit, message):
    path = _broken(tmp_path, edit)
    with pytest.raises(ConfigError, match=message) as info:
        load_station(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text and len(text) < 300


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_station(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("instruments: [\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_station(bad)

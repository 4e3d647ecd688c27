"""Station limits above what the instruments can do are station errors: exit 2, one line naming the key,
the instrument and its rating (issue 16).  Ratings are written from the manuals (see each driver's RATINGS)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hil.errors import ConfigError
from hil.station import load_station

STATIONS = Path(__file__).resolve().parents[1] / "stations"
MEMRISTIVE = Path(__file__).resolve().parents[2] / "protocols" / "stations" / "memristive_2600_707b.yaml"


def _variant(tmp_path, base: Path, edit, sim: bool = True) -> Path:
    data = yaml.safe_load(base.read_text())
    edit(data)
    if sim:  # the pyvisa-sim file next to the original station
        data["instruments"] = {k: {**v, "visa_library": f"{STATIONS / 'sim_devices.yaml'}@sim"}
                               for k, v in data["instruments"].items()}
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _check(argv, capsys) -> tuple[int, list[str]]:
    from hil.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["limits"].update(v_abs_max=5000.0),
     "limits.v_abs_max: 5000 V exceeds the rating of daq (daq970a DAQ970A: |V| <= 300 V)"),
    (lambda d: d["limits"].update(compliance_a=50.0),
     "limits.compliance_a: 50 A exceeds the rating of smu (keithley2450 2450: |V| <= 210 V (1.05 A up to 21 V"),
    (lambda d: d["limits"].update(v_abs_max=float("inf")), "limits.v_abs_max: Input should be a finite number"),
    (lambda d: d["limits"].update(g_max_s=10.0),
     "limits.g_max_s: 10 S exceeds the rating of board (conductance_board G:RANG? 1e-06..0.001 S)"),
    (lambda d: d["limits"].update(v_abs_max=30.0, compliance_a=1.0),
     "limits.compliance_a: 1 A at v_abs_max 30 V exceeds the rating of smu (keithley2450"),
], ids=["v_abs_max-5000", "compliance-50", "inf", "g_max_s-10", "envelope"])
def test_instruments_check_refuses_a_limit_above_the_rating(tmp_path, capsys, edit, message):
    code, lines = _check(["instruments", "check", str(_variant(tmp_path, STATIONS / "sim_station.yaml", edit))],
                         capsys)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines


def test_the_same_station_passes_within_the_ratings(tmp_path, capsys):
    code, lines = _check(["instruments", "check", str(_variant(tmp_path, STATIONS / "sim_station.yaml",
                                                               lambda d: None))], capsys)
    assert code == 0, lines


def test_yaml_inf_is_refused_when_the_file_is_read(tmp_path):
    path = tmp_path / "inf.yaml"
    path.write_text((STATIONS / "sim_station.yaml").read_text().replace("v_abs_max: 1.0", "v_abs_max: .inf"))
    with pytest.raises(ConfigError, match="limits.v_abs_max: Input should be a finite number"):
        load_station(path)


def test_a_memristive_station_with_an_absurd_g_max_is_refused(tmp_path):
    from hil.drivers.ratings import rating_problems

    path = _variant(tmp_path, MEMRISTIVE, lambda d: d["limits"].update(g_max_s=10.0), sim=False)
    problems = rating_problems(load_station(path))
    assert problems == ["limits.g_max_s: a cell of 10 S at v_read 0.1 V draws 1 A, over compliance_a 0.001 A of "
                        "smu_prog"]


def test_the_model_that_idn_names_decides():
    """60 V is within the 2600 family (a 2636B sources 200 V) but not within a 2602B (40 V)."""
    from hil.drivers.keithley_2600 import RATINGS as R2600
    from hil.drivers.ratings import model_rating, rating_problems

    data = yaml.safe_load(MEMRISTIVE.read_text())
    data["limits"].update(v_abs_max=60.0, v_abs_max_per_source={}, pulse_v_abs_max=1.5)
    from hil.station import Station

    station = Station.model_validate(data)
    assert rating_problems(station) == []  # the widest model of each kind: nothing opened yet
    r2602 = model_rating("keithley2600", "Keithley Instruments Inc., Model 2602B, 4321, 3.2.2")
    assert r2602 is R2600["2602B"]
    problems = rating_problems(station, {"smu_in": r2602, "smu_prog": r2602})
    assert problems[0].startswith("limits.v_abs_max: 60 V exceeds the rating of smu_in (keithley2600 2602B: "
                                  "|V| <= 40.4 V")


def test_an_unknown_model_is_named():
    from hil.drivers.ratings import model_rating

    with pytest.raises(ConfigError, match="no rating for .*Model 2657A"):
        model_rating("keithley2600", "Keithley Instruments Inc., Model 2657A, 1, 1")

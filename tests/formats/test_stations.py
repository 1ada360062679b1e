"""The station file, as svc-mswrite and svc-avg read it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.formats.stations import DEFAULT_DISH_DIAMETER_M, StationsFileError, read_stations

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_reads_names_positions_and_diameters(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text("# NAME X Y Z [D]\nA 1 2 3 12.5  # a dish\n\nB -4 5.5 6e3\n")
    stations = read_stations(path)
    assert stations.names == ("A", "B")
    np.testing.assert_array_equal(stations.positions, [[1, 2, 3], [-4, 5.5, 6000]])
    np.testing.assert_array_equal(stations.diameters, [12.5, DEFAULT_DISH_DIAMETER_M])
    assert len(read_stations(CONFIGS / "vis-stations.txt").names) > 1


@pytest.mark.parametrize("text, message", [
    ("A 1 2 3\nB 1 two 3\n", r"s.txt:2: expected 'NAME X Y Z \[DIAMETER\]'"),
    ("A 1 2\n", r"s.txt:1: expected"),
    ("# nothing\n", "no antennas"),
])
def test_a_bad_file_is_one_line_naming_file_and_line(tmp_path: Path, text: str,
                                                     message: str) -> None:
    path = tmp_path / "s.txt"
    path.write_text(text)
    with pytest.raises(StationsFileError, match=message) as exc:
        read_stations(path)
    assert "\n" not in str(exc.value)

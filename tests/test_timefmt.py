import pytest

from shardrun.timefmt import format_slurm_time, parse_slurm_time


@pytest.mark.parametrize(("text", "seconds"), [
    ("1", 60), ("0:30", 30), ("90", 5400), ("06:00:00", 21600), ("1-00:00:00", 86400),
    ("2-3", 2 * 86400 + 3 * 3600), ("1-2:30", 86400 + 2 * 3600 + 30 * 60), ("10:00", 600),
])
def test_slurm_time_formats(text: str, seconds: int) -> None:
    assert parse_slurm_time(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1h", "-5", "1:2:3:4", "0", "0:00", "INFINITE"])
def test_bad_times_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_slurm_time(text)


def test_format_round_trips() -> None:
    for seconds in (30, 3600, 21600, 90061):
        assert parse_slurm_time(format_slurm_time(seconds)) == seconds

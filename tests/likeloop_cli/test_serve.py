"""``likeloop serve`` as an operator runs it: it cleans up after itself."""

from tests.support import LiveService


def metrics_folders(tmp):
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("likeloop-metrics-"))


def test_the_metrics_folder_it_made_is_removed_when_it_stops(settings, conn, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    service = LiveService(settings, tmp_path / "service.log", TMPDIR=str(tmp))
    try:
        assert len(metrics_folders(tmp)) == 1  # the workers' metrics files live there meanwhile
    finally:
        service.stop()
    assert service.proc.returncode == 0
    assert metrics_folders(tmp) == []

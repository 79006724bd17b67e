"""The on-disk spool keeps what it holds to its owner: batches hold prompts, answers, user ids."""

import os
import stat

from likeloop._spool import Spool


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_spool_folder_it_makes_and_every_batch_file_are_the_owners_only(tmp_path):
    old = os.umask(0o022)  # a usual umask: it would make files 0644 and folders 0755
    try:
        spool = Spool(tmp_path / "deep" / "spool")
        written = spool.write(b'{"events": []}', 1, "origin")
    finally:
        os.umask(old)
    assert mode(tmp_path / "deep" / "spool") == 0o700
    assert mode(written) == 0o600
    assert spool.claim_oldest().count == 1  # and it still reads back


def test_an_existing_folder_keeps_its_mode_and_the_files_are_still_private(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    written = Spool(shared).write(b"{}", 1, "origin")
    assert mode(shared) == 0o755 and mode(written) == 0o600

"""The embedded installation's master key file: made once, private, agreed on by racing starts."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

from lead_ledger.ledger import subject_keys as keys


def test_the_embedded_master_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    """Created on first use with mode 0600, and the same key on every later use."""
    first = keys.load_or_create_master_key(tmp_path / "data")
    path = tmp_path / "data" / keys.MASTER_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.load_or_create_master_key(tmp_path / "data") == first


def _load(data_dir: str) -> bytes:
    return keys.load_or_create_master_key(Path(data_dir))


def test_processes_starting_at_once_agree_on_one_master_key(tmp_path: Path) -> None:
    """Eight processes racing to create the key file all end with the same whole key, round
    after round (a reader once caught the winner's file before its key was written)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(8) as pool:
        for round_number in range(20):
            data_dir = tmp_path / f"data-{round_number}"
            loaded = pool.map(_load, [str(data_dir)] * 8, chunksize=1)
            assert len(set(loaded)) == 1
            assert [path.name for path in data_dir.iterdir()] == [keys.MASTER_KEY_FILE]

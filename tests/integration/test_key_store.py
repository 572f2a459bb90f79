"""Subject keys and account secrets stored wrapped in PostgreSQL, as the service's role uses
them: made once, agreed on by concurrent writers, gone after an erasure, re-wrapped by a
rotation, and refused to a wrong master key."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.connection import Connection
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import AccountDigests
from tests.support import logged_statements

MASTER = subject_keys.new_data_key()


async def test_writers_make_a_key_once_and_readers_find_it(pool: asyncpg.Pool) -> None:
    """The first write makes each subject's key; later writes and reads get the same one; the
    table holds it wrapped, never as its bytes."""
    async with pool.acquire() as conn:
        made = await key_store.keys_for_writing(conn, MASTER, 1, ["lead-1", "lead-2"])
        again = await key_store.keys_for_writing(conn, MASTER, 1, ["lead-2", "lead-3"])
        read = await key_store.keys_for_reading(conn, MASTER, ["lead-1", "lead-2", "lead-9"])
        stored = [
            r["wrapped_key"] for r in await conn.fetch("SELECT wrapped_key FROM subject_keys")
        ]
    assert set(made) == {"lead-1", "lead-2"}
    assert again["lead-2"] == made["lead-2"]
    assert read == made  # lead-9 never had a key: absent, not made
    assert all(key not in wrapped for key in made.values() for wrapped in stored)


async def test_concurrent_writers_of_one_subject_agree_on_its_key(pool: asyncpg.Pool) -> None:
    """Eight writers at once, each in its own transaction: one key, the same for all."""

    async def write() -> bytes:
        async with pool.acquire() as conn, conn.transaction():
            return (await key_store.keys_for_writing(conn, MASTER, 1, ["lead-7"]))["lead-7"]

    keys = await asyncio.gather(*(write() for _ in range(8)))
    assert len(set(keys)) == 1
    assert await pool.fetchval("SELECT count(*) FROM subject_keys") == 1


async def test_an_erased_subject_has_no_key_and_its_data_cannot_be_opened(
    pool: asyncpg.Pool,
) -> None:
    """After erase, reading finds no key for the subject, so what was sealed with it stays
    sealed; the other subjects are untouched."""
    async with pool.acquire() as conn:
        keys = await key_store.keys_for_writing(conn, MASTER, 1, ["lead-1", "lead-2"])
        sealed = subject_keys.seal(keys["lead-1"], b"Asha +919876543210", "lead-1")
        assert await key_store.erase(conn, ["lead-1", "lead-404"]) == 1
        after = await key_store.keys_for_reading(conn, MASTER, ["lead-1", "lead-2"])
    assert after == {"lead-2": keys["lead-2"]}
    with pytest.raises(subject_keys.SubjectKeyError):
        subject_keys.open_sealed(subject_keys.new_data_key(), sealed, "lead-1")


async def test_keys_made_ahead_are_stored_only_for_subjects_without_one(
    pool: asyncpg.Pool,
) -> None:
    """Keys made before the write (a large insert's new leads) are stored as they are; a
    subject that had a key, or was erased, fails the write rather than keep events sealed with
    a key nobody stores."""
    fresh = {
        subject: subject_keys.wrap(MASTER, subject_keys.new_data_key())
        for subject in ["lead-5", "lead-6"]
    }
    async with pool.acquire() as conn:
        await key_store.store_new_keys(conn, 1, fresh)
        rows = await conn.fetch("SELECT subject_id, wrapped_key FROM subject_keys")
        stored = {row["subject_id"]: row["wrapped_key"] for row in rows}
        assert stored == fresh
        await key_store.keys_for_writing(conn, MASTER, 1, ["lead-7", "lead-8"])
        await key_store.erase(conn, ["lead-8"])
        again = {"lead-7": fresh["lead-5"], "lead-9": fresh["lead-6"]}
        with pytest.raises(key_store.KeyConflictError) as conflict:
            await key_store.store_new_keys(conn, 1, again)
        assert conflict.value.subjects == ["lead-7"]
        with pytest.raises(key_store.SubjectErasedError):
            await key_store.store_new_keys(conn, 1, {"lead-8": fresh["lead-5"]})


@pytest.mark.parametrize("count", [3, key_store.COPY_KEYS_FROM])
async def test_a_conflict_among_new_keys_names_its_subjects_and_leaves_the_write_usable(
    pool: asyncpg.Pool, count: int
) -> None:
    """Within a writer's transaction (an explicit BEGIN, as jobs and writers begin theirs), by
    INSERT or (from COPY_KEYS_FROM keys on) by COPY in a savepoint: new
    keys are all stored; a batch in which one subject had a key keeps that subject's key, names
    the subject, and leaves the transaction usable; an erased one is named as erased."""

    def fresh(first: int) -> dict[str, bytes]:
        return {
            f"lead-{n}": subject_keys.wrap(MASTER, subject_keys.new_data_key())
            for n in range(first, first + count)
        }

    async def stored(conn: Connection) -> dict[str, bytes]:
        rows = await conn.fetch("SELECT subject_id, wrapped_key FROM subject_keys")
        return {row["subject_id"]: row["wrapped_key"] for row in rows}

    async with pool.acquire() as conn, write_transaction(conn):
        first = fresh(1)
        await key_store.store_new_keys(conn, 1, first)
        assert await stored(conn) == first
        clash = fresh(count + 1) | {"lead-1": subject_keys.wrap(MASTER, b"k" * 32)}
        with pytest.raises(key_store.KeyConflictError) as conflict:
            await key_store.store_new_keys(conn, 1, clash)
        assert conflict.value.subjects == ["lead-1"]
        assert (await stored(conn))["lead-1"] == first["lead-1"]
        await key_store.erase(conn, ["lead-2"])
        with pytest.raises(key_store.SubjectErasedError) as erased:
            await key_store.store_new_keys(conn, 1, fresh(3 * count + 1) | {"lead-2": b"x" * 40})
        assert erased.value.subjects == ["lead-2"]


async def test_account_secrets_are_made_once_per_account(pool: asyncpg.Pool) -> None:
    """One secret per account, the same on every call; accounts differ."""
    async with pool.acquire() as conn:
        first = await key_store.account_secret(conn, MASTER, 1)
        assert await key_store.account_secret(conn, MASTER, 1) == first
        assert await key_store.account_secret(conn, MASTER, 2) != first


@pytest.mark.parametrize("batch", [key_store.ROTATE_BATCH, 2])
async def test_rotation_rewraps_everything_under_the_new_master_key(
    pool: asyncpg.Pool, batch: int
) -> None:
    """After a rotation, in one batch or several, the new master key opens every key and
    secret (an erased subject's tombstone stays one), the old one none."""
    new_master = subject_keys.new_data_key()
    subjects = ["lead-1", "lead-2", "lead-10", "lead-3", "lead-9"]
    async with pool.acquire() as conn:
        keys = await key_store.keys_for_writing(conn, MASTER, 1, [*subjects, "lead-4"])
        await key_store.erase(conn, ["lead-4"])
        secret = await key_store.account_secret(conn, MASTER, 1)
        with pytest.raises(RuntimeError, match="inside one transaction"):
            await key_store.rotate(conn, MASTER, new_master)
        async with conn.transaction():
            assert await key_store.rotate(conn, MASTER, new_master, batch=batch) == 6
        del keys["lead-4"]
        assert await key_store.keys_for_reading(conn, new_master, [*keys, "lead-4"]) == keys
        assert await key_store.account_secret(conn, new_master, 1) == secret
        with pytest.raises(subject_keys.SubjectKeyError):
            await key_store.keys_for_reading(conn, MASTER, ["lead-1"])


async def test_a_wrong_master_key_is_refused_once_keys_exist(pool: asyncpg.Pool) -> None:
    """Keys stored before any check (a database older than the canary): only the key that
    wrapped them passes, and it becomes the canary's."""
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM master_key_canary")
        await key_store.keys_for_writing(conn, MASTER, 1, ["lead-1"])
        with pytest.raises(subject_keys.SubjectKeyError, match="LEDGER_MASTER_KEY does not open"):
            await key_store.check_master_key(conn, subject_keys.new_data_key())
        assert await conn.fetchval("SELECT count(*) FROM master_key_canary") == 0
        await key_store.check_master_key(conn, MASTER, store_canary=True)
        await conn.execute("DELETE FROM subject_keys")
        with pytest.raises(subject_keys.SubjectKeyError, match="LEDGER_MASTER_KEY does not open"):
            await key_store.check_master_key(conn, subject_keys.new_data_key())


async def test_the_first_key_checked_on_a_fresh_database_is_its_key(pool: asyncpg.Pool) -> None:
    """Two processes started at once with different keys on a database that holds no key: the
    first to check stores its canary, the other is refused before it can store anything; a
    rotation moves the canary to the new key."""
    first, second = subject_keys.new_data_key(), subject_keys.new_data_key()
    async with pool.acquire() as conn, pool.acquire() as other:
        await conn.execute("DELETE FROM master_key_canary")
        async with conn.transaction():
            await key_store.check_master_key(conn, first, store_canary=True)  # not committed yet
            racing = asyncio.create_task(
                key_store.check_master_key(other, second, store_canary=True)
            )
            pid = other.get_server_pid()
            for _ in range(1000):  # until its INSERT waits for the first's to commit
                if await pool.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
                ):
                    break
                await asyncio.sleep(0.01)
        with pytest.raises(subject_keys.SubjectKeyError, match="LEDGER_MASTER_KEY does not open"):
            await racing
        async with conn.transaction():
            await key_store.rotate(conn, first, second)
        await key_store.check_master_key(other, second)
        with pytest.raises(subject_keys.SubjectKeyError, match="LEDGER_MASTER_KEY does not open"):
            await key_store.check_master_key(other, first)


async def _made_in_a_rolled_back_transaction(conn: Connection, digests: AccountDigests) -> str:
    transaction = conn.transaction()
    await transaction.start()
    made = (await digests.get(conn, 7))("9876500001")
    await transaction.rollback()
    return made


async def test_a_writers_account_digests_keep_only_committed_secrets(pool: asyncpg.Pool) -> None:
    """A writer reads an account's secret once; one made in a transaction that rolled back is
    not kept (another writer would make and keep a different one)."""
    digests = AccountDigests()
    async with pool.acquire() as conn:
        made_and_lost = await _made_in_a_rolled_back_transaction(conn, digests)
        kept = (await digests.get(conn, 7))("9876500001")
        assert kept != made_and_lost
        stored = await key_store.account_secret(conn, key_store.master_key(), 7)
        assert subject_keys.digester(stored)("9876500001") == kept
        with logged_statements(conn) as statements:
            assert (await digests.get(conn, 7))("9876500001") == kept
        assert statements == []


async def test_a_command_checking_a_key_binds_no_fresh_database(pool: asyncpg.Pool) -> None:
    """A command run with a key of its own (a key file made on a host without the real key)
    checks it but stores no canary: the server with the real key still comes up."""
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM master_key_canary")
        await key_store.check_master_key(conn, subject_keys.new_data_key())
        assert await conn.fetchval("SELECT count(*) FROM master_key_canary") == 0
        await key_store.check_master_key(conn, MASTER, store_canary=True)
        assert await conn.fetchval("SELECT count(*) FROM master_key_canary") == 1

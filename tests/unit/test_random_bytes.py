"""Random bytes drawn in blocks: never handed out twice, in this process or a forked one."""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection

from lead_ledger.ledger import random_bytes as rb


def test_pieces_are_never_repeated_across_blocks() -> None:
    """Enough 12-byte nonces to span several blocks: all distinct, all of the asked length."""
    pieces = [rb.random_bytes(12) for _ in range(3 * rb.BLOCK // 12)]
    assert {len(p) for p in pieces} == {12}
    assert len(set(pieces)) == len(pieces)


def test_a_piece_larger_than_a_block_comes_whole() -> None:
    """Asked for more than a block, the OS gives it directly."""
    assert len(rb.random_bytes(rb.BLOCK + 1)) == rb.BLOCK + 1


def _child(pipe: Connection) -> None:
    pipe.send(rb.random_bytes(32))


def test_a_forked_child_does_not_reuse_the_parents_block() -> None:
    """The parent holds a block; a forked child starts a block of its own, so its first bytes
    are not the parent's next ones (a repeated nonce would break AES-GCM)."""
    rb.random_bytes(1)  # the parent now holds a partly used block
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender,))
    child.start()
    from_child = receiver.recv()
    child.join(timeout=30)
    assert from_child != rb.random_bytes(32)

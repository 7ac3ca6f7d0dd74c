"""Postgres snapshots and the "committed after this snapshot" row test.

An extract records ``pg_current_snapshot()`` (``xmin:xmax:xip1,xip2,...``, 64-bit
xids, stored as text with the run). A row version whose ``xmin`` is in ``xip`` or
at/after ``xmax`` was committed after that snapshot, so that extract could not see
it. Later runs read such rows again, which is how rows from transactions that were
still open are picked up instead of being skipped forever.

A row carries only the low 32 bits of its xid. Comparing those modulo 2^32 with
a stored snapshot, as PostgreSQL does internally, breaks once the stored snapshot is
2^31 transactions old, or for a row frozen that long ago. The row's xid is
therefore widened to 64 bits against the *current* snapshot (the most recent xid
with those low bits that is older than its ``xmax``), then compared with the stored
64-bit snapshot: exact for every row written within the last 2^32 transactions.

``xip`` lists top-level transactions only; rows written in a savepoint carry the
subtransaction's xid. The extract therefore adds every in-progress xid
(subtransactions included) around the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

XID32 = 1 << 32
FIRST_NORMAL_XID = 3


@dataclass(frozen=True)
class Snapshot:
    xmin: int
    xmax: int
    xip: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), tuple(int(x) for x in xip.split(",") if x))

    def __str__(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(str(x) for x in self.xip)}"

    def invisible_row_condition(self, reference_xmax: int | None = None) -> sql.Composable:
        """SQL true for row versions this snapshot could not see.

        ``reference_xmax`` is the 64-bit ``xmax`` of the snapshot the query runs in;
        by default the query reads it itself (once, as an InitPlan). Frozen and
        bootstrap xids (below 3) are always visible.
        """
        xid = sql.SQL("(xmin::text::bigint)")
        reference = (
            sql.SQL("(SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint)")
            if reference_xmax is None
            else sql.Literal(reference_xmax)
        )
        # the most recent 64-bit xid below the reference whose low 32 bits are the row's
        widened = sql.SQL("({ref} - 1 - ((({ref} - 1) % {wrap} - {xid} + {wrap}) % {wrap}))").format(
            ref=reference, xid=xid, wrap=sql.Literal(XID32)
        )
        return sql.SQL("({xid} >= {first} AND ({widened} >= {xmax} OR {widened} = ANY({xip}::bigint[])))").format(
            xid=xid,
            first=sql.Literal(FIRST_NORMAL_XID),
            widened=widened,
            xmax=sql.Literal(self.xmax),
            xip=sql.Literal(list(self.xip)),
        )

    def with_in_progress(self, xids32: list[int]) -> Snapshot:
        """This snapshot plus in-progress 32-bit xids (subtransactions, which xip omits).

        Each is widened to 64 bits in the epoch that puts it just below ``xmax``;
        xids at or past ``xmax`` are already invisible and are left out.
        """
        epoch_base = self.xmax - self.xmax % XID32
        extra = set()
        for xid in xids32:
            full = epoch_base + xid
            if full >= self.xmax:
                full -= XID32
            if self.xmin <= full < self.xmax:
                extra.add(full)
        return Snapshot(self.xmin, self.xmax, tuple(sorted(set(self.xip) | extra)))

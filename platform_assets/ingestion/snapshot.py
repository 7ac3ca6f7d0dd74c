"""Postgres snapshots and the "committed after this snapshot" row test.

An extract records ``pg_current_snapshot()`` (``xmin:xmax:xip1,xip2,...``, 64-bit
xids). A row version whose 32-bit ``xmin`` is in ``xip`` or at/after ``xmax`` was
committed after that snapshot, so that extract could not see it. The next run reads
such rows again, which is how rows from transactions that were still open are
picked up instead of being skipped by the watermark forever.

``xip`` lists top-level transactions only; rows written in a savepoint carry the
subtransaction's xid. The extract therefore adds every xid that holds a
``transactionid`` lock (subtransactions included) around the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

XID32 = 1 << 32
HALF_XID32 = 1 << 31
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

    def invisible_row_condition(self) -> sql.Composable:
        """SQL true for row versions this snapshot could not see.

        Compares 32-bit xids modulo 2^32, as Postgres itself does; frozen and
        bootstrap xids (below 3) are always visible.
        """
        xid = sql.SQL("(xmin::text::bigint)")
        return sql.SQL(
            "({xid} >= {first} AND ({xid} = ANY({xip}::bigint[]) "
            "OR (({xid} - {xmax} + {wrap}) % {wrap}) < {half}))"
        ).format(
            xid=xid,
            first=sql.Literal(FIRST_NORMAL_XID),
            xip=sql.Literal([x % XID32 for x in self.xip]),
            xmax=sql.Literal(self.xmax % XID32),
            wrap=sql.Literal(XID32),
            half=sql.Literal(HALF_XID32),
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

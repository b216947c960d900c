"""The sink's in-memory buffer: encoded lines in write order, held as entries of one line or of a
block of lines (the columnar path encodes a whole block at once)."""

from __future__ import annotations

from collections.abc import Iterator


class LineBuffer:
    def __init__(self) -> None:
        self._entries: list[str] = []
        self._counts: list[int] = []
        self.lines = 0

    def add_lines(self, lines: list[str]) -> None:
        self._entries.extend(lines)
        self._counts.extend([1] * len(lines))
        self.lines += len(lines)

    def add_block(self, text: str, n: int) -> None:
        """``text``: ``n`` lines joined by newlines, without a trailing newline."""
        self._entries.append(text)
        self._counts.append(n)
        self.lines += n

    def take(self, limit: int | None = None) -> list[tuple[str, int]]:
        """Entries from the front, in order: all of them, or until at least ``limit`` lines."""
        if limit is None:
            k = len(self._entries)
        else:
            k, total = 0, 0
            while k < len(self._counts) and total < limit:
                total += self._counts[k]
                k += 1
        out = list(zip(self._entries[:k], self._counts[:k]))
        del self._entries[:k], self._counts[:k]
        self.lines -= sum(n for _, n in out)
        return out

    def __len__(self) -> int:
        return self.lines


def batches(entries: list[tuple[str, int]], batch_size: int) -> Iterator[tuple[bytes, int]]:
    """Payloads (newline-terminated line protocol) of at most ``batch_size`` lines, in order."""
    chunk: list[str] = []
    n = 0
    for text, count in entries:
        if count > batch_size:
            yield from _split(text, batch_size, chunk, n)
            chunk, n = [], 0
            continue
        if n and n + count > batch_size:
            yield ("\n".join(chunk) + "\n").encode(), n
            chunk, n = [], 0
        chunk.append(text)
        n += count
    if chunk:
        yield ("\n".join(chunk) + "\n").encode(), n


def _split(text: str, batch_size: int, pending: list[str], pending_n: int) -> Iterator[tuple[bytes, int]]:
    if pending:
        yield ("\n".join(pending) + "\n").encode(), pending_n
    lines = text.split("\n")
    for i in range(0, len(lines), batch_size):
        part = lines[i : i + batch_size]
        yield ("\n".join(part) + "\n").encode(), len(part)

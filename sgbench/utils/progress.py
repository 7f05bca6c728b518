"""The one progress bar of sgbench (rich); `SGBENCH_NO_PROGRESS=1` turns every bar off (tests, CI logs).

    for batch in track(batches, total=n, description="features"): ...     # iterate with a bar
    with Bar("sample cfg", total=N, completed=done) as bar: bar.advance(b) # advance by hand
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
ENV = "SGBENCH_NO_PROGRESS"


def progress_enabled() -> bool:
    return os.environ.get(ENV, "").lower() not in ("1", "true", "yes")


class Bar:
    """A bar with a count, elapsed and remaining time, and an optional info text (loss, images/s)."""

    def __init__(self, description: str, *, total: int | None, completed: int = 0, enabled: bool = True, transient: bool = False):
        self.enabled = enabled and progress_enabled()
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), transient=transient)
        self.task = self.progress.add_task(description, total=total, completed=completed, info="")
        self.progress.start()

    def advance(self, n: int = 1) -> None:
        if self.enabled:
            self.progress.advance(self.task, n)

    def update(self, *, completed: int | None = None, info: str | None = None) -> None:
        if self.enabled:
            self.progress.update(self.task, completed=completed, info=info if info is not None else "")

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable[T], *, total: int | None, description: str) -> Iterator[T]:
    """Iterate `items` under a transient bar of `total` steps."""
    with Bar(description, total=total, transient=True) as bar:
        for item in items:
            yield item
            bar.advance()

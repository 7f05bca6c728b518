"""One rich progress bar for every streaming loop; `SGBENCH_NO_PROGRESS=1` turns bars off (tests, CI logs)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    return os.environ.get("SGBENCH_NO_PROGRESS", "") not in ("1", "true", "yes")


def track(items: Iterable[T], *, total: int | None, description: str) -> Iterator[T]:
    """Iterate `items`, showing a transient bar with `total` steps unless progress is disabled."""
    if not progress_enabled():
        yield from items
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)

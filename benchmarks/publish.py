"""Where benchmarks put their results: ``benchmarks/results/<stem>[_quick].md``, also printed."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def publish(stem: str, text: str, quick: bool = False) -> None:
    """Write ``text`` to the results file of ``stem`` (``_quick`` for a quick run) and print it."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}{'_quick' if quick else ''}.md").write_text(text)
    print(text, end="")

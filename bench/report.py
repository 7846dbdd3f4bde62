"""Figures for a run: percentiles, a printed table, and the closing `key=value` line."""

from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` fall (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows under a header, each column as wide as its widest cell; numbers to the right."""
    cells = [[_cell(value) for value in row] for row in [header, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    numeric = [
        all(isinstance(row[column], int | float) for row in rows) for column in range(len(header))
    ]
    lines = []
    for number, row in enumerate(cells):
        lines.append(
            "  ".join(
                cell.rjust(width) if numeric[column] else cell.ljust(width)
                for column, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def aligned(values: Sequence[object], widths: Sequence[int]) -> str:
    """One line of a table printed as it grows: each value right-aligned in its width."""
    return "  ".join(_cell(value).rjust(width) for value, width in zip(values, widths, strict=True))


def figures(**values: object) -> str:
    """The last line of a benchmark's output: `key=value` pairs, for comparing runs."""
    return " ".join(f"{key}={_cell(value)}" for key, value in values.items())


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)

"""Reading a `ts,temp_c[,stage]` CSV for `coldchain monitor evaluate`, refusing what is not
a reading with the file, line and column."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitor.evaluation import KELVIN, IntArray
from monitor.profiles import STAGES

# RFC 3339 times end in Z or a ±HH:MM offset; anything else is device-local and ambiguous.
_OFFSET = r"(?:[Zz]|[+-]\d{2}:?\d{2})$"
_CSV_COLUMNS = ("ts", "temp_c", "stage")


def _refuse(
    path: str, cells: pd.DataFrame, lines: IntArray, bad: Any, column: str, why: str
) -> None:
    """Raise for the first line where ``bad`` holds, naming line, column, value and reason."""
    bad = np.asarray(bad, dtype=np.bool_)
    if bad.any():
        i = int(np.argmax(bad))
        more = int(bad.sum()) - 1
        raise ValueError(
            f"{path}: line {lines[i]}, column {column}: {cells[column].iloc[i]!r} {why}"
            + (f" ({more} more such line(s))" if more else "")
        )


def read_readings_csv(path: str) -> pd.DataFrame:
    """Read a ``ts,temp_c[,stage]`` CSV into a frame for :func:`evaluate`.

    Rows may be unsorted or repeated; blank lines are skipped; a missing or empty ``temp_c``
    is a sensor error. Anything else that is not a reading — a time without a UTC offset, a
    value that is not a number, an unknown stage or column — is a ValueError naming the
    file, line and column.
    """
    try:
        # header=None: the parser then names the line of any row longer than the header.
        raw = pd.read_csv(
            path,
            header=None,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: empty file (header must be ts,temp_c)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc})") from exc
    header = [str(name).strip() for name in raw.iloc[0]]
    missing = {"ts", "temp_c"} - set(header)
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(sorted(missing))} (header must be ts,temp_c)"
        )
    unknown = [name for name in header if name not in _CSV_COLUMNS]
    if unknown:
        raise ValueError(
            f"{path}: unknown column(s) {', '.join(n or repr(n) for n in unknown)} "
            f"(allowed: {', '.join(_CSV_COLUMNS)})"
        )
    if len(set(header)) != len(header):
        raise ValueError(f"{path}: repeated column in header {','.join(header)}")
    rows = raw.iloc[1:].set_axis(header, axis="columns").reset_index(drop=True)
    lines = np.arange(2, len(rows) + 2, dtype=np.int64)  # the header is line 1
    cells = rows.fillna("").astype(str).apply(lambda column: column.str.strip())
    blank = (cells == "").all(axis=1).to_numpy()  # blank lines are skipped
    cells, lines = cells[~blank].reset_index(drop=True), lines[~blank]

    def check(bad: Any, column: str, why: str) -> None:
        _refuse(path, cells, lines, bad, column, why)

    text = cells["ts"]
    check(text == "", "ts", "is empty; every reading needs a time")
    check(~text.str.contains(_OFFSET), "ts", "has no UTC offset (write e.g. Z or +01:00)")
    ts = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    check(ts.isna(), "ts", "is not an RFC 3339 time")

    written = cells["temp_c"] != ""
    temp = pd.to_numeric(cells["temp_c"].where(written), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    check(written & ~np.isfinite(temp), "temp_c", "is not a number (empty: sensor error)")
    check(temp <= -KELVIN, "temp_c", "is below absolute zero")

    frame = pd.DataFrame({"ts": ts, "temp_c": temp})
    if "stage" in cells.columns:
        check(~cells["stage"].isin(STAGES), "stage", f"is not one of {', '.join(STAGES)}")
        frame["stage"] = cells["stage"]
    return frame

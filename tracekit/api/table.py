"""A typed table of columns, handed to pandas or Arrow only when asked.

Every table the Python API returns is a ``Table``: plain Python lists or numpy arrays underneath,
so ``import tracekit`` and the whole analysis run without pandas or pyarrow (extra
``tracekit[notebook]``). Column names are those of the JSON schemas; durations are in µs as
floats; a ``category`` column becomes a pandas categorical (an Arrow dictionary).
"""

from __future__ import annotations

import html
import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from tracekit.errors import UserError
from tracekit.sanitize import printable

Kind = Literal["float", "int", "str", "category", "bool"]

# pandas dtypes per kind: nullable integers and booleans, so an unknown value is <NA>, never 0.
_PANDAS = {"float": "float64", "int": "Int64", "str": "string", "category": "category", "bool": "boolean"}
_PREVIEW_ROWS = 12

# The achieved figures of a piece of work against the device's roof (``limits``), behind a prefix
# (``attention_``, ``gemm_``, ``step_``) in the limits tables, as in the JSON.
ACHIEVED_KINDS: dict[str, Kind] = {
    "bytes": "float",
    "flops": "float",
    "achieved_tb_s": "float",
    "achieved_tflops": "float",
    "intensity": "float",
    "peak_share": "float",
    "bound": "category",
    "above_peak": "bool",
    "above_measured": "bool",
}


def require(module: str) -> Any:
    """Import an optional dependency of the notebook extra, or say in one line how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"this needs {module}, which is not installed: pip install 'tracekit[notebook]'") from None


class Table:
    """Named, typed columns of equal length. ``to_pandas()`` / ``to_arrow()`` convert it;
    ``rows()`` gives plain dicts; in a notebook it shows its first rows."""

    def __init__(self, name: str, kinds: Mapping[str, Kind], columns: Mapping[str, Sequence[Any]]) -> None:
        if list(kinds) != list(columns):
            raise ValueError(f"table {name}: columns {list(columns)} do not match their kinds {list(kinds)}")
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"table {name}: columns of different lengths {sorted(lengths)}")
        self.name = name
        self.kinds = dict(kinds)
        self._columns = {k: list(v) for k, v in columns.items()}

    @classmethod
    def from_rows(cls, name: str, kinds: Mapping[str, Kind], rows: Sequence[Mapping[str, Any]]) -> Table:
        return cls(name, kinds, {k: [r.get(k) for r in rows] for k in kinds})

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()), []))

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def __getitem__(self, column: str) -> list[Any]:
        return self._columns[column]

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self._columns, r)) for r in zip(*self._columns.values())]

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with the documented dtypes (needs ``tracekit[notebook]``)."""
        pd = require("pandas")
        data = {k: pd.Series(v, dtype=_PANDAS[self.kinds[k]]) for k, v in self._columns.items()}
        return pd.DataFrame(data, columns=self.columns)

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` (needs ``tracekit[notebook]``); categories are dictionary-encoded."""
        pa = require("pyarrow")
        types = {
            "float": pa.float64(),
            "int": pa.int64(),
            "str": pa.string(),
            "category": pa.dictionary(pa.int32(), pa.string()),
            "bool": pa.bool_(),
        }
        arrays = {k: pa.array(v, type=types[self.kinds[k]]) for k, v in self._columns.items()}
        return pa.table(arrays)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(printable(_cell(v)))}</td>" for v in r.values()) + "</tr>"
            for r in self.rows()[:_PREVIEW_ROWS]
        )
        more = f"<p>{len(self) - _PREVIEW_ROWS} more rows</p>" if len(self) > _PREVIEW_ROWS else ""
        return f"<p><b>{html.escape(self.name)}</b>: {len(self)} rows</p><table><tr>{head}</tr>{body}</table>{more}"

    def __repr__(self) -> str:
        return f"<tracekit.Table {self.name}: {len(self)} rows x {len(self.kinds)} columns {self.columns}>"


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)

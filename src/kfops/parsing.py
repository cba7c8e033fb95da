"""How kfops reads one raw value: the rules training and serving share (issue 11: no skew).

Training reads a CSV with pandas (``read_csv`` defaults) and coerces its columns with
``kfops.coercion``; the model server reads JSON values one by one (``kfops.serving.validation``)
without pandas on the way. Both use the rules in this module, so a row of the training file
sent to the server as written there (every value a string, or numbers as pandas read them) is
read to the same values training read:

- missing: ``None``, NaN and the strings ``read_csv`` reads as NA by default (``NA_STRINGS``);
- numbers: decimal literals, also as text (``"3.5"``, ``" 1e3 "``); booleans are not numbers;
- booleans: ``True``/``False``, 0/1 and the words of ``BOOL_WORDS`` in any case;
- dates: the formats training saw in the column (``date_formats``, recorded in the contract as
  ``FeatureSpec.formats``) in that order, ISO 8601, then whatever pandas reads one value as
  (``format="mixed"``: ``09 Oct 2024``, a year ``1980``), the same order the column reading of
  ``parse_datetime_column`` uses.

Scalar readers return the value read (``None`` when missing) or raise ``Unreadable`` with a
short message; column readers turn unreadable values into missing ones (data validation counts
them at training).
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from pandas.api import types as ptypes

from kfops.contract_model import BOOL_WORDS

# pandas.read_csv's default NA strings (its documented ``na_values`` default;
# ``pandas._libs.parsers.STR_NA_VALUES``, a unit test keeps them equal).
NA_STRINGS: frozenset[str] = frozenset(
    {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }
)  # fmt: skip
# A decimal literal as read_csv reads one (surrounding blanks allowed, no thousands separators).
_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
# Beyond this many bits an integer is not a plausible value, and Python refuses to turn one of
# more than 4,300 digits into text (sys.set_int_max_str_digits).
MAX_INT_BITS = 64
_EXACT_INT = 2**53  # ints beyond float precision become floats, as pandas' columns would
# ISO 8601 as ``datetime.fromisoformat`` reads it the way pandas does (no week dates, no
# ordinal dates, no compact forms).
ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}:\d{2})?"
)
# pandas' nanosecond timestamps cover 1677-09-21 .. 2262-04-11: whole years inside that range.
DATE_YEARS = range(1678, 2262)
MAX_DATE_FORMATS = 5  # distinct formats recorded per datetime column, most frequent first
_FORMAT_SAMPLE = 500  # distinct values a format guess looks at


class Unreadable(ValueError):
    """A value the rules cannot read as its kind (the message names the value)."""


def describe(value: Any) -> str:
    """A short repr of a client value (never the text of a huge integer)."""
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def is_missing(value: Any) -> bool:
    """None, NaN or one of read_csv's NA strings (exactly as written, as read_csv compares)."""
    if value is None:
        return True
    kind = type(value)
    if kind is str:
        return value in NA_STRINGS
    if kind is float:
        return value != value
    return False


def read_number(value: Any) -> int | float | None:
    """A JSON number or decimal text -> int (exact ones) or float; missing -> None."""
    if value is None:
        return None
    kind = type(value)
    if kind is float:
        if value != value:
            return None
        if math.isinf(value):
            raise Unreadable("infinite values are not allowed")
        return value
    if kind is int:
        if -_EXACT_INT < value < _EXACT_INT:
            return value
        try:
            return float(value)
        except OverflowError:
            raise Unreadable(
                f"{describe(value)} is too large to be represented as a number"
            ) from None
    if kind is str:
        if value in NA_STRINGS:
            return None
        if len(value) <= 400 and _NUMBER.fullmatch(value):
            if _INTEGER.fullmatch(value):
                return read_number(int(value))
            number = float(value)
            if math.isinf(number):
                raise Unreadable(f"{describe(value)} is too large to be represented as a number")
            return number
        raise Unreadable(f"{describe(value)} is not a number")
    raise Unreadable(f"expected a number, got {type_name(value)} {describe(value)}")


def read_bool(value: Any) -> bool | None:
    """True/False, 0/1 (numbers or text) or a word of ``BOOL_WORDS``; missing -> None."""
    if value is None:
        return None
    kind = type(value)
    if kind is bool:
        return bool(value)
    if kind is int or kind is float:
        if value != value:
            return None
        if value in (0, 1):
            return bool(value)
        raise Unreadable(f"{describe(value)} is not a boolean (0 or 1)")
    if kind is str:
        if value in NA_STRINGS:
            return None
        word = BOOL_WORDS.get(value.strip().lower())
        if word is not None:
            return word == 1.0
        raise Unreadable(f"{describe(value)} is not a boolean (true/false, yes/no, 1/0)")
    raise Unreadable(f"expected true/false, got {type_name(value)} {describe(value)}")


_UNNAMED = re.compile(r"Unnamed: \d+")


def unnamed_header(columns: Iterable[str]) -> str | None:
    """The one column read_csv named ``Unnamed: <i>`` (an empty header, e.g. R's row names),
    which a client reading the file with another CSV reader sends under the key ``""``."""
    found = [c for c in columns if _UNNAMED.fullmatch(c)]
    return found[0] if len(found) == 1 else None


def category_key(value: Any) -> str:
    """A category by its string form: 1.0 and 1 are one category (JSON may send either for
    what training read as 1), "8" and 8 too (a CSV cell is text)."""
    if type(value) is str:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- dates -------------------------------------------------------------------------------------


def _guess_format(text: str) -> str | None:
    from pandas.tseries.api import guess_datetime_format

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Parsing dates in %d/%m/%Y format when dayfirst..."
        return guess_datetime_format(text)


def date_formats(values: Iterable[Any]) -> tuple[str, ...]:
    """The strptime formats a column of date strings is written in, as training reads it.

    The first is the format pandas infers for the whole column (from its first value), so
    ``parse_datetime_column(values, date_formats(values))`` reads every value as
    ``pd.to_datetime`` would; the others are the formats of the remaining values, most frequent
    first. ISO 8601 columns and columns of non-strings record nothing (ISO is always read).
    """
    texts = [v for v in values if type(v) is str and v not in NA_STRINGS]
    if not texts:
        return ()
    first = _guess_format(texts[0].strip())
    counts: Counter[str] = Counter()
    for text in list(dict.fromkeys(texts))[:_FORMAT_SAMPLE]:
        found = _guess_format(text.strip())
        if found is not None:
            counts[found] += 1
    ordered = ([first] if first else []) + [f for f, _ in counts.most_common() if f != first]
    return tuple(ordered[:MAX_DATE_FORMATS])


def _in_range(moment: datetime, value: Any) -> datetime:
    if moment.year not in DATE_YEARS:
        raise Unreadable(
            f"{describe(value)} is outside the dates a model can read "
            f"({DATE_YEARS.start}..{DATE_YEARS.stop - 1})"
        )
    return moment


def read_datetime(value: Any, formats: Sequence[str] = ()) -> datetime | None:
    """A date/time string (in a recorded format, ISO 8601, or anything pandas reads as one
    value); integers are read as text in the recorded formats only (a column of years).
    Missing -> None. Naive results are taken as UTC by the coercion, as in training."""
    kind = type(value)
    if value is None or (kind is float and value != value):
        return None
    if kind is int and formats:
        if value.bit_length() > MAX_INT_BITS:
            raise Unreadable(f"{describe(value)} is not a date")
        value, kind = str(value), str
    if kind is not str:
        raise Unreadable(f"expected a date string, got {type_name(value)} {describe(value)}")
    if value in NA_STRINGS:
        return None
    text = value.strip()
    if len(text) > 100:
        raise Unreadable(f"{describe(value)} is not a date")
    for fmt in formats:
        try:
            return _in_range(datetime.strptime(text, fmt), value)
        except ValueError:
            continue
    if ISO_DATETIME.fullmatch(text):
        try:
            return _in_range(datetime.fromisoformat(text), value)
        except ValueError:
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            stamp = pd.to_datetime(text, format="mixed")
        except Exception:  # dateutil/pandas raise several types; a client value is never a 5xx
            raise Unreadable(f"{describe(value)} is not a date") from None
    if stamp is pd.NaT or not isinstance(stamp, pd.Timestamp):
        raise Unreadable(f"{describe(value)} is not a date")
    return _in_range(stamp.to_pydatetime(warn=False), value)


def parse_datetime_column(values: pd.Series, formats: Sequence[str] = ()) -> pd.Series:
    """A column of dates -> tz-aware UTC timestamps (naive values taken as UTC); unreadable
    values become NaT.

    Recorded ``formats`` first (in order, each for the values still unread), then pandas'
    own inference for the column (one format guessed from the first value), then a per-value
    pass (``format="mixed"``) so mixed styles still parse: the order ``read_datetime`` uses.
    """
    if ptypes.is_datetime64_any_dtype(values.dtype):
        parsed = values
    else:
        text = values.where(values.isna(), values.astype(str))
        text = text.where(~text.isin(NA_STRINGS))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "could not infer format" is expected
            parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
            for fmt in (*formats, None):
                todo = parsed.isna() & text.notna()
                if not todo.any():
                    break
                parsed[todo] = pd.to_datetime(text[todo], errors="coerce", utc=True, format=fmt)
            todo = parsed.isna() & text.notna()
            if todo.any():
                parsed[todo] = pd.to_datetime(text[todo], errors="coerce", utc=True, format="mixed")
    if getattr(parsed.dt, "tz", None) is None:
        return parsed.dt.tz_localize("UTC")
    return parsed.dt.tz_convert("UTC")


def iso_text(moment: datetime) -> str:
    """The canonical form a read date travels in (ISO 8601; what the coercion's fast path
    reads without pandas)."""
    return moment.isoformat()

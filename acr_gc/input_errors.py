"""A pydantic ``ValidationError`` as the one line an operator reads for a bad config file
or a bad emulator dataset: the first problem, where it is, and how many more there are."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ValidationError


def first_problem(exc: ValidationError, suggest_from: type[BaseModel] | None = None) -> str:
    """``<dotted field>: <reason>`` (+ how many more); an unknown key gets the closest known
    one of ``suggest_from``'s fields at that place, when there is one."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        msg = "unknown key" + (_did_you_mean(first["loc"], suggest_from) if suggest_from else "")
    else:
        msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return f"{where}: {msg}{more}"


def _did_you_mean(loc: tuple, model: type[BaseModel]) -> str:
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return ""
        model = field.annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""

"""msgspec's error wording, as ``trace/read/errors.py`` reads it, pinned against the installed
msgspec: a release that words an error differently fails here, not in what tracekit tells a user.
The version bound in pyproject.toml must hold the installed msgspec (raise it after this file passes
with a newer one)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import msgspec
import pytest
import tomllib
from packaging.requirements import Requirement

from tracekit.trace.model import TraceDoc
from tracekit.trace.read import errors
from tracekit.trace.read.lenient import lenient_doc

ROOT = Path(__file__).resolve().parents[1]
_doc = msgspec.json.Decoder(TraceDoc)


def _decode_error(text: bytes, decoder: msgspec.json.Decoder[object] = _doc) -> msgspec.DecodeError:
    with pytest.raises(msgspec.DecodeError) as err:
        decoder.decode(text)
    return err.value


def test_the_installed_msgspec_is_inside_the_bound_this_test_guards() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    req = next(Requirement(d) for d in deps if Requirement(d).name == "msgspec")
    assert any(s.operator == "<" for s in req.specifier), "msgspec needs an upper bound"
    assert req.specifier.contains(version("msgspec")), (version("msgspec"), str(req.specifier))


def test_text_that_ends_too_soon() -> None:
    exc = _decode_error(b'{"traceEvents": [{"ph": "X"')
    assert errors.is_truncated(exc) and errors.offset(exc) is None
    got = errors.damage(exc, 100)
    assert got.truncated and got.at is None and got.words == errors.TRUNCATED


def test_invalid_json_names_its_byte_and_moves_with_the_piece() -> None:
    exc = _decode_error(b'{"traceEvents": [NaN]}')
    assert not errors.is_truncated(exc) and not errors.ends_early(exc)
    assert errors.offset(exc) == 17
    got = errors.damage(exc, 1000)
    assert got.at == 1017 and "(byte 1017)" in got.words and "invalid character" in got.words


def test_a_value_then_more_text() -> None:
    # The byte after the first character that follows the value ("x" is byte 20): the chunked
    # reader finds where the event array closed from it.
    exc = _decode_error(b'{"traceEvents": []} x')
    assert errors.ends_early(exc) and errors.offset(exc) == 21


def test_invalid_utf8_in_a_field_read() -> None:
    exc = _decode_error(b'{"traceEvents": [{"ph": "X", "name": "\xff"}]}')
    assert errors.bad_utf8(exc) and errors.offset(exc) is None


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        (b'{"foo": 1}', "no-events"),
        (b'{"traceEvents": 5}', "events-not-a-list"),
        (b'{"traceEvents": [{"ph": "Q"}]}', None),  # an odd event: decoded leniently, not refused
        (b'{"traceEvents": [5]}', None),
    ],
)
def test_the_shape_of_a_document(text: bytes, shape: str | None) -> None:
    with pytest.raises(msgspec.ValidationError) as err:
        _doc.decode(text)
    assert errors.layout(err.value) == shape


def test_a_document_that_is_not_an_object() -> None:
    with pytest.raises(msgspec.ValidationError) as err:
        lenient_doc.decode(b"[1, 2]")
    assert errors.not_an_object(err.value)
    with pytest.raises(msgspec.ValidationError) as err:
        lenient_doc.decode(b'{"traceEvents": 5}')
    assert not errors.not_an_object(err.value)

#   Copyright 2026 - present The PyMC Developers
#
#   Licensed under the Apache License, Version 2.0 (the "License");
#   you may not use this file except in compliance with the License.
#   You may obtain a copy of the License at
#
#       http://www.apache.org/licenses/LICENSE-2.0
#
#   Unless required by applicable law or agreed to in writing, software
#   distributed under the License is distributed on an "AS IS" BASIS,
#   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
#   See the License for the specific language governing permissions and
#   limitations under the License.
"""What a failed read means: whether it is worth retrying, and an error that names the
file, redacted and unchained from the original (which may hold credentials)."""

from __future__ import annotations

import asyncio
import zlib

from collections.abc import Mapping

from pymc.variational.streaming.redaction import redact

__all__ = [
    "chain_status",
    "http_status",
    "ignores_range",
    "is_own_error",
    "is_transient",
    "read_error",
    "retry_after",
]


def http_status(error: BaseException) -> int | None:
    """The HTTP status an error carries: aiohttp's ``status``, or a response's ``status_code``
    (requests, httpx, huggingface_hub)."""
    for holder in (error, getattr(error, "response", None)):
        for name in ("status", "status_code"):
            status = getattr(holder, name, None)
            if isinstance(status, int) and not isinstance(status, bool):
                return status
    return None


# Raised by aiohttp (fsspec's HTTP filesystem) for dropped or truncated connections; named
# rather than imported, since aiohttp is optional.
_TRANSIENT_NAMES = {
    "ClientConnectionError",
    "ClientConnectorError",
    "ClientOSError",
    "ClientPayloadError",
    "ContentLengthError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "TransferEncodingError",
}


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def chain_status(error: BaseException) -> tuple[int | None, BaseException]:
    """The first HTTP status in the chain of causes of ``error``, and the error carrying
    it (``error`` itself when there is none).

    An error whose type says "not found" reads as a 404, whatever the status: the Hub
    answers 401 for a private repository asked for without a token, which
    huggingface_hub reads as RepositoryNotFoundError.
    """
    for e in _chain(error):
        status = http_status(e)
        if status is not None:
            return (404 if type(e).__name__.endswith("NotFoundError") else status), e
    return None, error


def is_transient(error: BaseException) -> bool:
    """Whether an error is worth retrying: it says "try again", not "this is wrong".

    An error that says so itself (a ``transient`` attribute) decides. Otherwise an HTTP
    status anywhere in the chain of causes decides: server errors (5xx, 408, 429) are
    transient, any other status is not. fsspec's HTTP filesystem reports any failure to
    open a file as a missing file, with the server's answer as its cause, so a 503 under
    a FileNotFoundError is a moment's failure. Without a status, missing files and
    refused permissions are permanent; dropped or truncated connections and timeouts
    are transient.
    """
    chain = list(_chain(error))
    for e in chain:
        known = getattr(e, "transient", None)
        if isinstance(known, bool):  # decided when the error was translated
            return known
    status, _ = chain_status(error)
    if status is not None:
        return status >= 500 or status in (408, 429)
    for e in chain:
        if isinstance(
            e, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError
        ):
            return False
        if isinstance(e, ConnectionError | TimeoutError | asyncio.TimeoutError):
            return True
        if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(e).__mro__):
            return True
    return False


def retry_after(error: BaseException) -> float | None:
    """Seconds a server asked to wait (``Retry-After``, in seconds), or None."""
    for e in _chain(error):
        known = getattr(e, "retry_after", None)
        if isinstance(known, int | float) and not isinstance(known, bool):
            return float(known)
        for holder in (e, getattr(e, "response", None)):
            headers = getattr(holder, "headers", None)
            value = headers.get("Retry-After") if isinstance(headers, Mapping) else None
            if value is None:  # the header may be on a cause: fsspec wraps the response's error
                continue
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):  # an HTTP date: not worth parsing here
                return None
    return None


def read_error(err: BaseException, where: str) -> Exception:
    """A read failure as the error a user can act on, naming what failed.

    The message is redacted, and the error keeps only what retrying needs (``status`` and
    whether it is ``transient``): raise it outside the ``except`` block, so that the
    original, which may hold credentials (huggingface_hub keeps the request's headers on
    its errors), is not chained to it.
    """
    # fsspec's HTTP filesystem raises FileNotFoundError for any failed HEAD and GET, the
    # server's answer being its cause: the status says what really happened.
    status, answer = chain_status(err)
    if (isinstance(err, FileNotFoundError) and status in (None, 404)) or (
        isinstance(err, PermissionError) and status in (None, 401, 403)
    ):
        error = type(err)(redact(f"{where}: {err}"))
    elif status in (401, 403):
        error = PermissionError(
            redact(
                f"{where}: access refused (HTTP {status}); check the credentials in storage_options"
            )
        )
    elif status == 404:
        error = FileNotFoundError(redact(f"{where}: not found (HTTP 404)"))
    elif isinstance(err, EOFError | zlib.error):
        error = OSError(
            redact(
                f"{where} is truncated or its compression is corrupt ({type(err).__name__}: {err})"
            )
        )
    elif ignores_range(err):
        # fsspec's advice (block_size=0, a streaming file) does not fit a reader that seeks.
        error = OSError(
            redact(
                f"reading {where} failed: the HTTP server ignores Range requests (it sends "
                "the whole file), and reading a file in parts needs them; use a server that "
                "supports HTTP Range requests, or download the file first"
            )
        )
    else:
        # A "missing" file whose cause is a server error is described by that error.
        shown = answer if isinstance(err, FileNotFoundError | PermissionError) else err
        error = OSError(redact(f"reading {where} failed: {type(shown).__name__}: {shown}"))
    error.status = status
    error.transient = is_transient(err)
    error.retry_after = retry_after(err)
    return error


def ignores_range(error: BaseException) -> bool:
    """Whether ``error`` is fsspec's HTTP file refusing a read at an offset, because the
    server answered a Range request with the whole file."""
    return isinstance(error, ValueError) and "support range requests" in str(error)


_PACKAGE = __name__.rpartition(".")[0]


def is_own_error(error: BaseException) -> bool:
    """Whether ``error`` was raised by this package (its innermost frame is here), and so
    names its file already, rather than by a library it calls (fsspec, Arrow, numpy)."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "")
    return module == _PACKAGE or module.startswith(f"{_PACKAGE}.")

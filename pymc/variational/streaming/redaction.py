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
"""Keeping credentials out of everything shown or stored.

Errors, warnings, log records, shard names and fingerprints go through :func:`redact`:
URL passwords and query strings (signed URLs), the credential values of
``storage_options`` and of the usual environment variables are replaced by ``***``.
"""

from __future__ import annotations

import logging
import os
import re

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = ["redact", "register_secrets", "register_url_secrets"]

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
# storage_options keys whose values are credentials, e.g. token, password, secret, key.
_SECRET_KEY = re.compile(
    r"token|secret|password|passwd|key|credential|auth|session|signature", re.I
)
# Environment variables that fsspec back ends read credentials from.
_SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_MIN_SECRET_CHARS = 6  # shorter values would redact ordinary words
_secrets: set[str] = set()
# Loggers of the I/O libraries under the sources, which log URLs as given (fsspec's HTTP
# filesystem at DEBUG level): their records are redacted too.
_IO_LOGGERS = (
    "fsspec",
    "fsspec.http",
    "fsspec.spec",
    "fsspec.caching",
    "huggingface_hub",
    "aiohttp.client",
)


class _RedactingFilter(logging.Filter):
    """Rewrites a log record's message with :func:`redact` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_filter = _RedactingFilter()


def register_secrets(storage_options: Mapping | None) -> None:
    """Remember the credential values of ``storage_options`` (and of the usual environment
    variables) so that :func:`redact` blanks them wherever they appear."""
    values = [os.environ.get(name) for name in _SECRET_ENV]

    def collect(options) -> None:
        for key, value in (options or {}).items():
            if isinstance(value, Mapping):
                collect(value)
            elif isinstance(value, str) and _SECRET_KEY.search(str(key)):
                values.append(value)

    collect(storage_options)
    _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_CHARS)
    for name in _IO_LOGGERS:
        if _filter not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_filter)


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" not in netloc and not parts.query:
        return url  # nothing to hide; keep the URL exactly as written
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}:***@{host}" if ":" in user else f"***@{host}"
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """``text`` with URL passwords, query strings and known credentials replaced by ``***``."""
    text = _URL.sub(lambda m: _redact_url(m.group(0)), str(text))
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def register_url_secrets(path: str) -> None:
    """A URL's password and query values are credentials (signed URLs): never show them."""
    try:
        parts = urlsplit(path)
    except ValueError:
        return
    values = [parts.password] + [v for _, v in parse_qsl(parts.query)]
    _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_CHARS)

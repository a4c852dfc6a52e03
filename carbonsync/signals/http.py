"""HTTP for the live providers: timeouts, retries with backoff, redirects that keep credentials home, and
replies checked into named errors (:mod:`carbonsync.signals.base`).

:class:`Http` wraps one ``httpx.Client`` per provider. ``get_json`` retries 429 (waiting ``Retry-After``
when the server says, capped), 5xx, timeouts and dropped connections with exponential backoff and jitter
(tenacity), then raises :class:`SignalRateLimited` or :class:`SignalUnavailable`; 401 raises
:class:`SignalAuthError`, 403 and 404 :class:`SignalPlanError`, a body that is not the JSON object asked for
:class:`SignalFormatError`. A redirect is followed only to the same origin (scheme, host, port): the
credentials a request carries are never sent to another host. Every message passes through
:func:`~carbonsync.signals.base.redact` with the provider's secrets. An optional :class:`HttpCache` (hishel)
answers repeated GETs for a bounded time without ever writing a credential.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from hishel import Entry, Headers, Request, Response, SqliteStorage
from hishel.httpx import CacheTransport
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from carbonsync.core.logs import get_logger
from carbonsync.core.settings import http_cache_settings
from carbonsync.signals.base import (
    SignalAuthError,
    SignalError,
    SignalFormatError,
    SignalPlanError,
    SignalRateLimited,
    SignalUnavailable,
    redact,
)

__all__ = ["Http", "HttpCache", "RetryPolicy"]

log = get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in all, backoff from ``base_s`` up to ``max_s`` (jittered)."""

    attempts: int = 4
    base_s: float = 0.5
    max_s: float = 30.0
    timeout_s: float = 20.0
    max_redirects: int = 3


@dataclass(frozen=True)
class HttpCache:
    """Cache successful GETs (hishel, SQLite in ``directory``) for ``max_age_s`` seconds, the staleness limit:
    an older entry is never served. Requests carrying credentials as ``auth`` (a login) are never cached, and no
    credential is written: stored requests keep their URL with secrets masked and no auth, cookie or key header."""

    directory: Path
    max_age_s: float = 300.0

    @classmethod
    def from_settings(cls) -> HttpCache | None:
        """The cache ``CARBONSYNC_HTTP_CACHE`` (a directory) names, with ``CARBONSYNC_HTTP_CACHE_MAX_AGE`` seconds;
        None when unset."""
        directory, max_age = http_cache_settings()
        return cls(directory, max_age) if directory is not None else None


_PRIVATE_HEADERS = ("authorization", "auth-token", "cookie", "set-cookie", "x-api-key", "proxy-authorization")


class _KeyFreeStorage(SqliteStorage):
    """hishel's SQLite storage, writing requests without credentials (see :class:`HttpCache`)."""

    def __init__(self, secrets: Iterable[str], **options: Any) -> None:
        super().__init__(**options)
        self.secrets = list(secrets)

    def _clean(self, headers: Headers) -> Headers:
        kept = {}
        for name in headers:
            value = headers[name]
            if name.lower() not in _PRIVATE_HEADERS and not any(s in value for s in self.secrets):
                kept[name] = value
        return Headers(kept)

    def create_entry(self, request: Request, response: Response, key: str, **options: Any) -> Entry:
        clean = Request(method=request.method, url=redact(request.url, self.secrets), headers=self._clean(request.headers))
        response = Response(status_code=response.status_code, headers=self._clean(response.headers),
                            stream=response.stream)
        return super().create_entry(clean, response, key, **options)


class _SometimesCached(httpx.BaseTransport):
    """Requests flagged ``extensions["carbonsync_cache"]`` go through the cache, the others straight through."""

    def __init__(self, inner: httpx.BaseTransport, cached: httpx.BaseTransport) -> None:
        self.inner, self.cached = inner, cached

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return (self.cached if request.extensions.get("carbonsync_cache") else self.inner).handle_request(request)

    def close(self) -> None:
        self.cached.close()


class _Retryable(Exception):
    def __init__(self, error: SignalError, wait_s: float | None = None) -> None:
        super().__init__(str(error))
        self.error, self.wait_s = error, wait_s


class Http:
    """GET JSON (or bytes) from one provider's ``base_url``; ``secrets`` are masked in every message."""

    def __init__(self, provider: str, base_url: str, *, secrets: Iterable[str] = (),
                 policy: RetryPolicy | None = None, transport: httpx.BaseTransport | None = None,
                 cache: HttpCache | None | str = "settings") -> None:
        self.provider, self.policy = provider, policy or RetryPolicy()
        self.secrets = [s for s in secrets if s]
        self.cache = HttpCache.from_settings() if cache == "settings" else cache
        if isinstance(self.cache, HttpCache):
            self.cache.directory.mkdir(parents=True, exist_ok=True)
            storage = _KeyFreeStorage(self.secrets, database_path=self.cache.directory / f"{provider}.sqlite",
                                      default_ttl=float(self.cache.max_age_s))
            inner = transport or httpx.HTTPTransport()
            transport = _SometimesCached(inner, CacheTransport(next_transport=inner, storage=storage))
        self.client = httpx.Client(base_url=base_url, timeout=self.policy.timeout_s, follow_redirects=False,
                                   transport=transport)

    def __repr__(self) -> str:
        return f"Http({self.provider!r}, {str(self.client.base_url)!r})"

    def close(self) -> None:
        self.client.close()

    def _error(self, cls: type[SignalError], message: str, endpoint: str, zone: str, **extra: Any) -> SignalError:
        return cls(message, provider=self.provider, endpoint=endpoint, zone=zone, secrets=self.secrets, **extra)

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome.exception() if state.outcome else None
        backoff = wait_random_exponential(multiplier=self.policy.base_s, max=self.policy.max_s)(state)
        if isinstance(outcome, _Retryable) and outcome.wait_s is not None:
            return min(max(outcome.wait_s, 0.0), self.policy.max_s)
        return backoff

    def get(self, endpoint: str, *, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
            auth: httpx.Auth | tuple[str, str] | None = None, zone: str = "", cache: bool = True) -> httpx.Response:
        """One GET with retries; a 2xx response, else a named error. With an :class:`HttpCache`, a fresh cached
        reply answers it (never for ``auth`` requests or ``cache=False``)."""
        retrying = Retrying(stop=stop_after_attempt(self.policy.attempts), wait=self._wait,
                            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)), reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(endpoint, params, headers, auth, zone, cache and auth is None)
        except _Retryable as final:
            raise final.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, endpoint: str, params, headers, auth, zone: str, cached: bool) -> httpx.Response:
        url = httpx.URL(endpoint) if endpoint.startswith("http") else self.client.base_url.join(endpoint)
        origin = self.client.base_url
        for _ in range(self.policy.max_redirects + 1):
            try:
                response = self.client.get(url, params=params, headers=headers, auth=auth,
                                           extensions={"carbonsync_cache": cached})
            except httpx.TimeoutException as err:
                raise _Retryable(self._error(SignalUnavailable, f"timed out ({type(err).__name__})", endpoint, zone)) \
                    from None
            except httpx.TransportError as err:
                raise _Retryable(self._error(SignalUnavailable, f"connection failed: {type(err).__name__}: {err}",
                                             endpoint, zone)) from None
            if not response.is_redirect:
                break
            target = url.join(response.headers.get("location", ""))
            if (target.scheme, target.host, target.port) != (origin.scheme, origin.host, origin.port):
                raise self._error(SignalFormatError, f"redirected to another host ({target.host}); not followed, so "
                                  "the credentials stay with the provider", endpoint, zone)
            url, params = target, None
        else:
            raise self._error(SignalFormatError, f"more than {self.policy.max_redirects} redirects", endpoint, zone)
        status = response.status_code
        if status < 300:
            return response
        detail = f"HTTP {status} {response.reason_phrase}: {response.text[:200]}"
        if status == 429:
            after = response.headers.get("retry-after")
            wait = float(after) if after and after.strip().replace(".", "", 1).isdigit() else None
            raise _Retryable(self._error(SignalRateLimited, detail, endpoint, zone, retry_after=wait), wait)
        if status >= 500:
            raise _Retryable(self._error(SignalUnavailable, detail, endpoint, zone))
        if status == 401:
            raise self._error(SignalAuthError, detail, endpoint, zone)
        if status in (402, 403, 404):
            raise self._error(SignalPlanError, detail, endpoint, zone)
        raise self._error(SignalFormatError, detail, endpoint, zone)

    def get_json(self, endpoint: str, *, zone: str = "", **kwargs: Any) -> dict:
        """:meth:`get` and the body as a JSON object; anything else (HTML, XML, truncated JSON) is named."""
        response = self.get(endpoint, zone=zone, **kwargs)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            kind = response.headers.get("content-type", "unknown content type")
            raise self._error(SignalFormatError, f"the reply is not JSON ({kind}; {err.__class__.__name__}: {err}): "
                              f"{response.text[:120]!r}", endpoint, zone) from None
        if not isinstance(body, dict):
            raise self._error(SignalFormatError, f"the reply is a JSON {type(body).__name__}, not an object",
                              endpoint, zone)
        log.debug("%s", redact(f"{self.provider} GET {endpoint} -> {response.status_code}", self.secrets))
        return body

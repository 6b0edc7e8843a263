"""Who is calling: bearer tokens between the services, verified against an allowlist of callers.

A caller sends ``Authorization: Bearer <token>``, where the token is a JWT (RS256) naming the
caller's service account in its ``email`` claim (with ``email_verified``) for the audience of the
service it calls. The service verifies the token and looks the account up in its allowlist:

- ``service_auth = "google"`` (GKE profile): Google-signed ID tokens of the caller's workload
  identity. A server verifies them with ``google.oauth2.id_token.verify_oauth2_token`` (signature
  against Google's published certificates, issuer ``accounts.google.com``, audience, expiry); a
  client gets its own with ``google.oauth2.id_token.fetch_id_token_credentials`` (the metadata
  server under Workload Identity, or Application Default Credentials).
- ``service_auth = "local"`` (local profile): tokens of the same shape signed by a local RSA key,
  ``<state_dir>/secrets/churnops-service-signing-key`` (PEM, mode 0600, created on first use), with
  issuer ``churnops-local``; servers read only its public half (``...-signing-key.pub``) and verify
  with ``google.auth.jwt.decode``. Whoever can read the private file can mint any identity: it is a
  stand-in for Google's signer on one machine, never used on GKE.

Through the Kubernetes API server's service proxy (how a build outside the cluster smoke-tests a
revision) the ``Authorization`` header carries the caller's credential for the API server, which
consumes it; the service's token then travels as ``X-Churnops-Authorization: Bearer <token>``
(:data:`PROXIED_AUTHORIZATION`), which servers read when ``Authorization`` is absent and verify the same way.

A missing, malformed, expired or wrongly signed token, or one for another audience, is
:class:`Unauthenticated` (HTTP 401, gRPC UNAUTHENTICATED); a valid token of an account not in the
allowlist is :class:`PermissionDenied` (HTTP 403, gRPC PERMISSION_DENIED). Messages never repeat
the token. Verified tokens are remembered until they expire, so a caller reusing its token costs
one dictionary lookup per request.
"""

from __future__ import annotations

import asyncio
import calendar
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google.auth.crypt
import google.auth.exceptions
import google.auth.jwt
import google.auth.transport.requests
import google.oauth2.id_token
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from churnops.errors import ChurnopsError
from churnops.platform.settings import Settings

LOCAL_ISSUER = "churnops-local"
AUTHORIZATION = "Authorization"
PROXIED_AUTHORIZATION = "X-Churnops-Authorization"  # forwarded by the API server's service proxy
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
SIGNING_KEY = "churnops-service-signing-key"
LOCAL_KEY_ID = "churnops-local-1"
TOKEN_LIFETIME_S = 3600
REFRESH_MARGIN_S = 300  # a client replaces its token this long before it expires
CLOCK_SKEW_S = 10
VERIFIED_CACHE = 4096  # tokens remembered after verification


class Unauthenticated(ChurnopsError):
    """No usable token: missing, malformed, expired, wrongly signed or for another audience (401)."""

    status = 401


class PermissionDenied(ChurnopsError):
    """A valid token of an account the service does not serve (403)."""

    status = 403


def account_email(settings: Settings, account: str) -> str:
    """A service account's e-mail: ``account`` if it has one, else ``<account>@<project>.iam.gserviceaccount.com``."""
    return account if "@" in account else f"{account}@{settings.gcp_project}.iam.gserviceaccount.com"


def allowlist(settings: Settings, accounts: Iterable[str]) -> frozenset[str]:
    """The e-mails of ``accounts`` (names or e-mails)."""
    return frozenset(account_email(settings, account) for account in accounts)


def _private_file(settings: Settings) -> Path:
    return settings.local_secrets_dir / SIGNING_KEY


def _public_file(settings: Settings) -> Path:
    return settings.local_secrets_dir / f"{SIGNING_KEY}.pub"


def local_signing_key(settings: Settings) -> bytes:
    """The local signer's private key (PEM); created with its public half on first use (0600 in a 0700 folder)."""
    private, public = _private_file(settings), _public_file(settings)
    if not private.exists():
        private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return private.read_bytes()


def local_public_key(settings: Settings) -> bytes:
    """The public half of the local signer (PEM), which local servers trust."""
    if not _public_file(settings).exists():
        local_signing_key(settings)
    return _public_file(settings).read_bytes()


def mint_local_token(settings: Settings, account: str, audience: str, lifetime_s: int = TOKEN_LIFETIME_S) -> str:
    """A token for ``account`` (name or e-mail) and ``audience``, signed by the local key (local profile only)."""
    if settings.service_auth != "local":
        raise ChurnopsError("local tokens are for the local profile; on GKE callers present Google ID tokens")
    signer = google.auth.crypt.RSASigner.from_string(local_signing_key(settings), LOCAL_KEY_ID)
    now = int(time.time())
    email = account_email(settings, account)
    payload = {
        "iss": LOCAL_ISSUER,
        "aud": audience,
        "sub": email,
        "email": email,
        "email_verified": True,
        "iat": now,
        "exp": now + lifetime_s,
    }
    token: bytes = google.auth.jwt.encode(signer, payload)  # unannotated in google-auth; returns the JWT's bytes
    return token.decode("ascii")


def verifier(settings: Settings, audience: str) -> Callable[[str], Mapping[str, Any]]:
    """The function checking a token's signature, issuer, audience and expiry for ``settings.service_auth``;
    it returns the claims or raises :class:`Unauthenticated`."""
    if settings.service_auth == "google":
        session = requests.Session()

        def google_claims(token: str) -> Mapping[str, Any]:
            request = google.auth.transport.requests.Request(session=session)
            claims: Mapping[str, Any] = google.oauth2.id_token.verify_oauth2_token(  # unannotated; returns a dict
                token, request, audience=audience, clock_skew_in_seconds=CLOCK_SKEW_S
            )
            return claims

        return _checked(google_claims, GOOGLE_ISSUERS)
    certs = {LOCAL_KEY_ID: local_public_key(settings).decode("ascii")}

    def local_claims(token: str) -> Mapping[str, Any]:
        # unannotated in google-auth; returns the payload as a dict
        claims: Mapping[str, Any] = google.auth.jwt.decode(
            token, certs=certs, audience=audience, clock_skew_in_seconds=CLOCK_SKEW_S
        )
        return claims

    return _checked(local_claims, frozenset({LOCAL_ISSUER}))


def _checked(decode: Callable[[str], Mapping[str, Any]], issuers: frozenset[str]) -> Callable[[str], Mapping[str, Any]]:
    def claims(token: str) -> Mapping[str, Any]:
        try:
            decoded = decode(token)
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            # google-auth's messages can quote the token's claims; the type is enough
            raise Unauthenticated(f"the bearer token is not valid here ({type(exc).__name__})") from None
        if decoded.get("iss") not in issuers:
            raise Unauthenticated("the bearer token has another issuer")
        if not decoded.get("email") or decoded.get("email_verified") is not True:
            raise Unauthenticated("the bearer token names no verified service account")
        return decoded

    return claims


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its service account's e-mail."""

    email: str


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Caller` of the allowlist, or raises 401/403 errors."""

    def __init__(self, verify: Callable[[str], Mapping[str, Any]], allowed: frozenset[str]) -> None:
        if not allowed:
            raise ChurnopsError("an authenticating service needs at least one allowed caller")
        self.verify = verify
        self.allowed = allowed
        self._verified: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def for_service(cls, settings: Settings, audience: str, callers: Iterable[str]) -> "Authenticator":
        """The authenticator of a service with ``audience`` serving ``callers`` (names or e-mails)."""
        return cls(verifier(settings, audience), allowlist(settings, callers))

    @staticmethod
    def bearer(authorization: str | None) -> str:
        """The token of an ``Authorization: Bearer <token>`` header."""
        if not authorization:
            raise Unauthenticated("this service needs a bearer token: send Authorization: Bearer <ID token>")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <ID token>'")
        return token.strip()

    def _remembered(self, token: str) -> str | None:
        with self._lock:
            entry = self._verified.get(token)
            if entry is None:
                return None
            if entry[1] <= time.time():
                del self._verified[token]
                return None
            self._verified.move_to_end(token)
            return entry[0]

    def _verify(self, token: str) -> str:
        claims = self.verify(token)
        email = str(claims["email"])
        with self._lock:
            self._verified[token] = (email, float(claims.get("exp", 0)))
            while len(self._verified) > VERIFIED_CACHE:
                self._verified.popitem(last=False)
        return email

    def _allowed(self, email: str) -> Caller:
        if email not in self.allowed:
            raise PermissionDenied("this caller is not allowed to use this service")
        return Caller(email)

    def caller(self, authorization: str | None) -> Caller:
        """The allowed caller presenting ``authorization`` (blocking: may fetch Google's certificates)."""
        token = self.bearer(authorization)
        email = self._remembered(token)
        return self._allowed(email if email is not None else self._verify(token))

    async def caller_async(self, authorization: str | None) -> Caller:
        """:meth:`caller` for an event loop: a token seen before is answered at once, a new one verified in a thread."""
        token = self.bearer(authorization)
        email = self._remembered(token)
        if email is None:
            email = await asyncio.to_thread(self._verify, token)
        return self._allowed(email)


class TokenSource:
    """This process's bearer token for one audience, renewed before it expires (thread-safe)."""

    def __init__(self, settings: Settings, audience: str, account: str) -> None:
        self.settings = settings
        self.audience = audience
        self.account = account  # the local signer's subject; on GKE the workload's own identity is used
        self._token: tuple[str, float] | None = None
        self._credentials: Any = None
        self._lock = threading.Lock()

    def fresh(self) -> bool:
        """Whether the held token is good for at least the refresh margin."""
        held = self._token
        return held is not None and held[1] - REFRESH_MARGIN_S > time.time()

    def token(self) -> str:
        """The current token (blocking when it must be renewed: on GKE, a call to the metadata server)."""
        with self._lock:
            if not self.fresh():
                self._token = self._renew()
            assert self._token is not None
            return self._token[0]

    async def token_async(self) -> str:
        """:meth:`token` for an event loop: renewal runs in a thread."""
        held = self._token
        if held is not None and self.fresh():
            return held[0]
        return await asyncio.to_thread(self.token)

    def header(self, name: str = AUTHORIZATION) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` (or under ``name``: :data:`PROXIED_AUTHORIZATION` through the
        Kubernetes API server's service proxy)."""
        return {name: f"Bearer {self.token()}"}

    def _renew(self) -> tuple[str, float]:
        if self.settings.service_auth == "local":
            return mint_local_token(self.settings, self.account, self.audience), time.time() + TOKEN_LIFETIME_S
        request = google.auth.transport.requests.Request()
        if self._credentials is None:
            self._credentials = google.oauth2.id_token.fetch_id_token_credentials(self.audience, request=request)
        self._credentials.refresh(request)
        expiry = self._credentials.expiry
        # google-auth's expiry is a naive UTC datetime
        return str(self._credentials.token), (
            calendar.timegm(expiry.utctimetuple()) if expiry else time.time() + REFRESH_MARGIN_S * 2
        )

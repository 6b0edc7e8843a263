"""Bearer tokens: what a server accepts, what it refuses and why, and the local signer's key files."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import google.auth.crypt
import google.auth.jwt
import pytest

from churnops.errors import ChurnopsError
from churnops.platform.auth import (
    LOCAL_KEY_ID,
    Authenticator,
    PermissionDenied,
    TokenSource,
    Unauthenticated,
    account_email,
    local_signing_key,
    mint_local_token,
    verifier,
)
from churnops.platform.settings import Settings

AUDIENCE = "churnops-predictor"


@pytest.fixture(name="settings")
def fixture_settings(tmp_path: Path) -> Settings:
    """Local-profile settings with state (and so the signer) under a temporary folder."""
    return Settings(state_dir=tmp_path / "state")


def authenticator(settings: Settings, *callers: str) -> Authenticator:
    """The predictor's authenticator, serving ``callers``."""
    return Authenticator.for_service(settings, AUDIENCE, callers or ("churnops-transformer",))


def bearer(token: str) -> str:
    """An Authorization header value."""
    return f"Bearer {token}"


def signed(settings: Settings, **claims: object) -> str:
    """A token signed by the local key with exactly ``claims``."""
    signer = google.auth.crypt.RSASigner.from_string(local_signing_key(settings), LOCAL_KEY_ID)
    return google.auth.jwt.encode(signer, claims).decode()


def test_an_allowed_account_is_the_caller(settings: Settings) -> None:
    caller = authenticator(settings).caller(bearer(mint_local_token(settings, "churnops-transformer", AUDIENCE)))
    assert caller.email == "churnops-transformer@churnops-local.iam.gserviceaccount.com"


def test_accounts_are_named_by_their_email(settings: Settings) -> None:
    assert account_email(settings, "churnops-deployer") == "churnops-deployer@churnops-local.iam.gserviceaccount.com"
    email = "someone@example.iam.gserviceaccount.com"
    assert account_email(settings, email) == email


def test_a_valid_account_not_in_the_allowlist_is_permission_denied(settings: Settings) -> None:
    with pytest.raises(PermissionDenied) as refused:
        authenticator(settings).caller(bearer(mint_local_token(settings, "churnops-ingest", AUDIENCE)))
    assert refused.value.status == 403


def test_tokens_that_prove_nothing_are_unauthenticated(settings: Settings, tmp_path: Path) -> None:
    now = int(time.time())
    good = {
        "iss": "churnops-local",
        "aud": AUDIENCE,
        "email": account_email(settings, "churnops-transformer"),
        "email_verified": True,
        "iat": now,
        "exp": now + 600,
    }
    cases = {
        "no header": None,
        "empty": "",
        "basic auth": "Basic dXNlcjpwYXNz",
        "no token": "Bearer ",
        "garbage": bearer("abc.def.ghi"),
        "expired": bearer(mint_local_token(settings, "churnops-transformer", AUDIENCE, lifetime_s=-60)),
        "another audience": bearer(mint_local_token(settings, "churnops-transformer", "churnops-transformer")),
        "another signer": bearer(
            mint_local_token(Settings(state_dir=tmp_path / "other"), "churnops-transformer", AUDIENCE)
        ),
        "another issuer": bearer(signed(settings, **{**good, "iss": "https://accounts.google.com"})),
        "unverified e-mail": bearer(signed(settings, **{**good, "email_verified": False})),
        "no e-mail": bearer(signed(settings, **{key: v for key, v in good.items() if key != "email"})),
    }
    auth = authenticator(settings)
    assert auth.caller(bearer(signed(settings, **good))).email == good["email"]  # the baseline passes
    for case, header in cases.items():
        with pytest.raises(Unauthenticated) as refused:
            auth.caller(header)
        assert refused.value.status == 401, case
        assert header is None or header.partition(" ")[2] not in str(refused.value) or not header.partition(" ")[2]


def test_a_verified_token_is_remembered_until_it_expires(settings: Settings) -> None:
    calls: list[str] = []
    real = verifier(settings, AUDIENCE)

    def counting(token: str):
        calls.append(token)
        return real(token)

    auth = Authenticator(counting, frozenset({account_email(settings, "churnops-transformer")}))
    header = bearer(mint_local_token(settings, "churnops-transformer", AUDIENCE))
    for _ in range(3):
        assert asyncio.run(auth.caller_async(header)).email.startswith("churnops-transformer@")
    assert len(calls) == 1
    stranger = bearer(mint_local_token(settings, "churnops-ingest", AUDIENCE))
    for _ in range(2):  # remembered too, and still refused each time
        with pytest.raises(PermissionDenied):
            auth.caller(stranger)
    assert len(calls) == 2


def test_an_authenticator_without_callers_is_refused(settings: Settings) -> None:
    with pytest.raises(ChurnopsError, match="at least one allowed caller"):
        Authenticator.for_service(settings, AUDIENCE, [])


def test_the_local_signer_key_is_private_and_servers_read_only_its_public_half(settings: Settings) -> None:
    token = mint_local_token(settings, "churnops-deployer", AUDIENCE)
    private = settings.local_secrets_dir / "churnops-service-signing-key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.local_secrets_dir.stat().st_mode) == 0o700
    public = (settings.local_secrets_dir / "churnops-service-signing-key.pub").read_text()
    assert "PUBLIC KEY" in public and "PRIVATE" not in public
    private.unlink()  # a server needs only the public half
    assert verifier(settings, AUDIENCE)(token)["email"] == account_email(settings, "churnops-deployer")


def test_a_token_source_reuses_its_token_and_renews_it_before_expiry(settings: Settings) -> None:
    source = TokenSource(settings, AUDIENCE, "churnops-transformer")
    first = source.token()
    assert source.token() == first and asyncio.run(source.token_async()) == first
    assert source.header() == {"Authorization": f"Bearer {first}"}
    held = source._token  # pylint: disable=protected-access  # age the held token past the refresh margin
    assert held is not None
    source._token = (held[0], time.time() + 60)  # pylint: disable=protected-access
    time.sleep(1.1)  # a new iat, so a new token
    renewed = source.token()
    assert renewed != first
    assert authenticator(settings).caller(bearer(renewed)).email.startswith("churnops-transformer@")


def test_local_tokens_are_refused_on_the_google_profile(tmp_path: Path) -> None:
    with pytest.raises(ChurnopsError, match="local profile"):
        mint_local_token(Settings(state_dir=tmp_path, service_auth="google"), "churnops-deployer", AUDIENCE)

"""Bearer tokens for the servers the tests start: one local signer per test process.

Servers started by tests get ``CHURNOPS_STATE_DIR`` = :data:`STATE` (see :func:`server_env`), so they
trust the public half of the key under ``STATE/secrets``; :func:`headers` mints tokens with its
private half, as any account, through the same code a local client uses
(:func:`churnops.platform.auth.mint_local_token`).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from churnops.platform.auth import mint_local_token
from churnops.platform.settings import Settings

STATE = Path(tempfile.mkdtemp(prefix="churnops-auth-"))
atexit.register(shutil.rmtree, STATE, True)
SETTINGS = Settings(state_dir=STATE)
DEPLOYER = "churnops-deployer"  # allowed by the predictor and the transformer
TRANSFORMER = "churnops-transformer"  # allowed by the predictor only
STRANGER = "churnops-ingest"  # a real account of the platform, allowed by neither


def server_env() -> dict[str, str]:
    """Environment for a server process that trusts this process's signer."""
    return {"CHURNOPS_STATE_DIR": str(STATE)}


def token(account: str = DEPLOYER, audience: str = SETTINGS.predictor_audience, lifetime_s: int = 600) -> str:
    """A token of ``account`` for ``audience``."""
    return mint_local_token(SETTINGS, account, audience, lifetime_s)


def headers(account: str = DEPLOYER, audience: str = SETTINGS.predictor_audience) -> dict[str, str]:
    """``Authorization: Bearer`` for ``account`` and ``audience`` (the predictor's by default)."""
    return {"Authorization": f"Bearer {token(account, audience)}"}


def transformer_headers(account: str = DEPLOYER) -> dict[str, str]:
    """``Authorization: Bearer`` for the by-customer transformer."""
    return headers(account, SETTINGS.transformer_audience)

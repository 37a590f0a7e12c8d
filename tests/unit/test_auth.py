"""Roles, external role claims and tokens: pure logic, the time passed in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt
import pytest

from task_scheduler.app import auth_settings
from task_scheduler.config import ConfigError, build_settings
from task_scheduler.domain.auth import (
    IN_FLIGHT_RETRY_S,
    MAX_TRACKED_KEYS,
    BadToken,
    FailureWindow,
    Role,
    check_password,
    mint,
    role_from_claims,
    token_algorithm,
    verify_builtin,
    verify_external,
)
from task_scheduler.services.auth import AuthService
from tests.keys import rsa_pair

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
SECRET = "s" * 40
HOUR = timedelta(hours=1)
MAP = {"rmf-admin": Role.admin, "rmf-operator": Role.operator, "viewer": Role.viewer}


def test_each_role_allows_itself_and_those_below():
    assert Role.admin.allows(Role.operator) and Role.admin.allows(Role.viewer)
    assert Role.operator.allows(Role.operator) and not Role.operator.allows(Role.admin)
    assert not Role.viewer.allows(Role.operator)


@pytest.mark.parametrize(
    ("claims", "claim", "expected"),
    [
        ({"roles": ["viewer", "rmf-operator"]}, "roles", Role.operator),  # the highest wins
        ({"roles": "rmf-admin"}, "roles", Role.admin),  # a single string
        ({"realm_access": {"roles": ["offline_access", "rmf-admin"]}}, "realm_access.roles", Role.admin),
        ({"roles": ["offline_access"]}, "roles", Role.viewer),  # nothing mapped: the default
        ({"realm_access": "odd"}, "realm_access.roles", Role.viewer),  # not a mapping: the default
        ({"roles": ["rmf-admin"]}, None, Role.viewer),  # no claim configured: the default
    ],
)
def test_an_external_role_comes_from_the_mapped_claim_else_the_default(claims, claim, expected):
    assert role_from_claims(claims, claim, MAP, Role.viewer) is expected


def test_no_default_role_leaves_unmapped_external_users_without_a_role():
    assert role_from_claims({"roles": ["guest"]}, "roles", MAP, None) is None


def test_a_minted_token_names_its_user_until_it_expires():
    token, expires = mint("ada", Role.operator, SECRET, T0, HOUR)
    assert expires == T0 + HOUR
    assert verify_builtin(token, SECRET, T0 + HOUR - timedelta(minutes=1)) == "ada"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["preferred_username"] == claims["sub"] == "ada" and claims["role"] == "operator"
    with pytest.raises(BadToken, match="expired"):
        verify_builtin(token, SECRET, T0 + HOUR + timedelta(minutes=1))


def test_a_token_signed_with_another_secret_or_for_another_audience_is_refused():
    token, _ = mint("ada", Role.admin, SECRET, T0, HOUR)
    with pytest.raises(BadToken, match="invalid token"):
        verify_builtin(token, "t" * 40, T0)
    foreign = jwt.encode(
        {
            "sub": "ada",
            "aud": "rmf_api_server",
            "iss": "rmf_task_scheduler",
            "exp": int((T0 + HOUR).timestamp()),
        },
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(BadToken, match=r"(?i)audience"):
        verify_builtin(foreign, SECRET, T0)


def test_an_unsigned_token_is_refused():
    unsigned = jwt.encode(
        {"sub": "ada", "aud": "rmf_task_scheduler", "iss": "rmf_task_scheduler", "exp": 2**40},
        None,
        algorithm="none",
    )
    assert token_algorithm(unsigned) == "none"
    with pytest.raises(BadToken):
        verify_builtin(unsigned, SECRET, T0)
    with pytest.raises(BadToken, match="malformed"):
        token_algorithm("not.a.token")


def test_an_identity_providers_token_is_checked_against_its_key_audience_and_issuer():
    key, public = rsa_pair()
    claims = {
        "preferred_username": "grace",
        "aud": "rmf_api_server",
        "iss": "https://sso.example/realms/rmf",
        "exp": int((T0 + HOUR).timestamp()),
        "realm_access": {"roles": ["rmf-operator"]},
    }
    token = jwt.encode(claims, key, algorithm="RS256")
    assert verify_external(token, public, "rmf_api_server", "https://sso.example/realms/rmf", T0)[
        "realm_access"
    ]
    with pytest.raises(BadToken, match=r"(?i)issuer"):
        verify_external(token, public, "rmf_api_server", "https://evil.example", T0)
    with pytest.raises(BadToken, match=r"(?i)audience"):
        verify_external(token, public, "dashboard", "https://sso.example/realms/rmf", T0)
    with pytest.raises(BadToken, match="expired"):
        verify_external(token, public, "rmf_api_server", "https://sso.example/realms/rmf", T0 + 2 * HOUR)
    other, _ = rsa_pair()
    forged = jwt.encode(claims, other, algorithm="RS256")
    with pytest.raises(BadToken, match="invalid token"):
        verify_external(forged, public, "rmf_api_server", "https://sso.example/realms/rmf", T0)
    nameless = jwt.encode({**claims, "preferred_username": ""}, key, algorithm="RS256")
    with pytest.raises(BadToken, match="preferred_username"):
        verify_external(nameless, public, "rmf_api_server", "https://sso.example/realms/rmf", T0)


def test_a_token_not_yet_valid_is_refused_beyond_the_clock_skew():
    key, public = rsa_pair()
    claims = {"preferred_username": "grace", "aud": "a", "iss": "i", "exp": int((T0 + HOUR).timestamp())}
    early = jwt.encode(
        {**claims, "nbf": int((T0 + timedelta(minutes=5)).timestamp())}, key, algorithm="RS256"
    )
    with pytest.raises(BadToken, match="not valid yet"):
        verify_external(early, public, "a", "i", T0)
    assert verify_external(early, public, "a", "i", T0 + timedelta(minutes=4, seconds=45))


def test_passwords_need_ten_characters_and_at_most_1024():
    assert check_password("short") == "at least 10 characters"
    assert check_password("x" * 1025) == "at most 1024 characters"
    assert check_password("correct horse") is None


def test_auth_on_without_a_secret_stops_start_up_naming_the_key():
    with pytest.raises(ConfigError, match="auth_jwt_secret: required when auth_enabled"):
        build_settings({"auth_enabled": True}, environ={})
    with pytest.raises(ConfigError, match="auth_jwt_secret"):
        build_settings({"auth_enabled": True, "auth_jwt_secret": "short"}, environ={})


def test_the_first_admin_needs_both_keys_and_a_long_enough_password_never_echoed():
    with pytest.raises(ConfigError, match="go together"):
        build_settings({"auth_admin_username": "root"}, environ={})
    with pytest.raises(ConfigError, match="auth_admin_password: Value error, at least 10") as caught:
        build_settings({"auth_admin_username": "root", "auth_admin_password": "hunter2"}, environ={})
    assert "hunter2" not in str(caught.value)


def test_secrets_come_from_the_environment():
    settings = build_settings(
        {"auth_enabled": True, "auth_admin_username": "root"},
        environ={
            "RMF_TASK_SCHEDULER_AUTH_JWT_SECRET": SECRET,
            "RMF_TASK_SCHEDULER_AUTH_ADMIN_PASSWORD": "correct horse",
        },
    )
    assert settings.auth_jwt_secret == SECRET and settings.auth_admin_password == "correct horse"


def test_an_external_key_must_be_an_rsa_pem_with_an_issuer():
    _, public = rsa_pair()
    with pytest.raises(ConfigError, match="auth_external_public_key: Value error, not a PEM"):
        build_settings({"auth_external_public_key": "abc", "auth_external_issuer": "i"}, environ={})
    with pytest.raises(ConfigError, match="auth_external_issuer: required"):
        build_settings({"auth_external_public_key": public}, environ={})
    assert build_settings({"auth_external_public_key": public, "auth_external_issuer": "i"}, environ={})


def test_a_failure_window_lets_limit_failures_through_then_waits_for_the_oldest_to_expire():
    window = FailureWindow(3, timedelta(seconds=60))
    for seconds in (0, 10, 20):
        assert window.retry_after("ann", T0 + timedelta(seconds=seconds)) is None
        window.begin("ann")
        window.end("ann", T0 + timedelta(seconds=seconds), failed=True)
    assert window.retry_after("ann", T0 + timedelta(seconds=30)) == 30.0  # the one at 0 expires at 60
    assert window.retry_after("ann", T0 + timedelta(seconds=59)) == 1.0
    assert window.retry_after("ann", T0 + timedelta(seconds=60)) is None  # exactly a window old: gone
    assert window.retry_after("bob", T0) is None


def test_attempts_under_way_count_towards_the_limit():
    window = FailureWindow(2, timedelta(seconds=60))
    window.begin("ann")
    assert window.retry_after("ann", T0) is None
    window.begin("ann")
    assert window.retry_after("ann", T0) == IN_FLIGHT_RETRY_S
    window.end("ann", T0, failed=False)
    window.end("ann", T0, failed=False)
    assert window.retry_after("ann", T0) is None
    window.begin("ann")
    window.end("ann", T0, failed=True)
    window.begin("ann")  # one failure and one under way: the wait is the failure's
    assert window.retry_after("ann", T0 + timedelta(seconds=5)) == 55.0


def test_a_reset_forgets_a_keys_failures():
    window = FailureWindow(1, timedelta(seconds=60))
    window.begin("ann")
    window.end("ann", T0, failed=True)
    assert window.retry_after("ann", T0) == 60.0
    window.reset("ann")
    assert window.retry_after("ann", T0) is None


def test_a_failure_window_remembers_at_most_max_keys_the_least_recent_forgotten():
    window = FailureWindow(1, timedelta(seconds=60), max_keys=2)
    for key in ("a", "b", "a", "c"):
        window.begin(key)
        window.end(key, T0, failed=True)
    assert window.retry_after("b", T0) is None  # least recently failed: forgotten
    assert window.retry_after("a", T0) == 60.0 and window.retry_after("c", T0) == 60.0
    assert MAX_TRACKED_KEYS == 10_000


def test_passwords_are_hashed_with_argon2id_in_rfc_9106s_low_memory_profile():
    service = AuthService(None, None, auth_settings(build_settings({}, environ={})))  # type: ignore[arg-type]
    try:
        assert service._hasher.hash("a long enough password").startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    finally:
        service.close()

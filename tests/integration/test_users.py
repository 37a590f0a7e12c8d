"""Logins, tokens and the built-in users, with authentication on, on every database."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from task_scheduler import cli
from task_scheduler.app import get_app
from task_scheduler.config import build_settings
from task_scheduler.domain.auth import Role
from tests.integration.conftest import ADMIN, ADMIN_PASSWORD, SECRET, T0

CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}
HOURLY = {"kind": "interval", "every": 1, "unit": "hours"}


async def test_a_login_gives_a_token_with_its_expiry_that_ends_with_the_ttl(secured):
    login = await secured.login(ADMIN, ADMIN_PASSWORD)
    assert login.status_code == 200
    body = login.json()
    assert body["token_type"] == "bearer" and body["role"] == "admin" and body["username"] == ADMIN
    assert body["expires_in"] == 3600 and body["expires_at"] == "2026-01-05T13:00:00Z"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await secured.http.get("/auth/me", headers=headers)).json() == {
        "username": ADMIN,
        "role": "admin",
        "source": "builtin",
        "auth_enabled": True,
    }

    secured.clock.advance(minutes=59)
    assert (await secured.http.get("/rules", headers=headers)).status_code == 200
    secured.clock.advance(minutes=2)  # past the hour and the 30 s of allowed clock skew
    expired = await secured.http.get("/rules", headers=headers)
    assert expired.status_code == 401 and expired.json()["detail"] == "the token has expired"
    assert expired.headers["www-authenticate"] == "Bearer"


async def test_a_wrong_name_and_a_wrong_password_get_the_same_answer(secured):
    wrong_password = await secured.login(ADMIN, "not the password")
    unknown_user = await secured.login("nobody", "not the password")
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json() == {"detail": "wrong username or password"}


async def test_users_are_listed_without_passwords_and_a_duplicate_name_is_409(secured):
    admin = secured.auth(Role.admin)
    listed = await secured.http.get("/auth/users", headers=admin)
    assert [(u["username"], u["role"], u["enabled"]) for u in listed.json()] == [
        ("operator", "operator", True),
        (ADMIN, "admin", True),
        ("viewer", "viewer", True),
    ]
    assert "password" not in listed.text and "argon2" not in listed.text
    again = {"username": "viewer", "password": "another password"}
    assert (await secured.http.post("/auth/register", json=again, headers=admin)).status_code == 409
    short = {"username": "eve", "password": "short"}
    refused = await secured.http.post("/auth/register", json=short, headers=admin)
    assert (
        refused.status_code == 422
        and "at least 10 characters" in refused.text
        and "short" not in refused.text
    )


async def test_disabling_or_deleting_a_user_ends_their_tokens_at_once(secured):
    admin, viewer = secured.auth(Role.admin), secured.auth(Role.viewer)
    assert (await secured.http.get("/rules", headers=viewer)).status_code == 200

    disabled = await secured.http.patch("/auth/users/viewer", json={"enabled": False}, headers=admin)
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert (await secured.http.get("/rules", headers=viewer)).status_code == 401
    assert (await secured.login("viewer", "viewer password")).status_code == 401

    await secured.http.patch("/auth/users/viewer", json={"enabled": True}, headers=admin)
    assert (await secured.http.get("/rules", headers=viewer)).status_code == 200
    assert (await secured.http.delete("/auth/users/viewer", headers=admin)).status_code == 204
    assert (await secured.http.get("/rules", headers=viewer)).status_code == 401
    assert (await secured.http.delete("/auth/users/viewer", headers=admin)).status_code == 404


async def test_a_role_change_or_new_password_applies_to_the_next_request(secured):
    admin, viewer = secured.auth(Role.admin), secured.auth(Role.viewer)
    rule = {"name": "lobby", "schedule": HOURLY, "task": CLEAN}
    assert (await secured.http.post("/rules", json=rule, headers=viewer)).status_code == 403
    change = {"role": "operator", "password": "a new password"}
    assert (await secured.http.patch("/auth/users/viewer", json=change, headers=admin)).status_code == 200
    assert (await secured.http.post("/rules", json=rule, headers=viewer)).status_code == 201
    assert (await secured.login("viewer", "viewer password")).status_code == 401
    assert (await secured.login("viewer", "a new password")).json()["role"] == "operator"


async def test_the_last_enabled_admin_cannot_be_demoted_disabled_or_deleted(secured):
    admin = secured.auth(Role.admin)
    for change in ({"role": "operator"}, {"enabled": False}):
        refused = await secured.http.patch(f"/auth/users/{ADMIN}", json=change, headers=admin)
        assert refused.status_code == 409 and "last enabled admin" in refused.json()["detail"]
    assert (await secured.http.delete(f"/auth/users/{ADMIN}", headers=admin)).status_code == 409

    promoted = await secured.http.patch("/auth/users/operator", json={"role": "admin"}, headers=admin)
    assert promoted.status_code == 200
    assert (await secured.http.delete(f"/auth/users/{ADMIN}", headers=admin)).status_code == 204
    assert (
        await secured.http.get("/auth/users", headers=admin)
    ).status_code == 401  # that token's user is gone


async def test_rules_record_who_created_and_last_changed_them(secured):
    admin, operator = secured.auth(Role.admin), secured.auth(Role.operator)
    body = {"name": "lobby", "schedule": HOURLY, "task": CLEAN}
    created = (await secured.http.post("/rules", json=body, headers=operator)).json()
    assert created["created_by"] == created["updated_by"] == "operator"
    disabled = (await secured.http.post(f"/rules/{created['id']}/disable", headers=admin)).json()
    assert (disabled["created_by"], disabled["updated_by"]) == ("operator", ADMIN)
    keycloak = secured.external("grace", realm_access={"roles": ["rmf-operator"]})
    replaced = await secured.http.put(
        f"/rules/{created['id']}", json={**body, "enabled": False}, headers=keycloak
    )
    assert (replaced.json()["created_by"], replaced.json()["updated_by"]) == ("operator", "grace")
    shown = (await secured.http.get(f"/rules/{created['id']}", headers=secured.auth(Role.viewer))).json()
    assert shown["updated_by"] == "grace"


async def test_an_identity_providers_user_gets_the_mapped_role_or_the_default(secured):
    keycloak_admin = secured.external("ada", realm_access={"roles": ["offline_access", "rmf-admin"]})
    me = (await secured.http.get("/auth/me", headers=keycloak_admin)).json()
    assert me == {"username": "ada", "role": "admin", "source": "external", "auth_enabled": True}
    plain = secured.external("bob")
    assert (await secured.http.get("/auth/me", headers=plain)).json()["role"] == "viewer"
    assert (await secured.http.post("/rules/1/run", headers=plain)).status_code == 403
    # A built-in admin of the same name does not raise an external user's role.
    stranger = secured.external(ADMIN)
    assert (await secured.http.get("/auth/me", headers=stranger)).json()["role"] == "viewer"
    wrong_issuer = secured.external("ada", iss="https://evil.example", realm_access={"roles": ["rmf-admin"]})
    assert (await secured.http.get("/auth/me", headers=wrong_issuer)).status_code == 401
    expired = secured.external("ada", exp=int((T0 - timedelta(minutes=5)).timestamp()))
    assert (await secured.http.get("/auth/me", headers=expired)).status_code == 401


async def test_a_token_of_another_kind_is_refused(secured):
    for token in ("garbage", secured.tokens[Role.admin] + "x", "a.b.c"):
        answer = await secured.http.get("/rules", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, token


async def test_with_auth_off_everyone_is_an_admin_and_login_says_so(service):
    me = (await service.http.get("/auth/me")).json()
    assert me == {"username": None, "role": "admin", "source": "off", "auth_enabled": False}
    refused = await service.http.post("/auth/login", json={"username": "a", "password": "b"})
    assert refused.status_code == 409 and "switched off" in refused.json()["detail"]
    body = {"name": "lobby", "schedule": HOURLY, "task": CLEAN}
    created = (await service.http.post("/rules", json=body)).json()
    assert created["created_by"] is None and created["updated_by"] is None


async def test_the_configured_admin_is_made_only_while_no_admin_exists(db_url, clock):
    values = {"db_url": db_url, "auth_enabled": True, "auth_jwt_secret": SECRET}
    first = {**values, "auth_admin_username": "first", "auth_admin_password": "first password"}
    second = {**values, "auth_admin_username": "second", "auth_admin_password": "second password"}
    for config in (first, second):
        app = get_app(build_settings(config, environ={}), clock=clock, run_background=False)
        async with app.router.lifespan_context(app):
            users = await app.state.services.auth.list_users()
    assert [(u.username, u.role) for u in users] == [("first", Role.admin)]


def test_create_admin_reads_the_password_from_stdin_never_argv(tmp_path, monkeypatch, caplog):
    config = tmp_path / "config.py"
    config.write_text(f"config = {{'db_url': 'sqlite://{tmp_path / 'db.sqlite3'}'}}\n")
    monkeypatch.setenv("RMF_TASK_SCHEDULER_CONFIG", str(config))
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert cli.main(["create-admin", "--username", "root"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert cli.main(["create-admin", "--username", "root"]) == 1  # taken
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["create-admin", "--username", "other"]) == 2
    assert "a long enough password" not in caplog.text and "short\n" not in caplog.text
    with pytest.raises(SystemExit):
        cli.main(["create-admin"])

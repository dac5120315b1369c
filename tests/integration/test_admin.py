"""The admin API: admins manage clinics, departments, users and kiosks (audited); nobody else
may, and admins still see no patient data."""

from __future__ import annotations

import pytest

from tests.integration.conftest import PASSWORD
from tests.integration.test_sessions import audit_actions, bearer, sign_in


@pytest.mark.parametrize("username", ["dr.li", "exp.zhang", "coord.liu"])
async def test_only_admins_reach_the_admin_api(client, auth, username):
    headers = await auth(username)
    for method, path, body in (
        ("GET", "/api/admin/users", None),
        ("POST", "/api/admin/users/dr.wang/disable", None),
        ("POST", "/api/admin/clinics", {"name": "X"}),
        ("GET", "/api/admin/devices", None),
    ):
        resp = await client.request(method, path, headers=headers, json=body)
        assert resp.status == 403, (username, path)
        assert (await resp.json())["error"]["code"] == "forbidden"
    assert (await client.get("/api/admin/users")).status == 401


async def test_admin_manages_people_and_kiosks_and_is_audited(client, auth, store):
    admin = await auth("admin")
    r = await client.post("/api/admin/clinics", headers=admin,
                          json={"name": "Shuangxi Township", "id": "shuangxi"})
    assert r.status == 201
    r = await client.post("/api/admin/departments", headers=admin, json={"name": "Cardiology"})
    assert r.status == 201 and (await r.json())["id"] == "cardiology"
    clinics = await (await client.get("/api/admin/clinics", headers=admin)).json()
    assert {"id": "shuangxi", "name": "Shuangxi Township"} in clinics
    r = await client.post("/api/admin/users", headers=admin, json={
        "username": "dr.zhou", "role": "doctor", "clinic": "shuangxi",
        "password": "zhou-pass-1", "display_name": "周医生"})
    assert r.status == 201, await r.text()
    bad = await client.post("/api/admin/users", headers=admin, json={
        "username": "exp.x", "role": "expert", "password": "zhou-pass-1"})
    assert bad.status == 400  # an expert needs a department
    dup = await client.post("/api/admin/users", headers=admin, json={
        "username": "dr.zhou", "role": "doctor", "clinic": "shuangxi", "password": "zhou-pass-1"})
    assert dup.status == 409
    token = (await sign_in(client, "dr.zhou", "zhou-pass-1"))["token"]
    r = await client.post("/api/admin/users/dr.zhou/disable", headers=admin)
    assert r.status == 200 and (await r.json())["disabled"] is True
    # disabled through this process: refused at once, and no new sign-in
    assert (await client.get("/api/presets", headers=bearer(token))).status == 401
    refused = await client.post("/api/auth/login",
                                json={"username": "dr.zhou", "password": "zhou-pass-1"})
    assert refused.status == 401
    users = {u["username"]: u for u in
             await (await client.get("/api/admin/users", headers=admin)).json()}
    assert users["dr.zhou"]["disabled"] is True and users["dr.li"]["disabled"] is False
    assert "password_hash" not in users["dr.zhou"]
    assert (await client.post("/api/admin/users/dr.zhou/enable", headers=admin)).status == 200
    r = await client.post("/api/admin/users/dr.zhou/password", headers=admin,
                          json={"password": "new-zhou-pass"})
    assert r.status == 200
    await sign_in(client, "dr.zhou", "new-zhou-pass")
    assert (await client.post("/api/admin/users/admin/disable", headers=admin)).status == 409
    assert (await client.post("/api/admin/users/nobody/disable", headers=admin)).status == 404
    assert (await client.post("/api/admin/users/Bad:Name/disable", headers=admin)).status == 400
    # kiosks
    r = await client.post("/api/admin/devices", headers=admin,
                          json={"name": "Shuangxi kiosk", "clinic": "shuangxi"})
    assert r.status == 201
    device = await r.json()
    assert device["token"].startswith("hzd_") and device["revoked"] is False
    listed = await (await client.get("/api/admin/devices", headers=admin)).json()
    assert [d["id"] for d in listed] == [device["id"]] and "token" not in listed[0]
    kiosk = (await sign_in(client, "dr.zhou", "new-zhou-pass",
                           device_token=device["token"]))["token"]
    r = await client.post(f"/api/admin/devices/{device['id']}/revoke", headers=admin)
    assert r.status == 200 and (await r.json())["revoked"] is True
    assert (await client.get("/api/presets", headers=bearer(kiosk))).status == 401
    again = await client.post(f"/api/admin/devices/{device['id']}/revoke", headers=admin)
    assert again.status == 409
    by_name = await client.post("/api/admin/devices/Shuangxi%20kiosk/revoke", headers=admin)
    assert by_name.status == 400  # ids only here
    # every change audited with who and from where
    expected = ["admin.clinic.add", "admin.department.add", "admin.user.add",
                "admin.user.disable", "admin.user.enable", "admin.user.password",
                "admin.device.add", "admin.device.revoke"]
    records = [e.fields for e in await store.audit.since()
               if e.fields["action"].startswith("admin.")]
    assert [r["action"] for r in records] == expected
    assert all(r["user"] == "admin" and r["role"] == "admin" and r["remote"] == "127.0.0.1"
               for r in records)
    assert records[3]["target"] == "dr.zhou"
    assert len(await audit_actions(store, "auth.login")) >= 3


async def test_admins_still_see_no_patient_data(client, auth):
    admin = await auth("admin")
    resp = await client.get("/dicomweb/studies", headers=admin)
    assert resp.status == 403
    me = await (await client.get("/api/me", headers=admin)).json()
    assert me["role"] == "admin" and PASSWORD not in str(me)

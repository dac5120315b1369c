// admin.html: what the `huizhen` operator commands do — accounts (add, disable/enable, reset
// password), clinic kiosks (register, revoke), clinics and departments — for admin accounts.
// Every change is audited by the server; no patient data is reachable from here.

import { getLang, t } from "../lib/i18n.js";
import { apiJson } from "../lib/api.js";
import { byTestId as $, el } from "../lib/dom.js";
import { mountShell } from "../components/shell.js";
import { mountReferralRoutes } from "../components/admin-referral-routes.js";
import { PageMessages } from "../components/page-messages.js";
import "../i18n/admin.js";

const state = { users: [], devices: [], clinics: [], departments: [], me: "",
  passwordFor: null, confirmRevoke: null, token: null };

function post(path, body = {}) {
  return apiJson(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

// ---- messages -------------------------------------------------------------------------------

const messages = new PageMessages($("admin-notice"), $("admin-error"), "admin.failed");
const showNotice = (key, params) => messages.showNotice(key, params);
const showError = (err) => messages.showError(err);
const renderMessages = () => messages.render();
const act = (fn, button) => messages.act(fn, button);

// ---- rendering ------------------------------------------------------------------------------

function formatTime(epoch) {
  if (!epoch) return "–";
  return new Date(epoch * 1000).toLocaleString(getLang() === "zh" ? "zh-CN" : "en-GB",
    { dateStyle: "short", timeStyle: "short" });
}

function nameOf(list, id) {
  const found = list.find((x) => x.id === id);
  return found ? found.name : id;
}

function renderUsers() {
  const body = $("user-table").querySelector("tbody");
  body.replaceChildren();
  for (const u of state.users) {
    const st = u.disabled ? "disabled" : "enabled";
    const where = u.clinic ? nameOf(state.clinics, u.clinic) : u.department ? nameOf(state.departments, u.department) : "–";
    const actions = el("td", { className: "actions" });
    if (u.disabled) {
      actions.append(el("button", { type: "button", testid: "user-enable", textContent: t("admin.enable"),
        onclick: (ev) => act(async () => {
          await post(`/api/admin/users/${encodeURIComponent(u.username)}/enable`);
          await reload();
          showNotice("admin.done.enabled", { user: u.username });
        }, ev.currentTarget) }));
    } else if (u.username !== state.me) {
      actions.append(el("button", { type: "button", testid: "user-disable", textContent: t("admin.disable"),
        onclick: (ev) => act(async () => {
          await post(`/api/admin/users/${encodeURIComponent(u.username)}/disable`);
          await reload();
          showNotice("admin.done.disabled", { user: u.username });
        }, ev.currentTarget) }));
    }
    actions.append(el("button", { type: "button", testid: "user-password", textContent: t("admin.resetPassword"),
      onclick: () => openPasswordForm(u.username) }));
    const name = el("td", { textContent: u.display_name || "" });
    if (u.username === state.me) name.append(` ${t("admin.you")}`);
    body.append(el("tr", { testid: "user-row", dataset: { username: u.username, state: st } },
      el("td", { textContent: u.username }),
      name,
      el("td", { textContent: t(`role.${u.role}`) }),
      el("td", { textContent: where }),
      el("td", {}, el("span", { className: "admin-state", testid: "user-state", dataset: { state: st },
        textContent: t(`admin.state.${st}`) })),
      actions));
  }
}

function renderDevices() {
  const body = $("device-table").querySelector("tbody");
  body.replaceChildren();
  if (!state.devices.length) {
    body.append(el("tr", {}, el("td", { colSpan: 6, className: "empty", textContent: t("admin.none") })));
  }
  for (const d of state.devices) {
    const st = d.revoked ? "revoked" : "active";
    const actions = el("td", { className: "actions" });
    if (!d.revoked && state.confirmRevoke === d.id) {
      actions.append(
        el("button", { type: "button", className: "danger", testid: "device-revoke-confirm",
          textContent: t("admin.revokeConfirm"), onclick: (ev) => act(async () => {
            await post(`/api/admin/devices/${encodeURIComponent(d.id)}/revoke`);
            state.confirmRevoke = null;
            await reload();
            showNotice("admin.done.revoked", { name: d.name });
          }, ev.currentTarget) }),
        el("button", { type: "button", testid: "device-revoke-cancel", textContent: t("admin.cancel"),
          onclick: () => { state.confirmRevoke = null; renderDevices(); } }));
    } else if (!d.revoked) {
      actions.append(el("button", { type: "button", testid: "device-revoke", textContent: t("admin.revoke"),
        onclick: () => { state.confirmRevoke = d.id; renderDevices(); } }));
    }
    body.append(el("tr", { testid: "device-row", dataset: { deviceId: d.id, name: d.name, state: st } },
      el("td", { textContent: d.name }),
      el("td", { className: "nowrap", textContent: d.id }),
      el("td", { textContent: nameOf(state.clinics, d.clinic) }),
      el("td", { className: "nowrap", textContent: formatTime(d.created_at) }),
      el("td", {}, el("span", { className: "admin-state", testid: "device-state", dataset: { state: st },
        textContent: t(`admin.state.${st}`) })),
      actions));
  }
  const box = $("device-token-box");
  box.hidden = !state.token;
  $("device-token").textContent = state.token || "";
}

function renderList(testid, items) {
  const list = $(testid);
  list.replaceChildren();
  if (!items.length) list.append(el("li", { className: "empty", textContent: t("admin.none") }));
  for (const item of items) {
    list.append(el("li", { dataset: { id: item.id } }, item.name, el("span", { className: "id", textContent: item.id })));
  }
}

function fillSelect(select, items) {
  const keep = select.value;
  select.replaceChildren(...items.map((x) => el("option", { value: x.id, textContent: `${x.name} (${x.id})` })));
  if (items.some((x) => x.id === keep)) select.value = keep;
}

function renderRoleFields() {
  const role = $("user-add-role").value;
  $("user-add-clinic-field").hidden = role !== "doctor";
  $("user-add-department-field").hidden = role !== "expert";
}

function render() {
  renderUsers();
  renderDevices();
  renderList("clinic-list", state.clinics);
  renderList("department-list", state.departments);
  fillSelect($("user-add-clinic"), state.clinics);
  fillSelect($("device-add-clinic"), state.clinics);
  fillSelect($("user-add-department"), state.departments);
  renderRoleFields();
  if (state.passwordFor) $("password-form-heading").textContent = t("admin.passwordFor", { user: state.passwordFor });
  renderMessages();
}

async function reload() {
  const [users, devices, clinics, departments] = await Promise.all([
    apiJson("/api/admin/users"), apiJson("/api/admin/devices"),
    apiJson("/api/admin/clinics"), apiJson("/api/admin/departments"),
  ]);
  Object.assign(state, { users, devices, clinics, departments });
  render();
}

// ---- forms ----------------------------------------------------------------------------------

function openPasswordForm(username) {
  state.passwordFor = username;
  const form = $("password-form");
  form.hidden = false;
  $("password-form-input").value = "";
  render();
  $("password-form-input").focus();
}

function bindForms() {
  $("user-add-role").addEventListener("change", renderRoleFields);
  $("password-form-cancel").addEventListener("click", () => {
    state.passwordFor = null;
    $("password-form").hidden = true;
  });
  $("password-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const user = state.passwordFor;
    act(async () => {
      await post(`/api/admin/users/${encodeURIComponent(user)}/password`,
        { password: $("password-form-input").value });
      $("password-form-input").value = "";
      $("password-form").hidden = true;
      state.passwordFor = null;
      showNotice("admin.done.password", { user });
    }, $("password-form-submit"));
  });
  $("user-add-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const role = $("user-add-role").value;
    const body = {
      username: $("user-add-username").value.trim(),
      role,
      password: $("user-add-password").value,
    };
    const display = $("user-add-display-name").value.trim();
    if (display) body.display_name = display;
    if (role === "doctor") body.clinic = $("user-add-clinic").value;
    if (role === "expert") body.department = $("user-add-department").value;
    act(async () => {
      await post("/api/admin/users", body);
      ev.target.reset();
      await reload();
      showNotice("admin.done.userAdded", { user: body.username });
    }, $("user-add-submit"));
  });
  $("device-add-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = { name: $("device-add-name").value.trim(), clinic: $("device-add-clinic").value };
    act(async () => {
      const device = await post("/api/admin/devices", body);
      ev.target.reset();
      await reload();
      state.token = `${window.location.origin}/ui/kiosk.html?device_token=${device.token}`;
      renderDevices();
      showNotice("admin.done.deviceAdded", { name: device.name, clinic: nameOf(state.clinics, device.clinic) });
    }, $("device-add-submit"));
  });
  for (const kind of ["clinic", "department"]) {
    $(`${kind}-add-form`).addEventListener("submit", (ev) => {
      ev.preventDefault();
      const body = { name: $(`${kind}-add-name`).value.trim() };
      const id = $(`${kind}-add-id`).value.trim();
      if (id) body.id = id;
      act(async () => {
        await post(`/api/admin/${kind === "clinic" ? "clinics" : "departments"}`, body);
        ev.target.reset();
        await reload();
        showNotice(`admin.done.${kind}Added`, { name: body.name });
      }, $(`${kind}-add-submit`));
    });
  }
}

// ---- start ----------------------------------------------------------------------------------

bindForms();
mountShell({
  title: "admin.title",
  subtitle: "admin.subtitle",
  loginPage: "admin.html",
  onSession: (session) => {
    state.me = (session.user || {}).username || "";
    if ((session.user || {}).role !== "admin") {
      $("admin-forbidden").hidden = false;
      return;
    }
    $("admin-page").hidden = false;
    act(reload);
    mountReferralRoutes();
  },
  onLangChange: () => {
    if (!$("admin-page").hidden) render();
  },
}).start();

// The admin page's "Referral routes" section: which township clinic may refer patients up to
// which county department, and which department back down to which clinic (双向转诊), through
// /api/admin/referral-routes (the same as `huizhen referral allow|deny|routes`). Every change
// is audited by the server (admin.referral_route.*).

import { onLangChange, t } from "../lib/i18n.js";
import { apiJson } from "../lib/api.js";
import { byTestId as $, el } from "../lib/dom.js";
import { describeError } from "../messages.js";
import "../i18n/referrals.js";

function post(path, body) {
  return apiJson(path, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
}

export class ReferralRoutesAdmin {
  constructor(root) {
    this.root = root;
    this.routes = [];
    this.clinics = [];
    this.departments = [];
    this.error = null;
    onLangChange(() => this.render());
  }

  async load() {
    try {
      const [routes, clinics, departments] = await Promise.all([
        apiJson("/api/admin/referral-routes"), apiJson("/api/admin/clinics"),
        apiJson("/api/admin/departments")]);
      Object.assign(this, { routes: routes.routes, clinics, departments, error: null });
    } catch (err) {
      this.error = err;
    }
    this.render();
  }

  async change(path, body) {
    try {
      this.routes = (await post(path, body)).routes;
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    this.render();
  }

  name(list, id) {
    const found = list.find((x) => x.id === id);
    return found ? found.name : id;
  }

  render() {
    const root = this.root;
    const form = el("form", { className: "admin-form", testid: "route-add-form" });
    const clinic = el("select", { testid: "route-add-clinic" });
    for (const c of this.clinics) clinic.append(el("option", { value: c.id, textContent: c.name }));
    const dept = el("select", { testid: "route-add-department" });
    for (const d of this.departments) dept.append(el("option", { value: d.id, textContent: d.name }));
    const direction = el("select", { testid: "route-add-direction" },
      el("option", { value: "both", textContent: t("ref.admin.both") }),
      el("option", { value: "up", textContent: t("ref.admin.up") }),
      el("option", { value: "down", textContent: t("ref.admin.down") }));
    const field = (key, node) => el("label", { className: "field" }, el("span", { textContent: t(key) }), node);
    form.append(field("ref.admin.clinic", clinic), field("ref.admin.department", dept),
      field("ref.admin.direction", direction),
      el("button", { type: "submit", className: "primary", testid: "route-add-submit",
        textContent: t("ref.admin.allow") }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const dirs = direction.value === "both" ? ["up", "down"] : [direction.value];
      for (const d of dirs) {
        await this.change("/api/admin/referral-routes",
          { direction: d, clinic: clinic.value, department: dept.value });
      }
    });
    const list = el("ul", { className: "admin-list", testid: "route-list" });
    for (const r of this.routes) {
      const text = r.direction === "up"
        ? t("ref.admin.routeUp", { clinic: this.name(this.clinics, r.clinic), department: this.name(this.departments, r.department) })
        : t("ref.admin.routeDown", { clinic: this.name(this.clinics, r.clinic), department: this.name(this.departments, r.department) });
      list.append(el("li", { testid: "route-row", dataset: { direction: r.direction, clinic: r.clinic, department: r.department } },
        el("span", { textContent: text }),
        el("button", { type: "button", testid: "route-remove", textContent: t("ref.admin.remove"),
          onclick: () => this.change("/api/admin/referral-routes/remove",
            { direction: r.direction, clinic: r.clinic, department: r.department }) })));
    }
    const parts = [el("h2", { textContent: t("ref.admin.heading") }),
      el("p", { className: "muted", textContent: t("ref.admin.text") })];
    if (this.error) {
      parts.push(el("div", { className: "msg error", testid: "route-error", dataset: { code: this.error.code || "" },
        textContent: describeError(this.error) }));
    }
    root.replaceChildren(...parts, list, form);
  }
}

/** Mounts on the admin page when its `route-section` exists. */
export function mountReferralRoutes() {
  const root = $("route-section");
  if (!root) return null;
  const admin = new ReferralRoutesAdmin(root);
  admin.load();
  return admin;
}

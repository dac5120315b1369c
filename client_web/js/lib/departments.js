// The departments kiosks call and experts invite. Which ones exist is the server's directory
// (GET /api/departments, the kiosk's online counts); this list orders the ones we know and has
// their labels (i18n dept.<id>), and is what a page shows before (or without) that answer.

import { t } from "./i18n.js";

export const DEPARTMENTS = ["radiology", "neurology", "respiratory", "ecg"];
export const DEPARTMENTS_FOR_INVITE = DEPARTMENTS;

/** The ids of the server's departments: the known ones in DEPARTMENTS' order, then the others
 * by id (a department added by the admin shows up without a client change). */
export function orderDepartments(list) {
  const rank = (id) => {
    const i = DEPARTMENTS.indexOf(id);
    return i < 0 ? DEPARTMENTS.length : i;
  };
  return list.map((d) => d.id).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** A department's label: ours in the page's language, else the directory's name. */
export function departmentLabel(id, name = "") {
  const key = `dept.${id}`;
  const text = t(key);
  return text === key ? name || id : text;
}

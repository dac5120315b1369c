// The departments kiosks call and experts invite (ids as in the server's directory; labels are
// in i18n.js as dept.<id>). There is no departments API yet: this small list is the config.

export const DEPARTMENTS = ["radiology", "neurology", "respiratory"];
export const DEPARTMENTS_FOR_INVITE = DEPARTMENTS;

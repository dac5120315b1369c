// Kept so old imports keep working: the module is js/lib/i18n.js.
export * from "./lib/i18n.js";

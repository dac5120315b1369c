// Kept so old imports keep working: the module is js/lib/api.js.
export * from "./lib/api.js";

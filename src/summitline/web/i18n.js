// Strings of the principal view, one JSON file per language in i18n/. No DOM.

export const LANGUAGES = ["en", "ru"];
const cache = new Map();

export async function strings(language) {
  const lang = LANGUAGES.includes(language) ? language : "en";
  if (!cache.has(lang)) {
    const [base, own] = await Promise.all([load("en"), lang === "en" ? {} : load(lang)]);
    cache.set(lang, { ...base, ...own });
  }
  const table = cache.get(lang);
  return (key, vars = {}) =>
    (table[key] ?? key).replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

async function load(lang) {
  const res = await fetch(`/i18n/${lang}.json`);
  return res.ok ? res.json() : {};
}

export function browserLanguage() {
  const lang = (navigator.language || "en").slice(0, 2);
  return LANGUAGES.includes(lang) ? lang : "en";
}

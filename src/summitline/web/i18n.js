// Strings of the web client, one JSON file per language in i18n/, and the formatting of
// dates, times and durations in the page's language (Intl). No DOM.
//
// Other views use: strings(lang) -> t(key, vars), t.lang; formatTime(lang, at),
// formatDate(lang, at), formatDateTime(lang, at), formatDuration(t, ms); quoted(lang, text)
// for user data (a plan's title, a name) set inside a sentence through a placeholder:
// t("x", {title: quoted(lang, plan.title)}); ENDONYMS for a language switch;
// languageName(t, code) for an interpretation channel.

export const LANGUAGES = ["en", "ru", "fr", "de"];
// each language in its own words, for a language switch (the element carries lang=code)
export const ENDONYMS = { en: "English", ru: "Русский", fr: "Français", de: "Deutsch" };
const cache = new Map();

export async function strings(language) {
  const lang = LANGUAGES.includes(language) ? language : "en";
  if (!cache.has(lang)) {
    const [base, own] = await Promise.all([load("en"), lang === "en" ? {} : load(lang)]);
    cache.set(lang, { ...base, ...own });
  }
  const table = cache.get(lang);
  const t = (key, vars = {}) =>
    (table[key] ?? key).replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
  t.lang = lang; // the language these strings are in, for the formatters below
  return t;
}

async function load(lang) {
  const res = await fetch(`/i18n/${lang}.json`);
  return res.ok ? res.json() : {};
}

// The first of the browser's preferred languages that the client speaks, else English.
export function browserLanguage() {
  const preferred = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const tag of preferred) {
    const lang = (tag || "").slice(0, 2).toLowerCase();
    if (LANGUAGES.includes(lang)) return lang;
  }
  return "en";
}

// A language code as a name in the strings' language ("ru" -> "Russian" / "русский"):
// lang_CODE, else the console's op_lang_CODE, else the code itself.
export function languageName(t, code) {
  if (!code) return "–";
  for (const key of [`lang_${code}`, `op_lang_${code}`]) if (t(key) !== key) return t(key);
  return code;
}

// The page speaks `lang`: screen readers and the browser's hyphenation follow it.
export function setPageLanguage(lang) {
  document.documentElement.lang = LANGUAGES.includes(lang) ? lang : "en";
}

const asDate = (at) => (at instanceof Date ? at : new Date(at));
const formatters = new Map();
function formatter(lang, options) {
  const key = `${lang}|${JSON.stringify(options)}`;
  if (!formatters.has(key)) formatters.set(key, new Intl.DateTimeFormat(lang, options));
  return formatters.get(key);
}

// "15:59:14" in Russian, French and German, "3:59:14 PM" in English: a clock time, with seconds.
export function formatTime(lang, at) {
  return formatter(lang, { hour: "numeric", minute: "2-digit", second: "2-digit" })
    .format(asDate(at));
}

// "1 декабря 2026 г." / "December 1, 2026" / "1 décembre 2026" / "1. Dezember 2026"
export function formatDate(lang, at) {
  return formatter(lang, { dateStyle: "long" }).format(asDate(at));
}

// a date and a time with its zone, for facts that are read later (the press room)
export function formatDateTime(lang, at) {
  return formatter(lang, { dateStyle: "long", timeStyle: "long" }).format(asDate(at));
}

// "1 h 5 min", "4 min 2 s", "12 s" / "1 ч 5 мин": a duration in milliseconds, to the
// second under an hour, with the units of the strings `t` (the keys duration_*).
export function formatDuration(t, ms) {
  const total = Math.max(0, Math.round(ms / 1000));
  const hours = Math.floor(total / 3600), minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const n = (value) => new Intl.NumberFormat(t.lang).format(value);
  if (hours > 0) return t("duration_hm", { h: n(hours), m: n(minutes) });
  if (minutes > 0) return t("duration_ms", { m: n(minutes), s: n(seconds) });
  return t("duration_s", { s: n(seconds) });
}

// User data inside a sentence, in the language's quotation marks: «…», « … » (French,
// with no-break spaces), „…“ (German) or “…”.
const QUOTES = { ru: ["«", "»"], fr: ["«\u00a0", "\u00a0»"], de: ["„", "“"] };
export function quoted(lang, text) {
  const [open, close] = QUOTES[lang] ?? ["“", "”"];
  return `${open}${text}${close}`;
}

// Message catalogs and Intl formatting in the current locale. Every string the console shows comes
// from en.json / zh.json (same keys; a unit test keeps them in step).
import en from './en.json';
import zh from './zh.json';

const CATALOGS = { en, zh };
const INTL_LOCALES = { en: 'en-US', zh: 'zh-CN' };
const STORAGE_KEY = 'leadflow.locale';

function initialLocale() {
  try {
    const stored = localStorage.getItem(STORAGE_KEY);
    if (stored && CATALOGS[stored]) return stored;
  } catch {
    // Storage may be unavailable (privacy mode); fall back to the browser's language.
  }
  const languages = navigator.languages?.length ? navigator.languages : [navigator.language || 'en'];
  return languages.some((lang) => String(lang).toLowerCase().startsWith('zh')) ? 'zh' : 'en';
}

let current = initialLocale();
const listeners = new Set();

export const LOCALES = Object.keys(CATALOGS);

export function locale() {
  return current;
}

export function intlLocale() {
  return INTL_LOCALES[current];
}

export function setLocale(next) {
  if (!CATALOGS[next] || next === current) return;
  current = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Not persisted; the switch still applies to this page.
  }
  document.documentElement.lang = INTL_LOCALES[next];
  listeners.forEach((listener) => listener(next));
}

export function onLocaleChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The message for key with {name} placeholders filled; the key itself when a catalog lacks it. */
export function t(key, params) {
  const message = CATALOGS[current][key] ?? CATALOGS.en[key] ?? key;
  if (!params) return message;
  return message.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** A translated label for an enum-like value, falling back to the value itself. */
export function tEnum(prefix, value) {
  const key = `${prefix}.${value}`;
  return CATALOGS[current][key] ?? CATALOGS.en[key] ?? String(value ?? '');
}

// ---- Intl ----------------------------------------------------------------------------------------

export function formatNumber(value, options) {
  const number = Number(value);
  if (!Number.isFinite(number)) return '–';
  return new Intl.NumberFormat(intlLocale(), options).format(number);
}

export function formatPercent(share, digits = 0) {
  return formatNumber(share, { style: 'percent', maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** Money arrives as decimal text; Intl formats it per currency, or as a plain number without one. */
export function formatMoney(amount, currency) {
  if (amount === undefined || amount === null || amount === '') return '–';
  const number = Number(amount);
  if (!Number.isFinite(number)) return String(amount);
  if (!currency) return formatNumber(number, { maximumFractionDigits: 2 });
  try {
    return new Intl.NumberFormat(intlLocale(), { style: 'currency', currency, maximumFractionDigits: 0 }).format(number);
  } catch {
    return `${formatNumber(number, { maximumFractionDigits: 2 })} ${currency}`;
  }
}

export function formatDateTime(value) {
  if (!value) return '–';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(intlLocale(), { dateStyle: 'medium', timeStyle: 'short' }).format(date);
}

/** A YYYY-MM-DD calendar day, shown without shifting it through the local time zone. */
export function formatDay(value) {
  if (!value) return '–';
  const [y, m, d] = String(value).split('-').map(Number);
  if (!y || !m || !d) return String(value);
  return new Intl.DateTimeFormat(intlLocale(), { dateStyle: 'medium', timeZone: 'UTC' })
    .format(new Date(Date.UTC(y, m - 1, d)));
}

export function formatRelative(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return '';
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const rtf = new Intl.RelativeTimeFormat(intlLocale(), { numeric: 'auto' });
  const abs = Math.abs(seconds);
  if (abs < 60) return rtf.format(seconds, 'second');
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(seconds / 3600), 'hour');
  return rtf.format(Math.round(seconds / 86400), 'day');
}

/** A duration in seconds as the largest two units ("2 h 5 min", "2小时5分钟"). */
export function formatDuration(totalSeconds) {
  const exact = Math.max(0, Number(totalSeconds) || 0);
  // Assignment takes well under a second: show tenths there rather than a flat "0 s".
  if (exact < 10 && exact !== Math.round(exact)) {
    return t('duration.seconds', { n: formatNumber(exact, { maximumFractionDigits: exact < 1 ? 2 : 1 }) });
  }
  const seconds = Math.round(exact);
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const parts = [];
  if (d) parts.push(t('duration.days', { n: d }));
  if (h) parts.push(t('duration.hours', { n: h }));
  if (m && parts.length < 2) parts.push(t('duration.minutes', { n: m }));
  if (!d && !h && parts.length < 2) parts.push(t('duration.seconds', { n: s }));
  return parts.slice(0, 2).join(' ');
}

/** A countdown clock: H:MM:SS, with days in front when over a day. */
export function formatClock(totalSeconds) {
  const seconds = Math.max(0, Math.floor(totalSeconds));
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const clock = `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
  return d ? `${t('duration.days', { n: d })} ${clock}` : clock;
}

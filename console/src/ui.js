// Shared pieces of the pages: toasts, error messages, field violations beside inputs, SLA state.
import { html, nothing } from 'lit-html';
import { ApiError, violationsByField } from './api.js';
import { t, tEnum, formatClock } from './i18n/index.js';

export function toast(message, kind = 'info') {
  const region = document.getElementById('toasts');
  if (!region) return;
  const item = document.createElement('div');
  item.className = `toast toast-${kind}`;
  item.setAttribute('data-testid', 'toast');
  // Errors interrupt a screen reader; confirmations wait their turn (the region is polite).
  if (kind === 'error') item.setAttribute('role', 'alert');
  item.textContent = message;
  region.appendChild(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/** A sentence a user can act on for any failure; the server's own message follows when it has one. */
export function errorMessage(err) {
  if (!(err instanceof ApiError)) return t('error.unexpected', { message: err?.message || String(err) });
  const lead = t(`error.http.${err.httpStatus}`) !== `error.http.${err.httpStatus}`
    ? t(`error.http.${err.httpStatus}`) : t('error.generic');
  return err.message && err.httpStatus !== 0 ? `${lead} ${err.message}` : lead;
}

export function errorBanner(err, testid = 'error-banner') {
  if (!err) return nothing;
  return html`<div class="banner banner-error" role="alert" data-testid=${testid}>
    <p>${errorMessage(err)}</p>
    ${err instanceof ApiError && err.traceId
      ? html`<p class="muted small">${t('error.trace', { id: err.traceId })}</p>` : nothing}
  </div>`;
}

/** Field violations that no input of the form claims, listed above it. */
export function violationSummary(violations, shown = []) {
  if (!violations || violations.size === 0) return nothing;
  const rest = [...violations.entries()].filter(([field]) => !shown.some((prefix) => field === prefix));
  return html`<div class="banner banner-error" role="alert" data-testid="violation-summary">
    <p>${t('form.fixFields', { n: violations.size })}</p>
    ${rest.length ? html`<ul>${rest.map(([field, list]) => html`<li><code>${field}</code>: ${list.join('; ')}</li>`)}</ul>` : nothing}
  </div>`;
}

/** The violations for one field path (and any of its aliases), shown right under the input. */
export function fieldError(violations, ...fields) {
  const messages = fields.flatMap((field) => violations?.get(field) || []);
  if (!messages.length) return nothing;
  return html`<p class="field-error" id=${errorId(fields[0])} data-testid="field-error" data-field=${fields[0]}>
    ${messages.join('; ')}</p>`;
}

export function errorId(field) {
  return `err-${String(field).replace(/[^a-zA-Z0-9_-]/g, '_')}`;
}

export function invalid(violations, ...fields) {
  return fields.some((field) => violations?.has(field)) ? 'true' : 'false';
}

/** Run fn over items with at most `limit` calls in flight, keeping the order of items. */
export async function mapLimit(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const index = next++;
      try {
        results[index] = { ok: true, value: await fn(items[index], index) };
      } catch (error) {
        results[index] = { ok: false, error };
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Where a first-response deadline stands now: ok, warning (warn_at passed) or overdue (due_at passed). */
export function slaState(task, now = Date.now()) {
  const due = Date.parse(task?.due_at);
  if (!Number.isFinite(due)) return { state: 'none', seconds: 0 };
  const warn = Date.parse(task.warn_at);
  if (now >= due) return { state: 'overdue', seconds: (now - due) / 1000 };
  if (Number.isFinite(warn) && now >= warn) return { state: 'warning', seconds: (due - now) / 1000 };
  return { state: 'ok', seconds: (due - now) / 1000 };
}

export function countdown(task, now = Date.now()) {
  const { state, seconds } = slaState(task, now);
  if (state === 'none') return html`<span class="countdown" data-testid="sla-countdown" data-state="none">–</span>`;
  const text = state === 'overdue' ? t('sla.overdueBy', { time: formatClock(seconds) }) : formatClock(seconds);
  return html`<span class="countdown countdown-${state}" data-testid="sla-countdown" data-state=${state}
    title=${tEnum('sla.state', state)}>
    <span class="dot" aria-hidden="true"></span>${text}
    <span class="visually-hidden">${tEnum('sla.state', state)}</span></span>`;
}

export function gradeBadge(score) {
  if (!score) return html`<span class="badge badge-muted" data-testid="grade-badge" data-grade="">${t('score.none')}</span>`;
  const letter = (score.grade || '?')[0];
  return html`<span class="badge grade grade-${letter}" data-testid="grade-badge" data-grade=${score.grade}
    title=${t('score.badgeTitle', { total: score.total, grade: score.grade })}>
    <strong>${score.grade || '–'}</strong><span class="grade-total">${score.total}</span></span>`;
}

/** Comma or newline separated text as a clean list. */
export function splitList(text) {
  return String(text || '').split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
}

export function leadName(lead) {
  if (!lead) return '';
  const name = [lead.first_name, lead.last_name].filter(Boolean).join(' ');
  return name || lead.email || lead.phone_e164 || lead.lead_id;
}

export function todayUtc(offsetDays = 0) {
  const day = new Date(Date.now() + offsetDays * 86400000);
  return day.toISOString().slice(0, 10);
}

/**
 * A form's submit, written once: marks the form busy and clears its old errors, runs `work`, and on
 * failure keeps the field violations (shown next to their inputs) or, when there are none, the
 * error itself (shown as a banner). The form's state lives in `${form}Busy`, `${form}Violations`
 * and `${form}Error`.
 */
export async function submitForm(state, form, rerender, work) {
  state[`${form}Busy`] = true;
  state[`${form}Violations`] = new Map();
  state[`${form}Error`] = null;
  rerender();
  try {
    await work();
  } catch (err) {
    const violations = violationsByField(err);
    state[`${form}Violations`] = violations;
    state[`${form}Error`] = violations.size ? null : err;
  } finally {
    state[`${form}Busy`] = false;
    rerender();
  }
}

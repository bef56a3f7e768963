// "My leads": the rep's open follow-up tasks, one row per lead, soonest deadline first, with a live
// SLA countdown and the lead's score. Data: routing.ListTasks, capture.GetLead, scoring.GetLeadScore.
import { html, render, nothing } from 'lit-html';
import { rpc, rpcOrNull } from '../api.js';
import { t, tEnum, formatDateTime } from '../i18n/index.js';
import { countdown, gradeBadge, errorBanner, mapLimit, leadName, slaState } from '../ui.js';

const REFRESH_MS = 15000;

export function inboxPage(root, { me }) {
  const state = { tasks: [], leads: new Map(), scores: new Map(), nextToken: '', loading: true, error: null };
  let disposed = false;

  async function enrich(tasks) {
    // A lead's record and score do not change while it waits, so each is fetched once per visit.
    const ids = [...new Set(tasks.map((task) => task.lead_id))].filter((id) => !state.leads.has(id));
    await mapLimit(ids, 6, async (leadId) => {
      const [lead, score] = await Promise.all([
        rpcOrNull('capture', 'GetLead', { lead_id: leadId }),
        rpcOrNull('scoring', 'GetLeadScore', { lead_id: leadId }),
      ]);
      state.leads.set(leadId, lead?.lead || null);
      state.scores.set(leadId, score?.score || null);
    });
  }

  async function load({ more = false } = {}) {
    try {
      const response = await rpc('routing', 'ListTasks', {
        rep_id: me.id,
        status: 'TASK_STATUS_OPEN',
        page: { page_size: more ? 100 : Math.min(500, Math.max(100, state.tasks.length)), page_token: more ? state.nextToken : "" },
      });
      const tasks = response.tasks || [];
      state.tasks = more ? [...state.tasks, ...tasks] : tasks;
      state.nextToken = response.page?.next_page_token || '';
      state.error = null;
      await enrich(state.tasks);
    } catch (err) {
      state.error = err;
    }
    state.loading = false;
    if (!disposed) rerender();
  }

  /** One row per lead: its most urgent open task. ListTasks is already ordered by due time. */
  function rows() {
    const seen = new Map();
    for (const task of state.tasks) if (!seen.has(task.lead_id)) seen.set(task.lead_id, task);
    return [...seen.values()].sort((a, b) => Date.parse(a.due_at) - Date.parse(b.due_at));
  }

  function rerender() {
    const now = Date.now();
    const list = rows();
    const overdue = list.filter((task) => slaState(task, now).state === 'overdue').length;
    render(html`
      <div class="page-head">
        <div>
          <h1>${t('inbox.title')}</h1>
          <p class="muted" data-testid="inbox-summary">${t('inbox.summary', { n: list.length, overdue })}</p>
        </div>
        <button class="btn" data-testid="inbox-refresh" @click=${() => load()}>${t('common.refresh')}</button>
      </div>
      ${errorBanner(state.error)}
      ${state.loading ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${!state.loading && !list.length && !state.error
        ? html`<div class="empty card" data-testid="inbox-empty"><p>${t('inbox.empty')}</p></div>` : nothing}
      ${list.length ? html`
        <div class="table-wrap card">
          <table class="table" data-testid="inbox-table">
            <thead><tr>
              <th scope="col">${t('inbox.lead')}</th>
              <th scope="col">${t('inbox.company')}</th>
              <th scope="col">${t('inbox.score')}</th>
              <th scope="col">${t('inbox.task')}</th>
              <th scope="col">${t('inbox.due')}</th>
              <th scope="col">${t('inbox.countdown')}</th>
            </tr></thead>
            <tbody>
              ${list.map((task) => {
                const lead = state.leads.get(task.lead_id);
                const score = state.scores.get(task.lead_id);
                const sla = slaState(task, now).state;
                return html`<tr data-testid="inbox-row" data-lead-id=${task.lead_id} data-sla=${sla} class=${`row-${sla}`}>
                  <td><a href=${`#/leads/${encodeURIComponent(task.lead_id)}`} data-testid="inbox-lead-link">
                    ${lead ? leadName(lead) : task.lead_id}</a>
                    ${lead?.title ? html`<div class="muted small">${lead.title}</div>` : nothing}</td>
                  <td>${lead?.company || '–'}</td>
                  <td>${gradeBadge(score)}</td>
                  <td>${tEnum('task.kind', task.kind)}${task.escalation_hop ? html` <span class="badge badge-warn">${t('task.escalated', { n: task.escalation_hop })}</span>` : nothing}</td>
                  <td class="nowrap">${formatDateTime(task.due_at)}</td>
                  <td>${countdown(task, now)}</td>
                </tr>`;
              })}
            </tbody>
          </table>
        </div>
        ${state.nextToken ? html`<button class="btn" data-testid="load-more" @click=${() => load({ more: true })}>${t('common.loadMore')}</button>` : nothing}
      ` : nothing}`, root);
  }

  rerender();
  load();
  const tick = setInterval(() => !disposed && rerender(), 1000);
  const refresh = setInterval(() => !disposed && load(), REFRESH_MS);
  return {
    rerender,
    dispose() {
      disposed = true;
      clearInterval(tick);
      clearInterval(refresh);
    },
  };
}

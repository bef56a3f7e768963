// "My tasks": follow-up tasks by due time (routing.ListTasks), completed with routing.CompleteTask.
// A rep sees their own; a manager or admin may look at any rep's or at all they may see.
import { html, render, nothing } from 'lit-html';
import { rpc, rpcOrNull } from '../api.js';
import { t, tEnum, formatDateTime } from '../i18n/index.js';
import { countdown, errorBanner, toast, errorMessage, mapLimit, leadName } from '../ui.js';

const STATUSES = ['TASK_STATUS_OPEN', 'TASK_STATUS_COMPLETED', 'TASK_STATUS_REASSIGNED', 'TASK_STATUS_UNSPECIFIED'];

export function tasksPage(root, { me, query }) {
  const isRep = me.role === 'rep';
  const state = {
    status: query.get('status') || 'TASK_STATUS_OPEN',
    repId: isRep ? me.id : (query.get('rep') ?? me.id),
    tasks: [], nextToken: '', leads: new Map(), loading: true, error: null, busy: new Set(), reps: [],
  };
  let disposed = false;

  async function load({ more = false } = {}) {
    state.loading = !more;
    rerender();
    try {
      const response = await rpc('routing', 'ListTasks', {
        rep_id: state.repId, status: state.status, page: { page_size: 100, page_token: more ? state.nextToken : '' },
      });
      state.tasks = more ? [...state.tasks, ...(response.tasks || [])] : (response.tasks || []);
      state.nextToken = response.page?.next_page_token || '';
      state.error = null;
      const missing = [...new Set(state.tasks.map((task) => task.lead_id))].filter((id) => !state.leads.has(id));
      await mapLimit(missing, 6, async (id) => {
        const lead = await rpcOrNull('capture', 'GetLead', { lead_id: id }).catch(() => null);
        state.leads.set(id, lead?.lead || null);
      });
    } catch (err) {
      state.error = err;
    }
    state.loading = false;
    rerender();
  }

  async function complete(task) {
    state.busy.add(task.task_id);
    rerender();
    try {
      await rpc('routing', 'CompleteTask', { task_id: task.task_id });
      toast(t('tasks.completed'), 'success');
      await load();
    } catch (err) {
      toast(errorMessage(err), 'error');
    }
    state.busy.delete(task.task_id);
    rerender();
  }

  function rerender() {
    if (disposed) return;
    const now = Date.now();
    render(html`
      <div class="page-head">
        <h1>${t('tasks.title')}</h1>
        <div class="filters">
          <label>${t('tasks.status')}
            <select data-testid="tasks-status" @change=${(e) => { state.status = e.target.value; load(); }}>
              ${STATUSES.map((s) => html`<option value=${s} ?selected=${state.status === s}>${tEnum('task.status', s)}</option>`)}
            </select></label>
          ${isRep ? nothing : html`<label>${t('tasks.rep')}
            <select data-testid="tasks-rep" @change=${(e) => { state.repId = e.target.value; load(); }}>
              <option value="" ?selected=${state.repId === ''}>${t('common.all')}</option>
              <option value=${me.id} ?selected=${state.repId === me.id}>${t('tasks.mine')}</option>
              ${state.reps.filter((r) => r.rep_id !== me.id).map((r) => html`<option value=${r.rep_id} ?selected=${state.repId === r.rep_id}>${r.name || r.rep_id}</option>`)}
            </select></label>`}
        </div>
      </div>
      ${errorBanner(state.error)}
      ${state.loading ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${!state.loading && !state.tasks.length && !state.error ? html`<div class="empty card" data-testid="tasks-empty"><p>${t('tasks.empty')}</p></div>` : nothing}
      ${state.tasks.length ? html`<div class="table-wrap card"><table class="table" data-testid="tasks-table">
        <thead><tr>
          <th scope="col">${t('inbox.lead')}</th><th scope="col">${t('inbox.task')}</th><th scope="col">${t('tasks.rep')}</th>
          <th scope="col">${t('inbox.due')}</th><th scope="col">${t('tasks.status')}</th><th scope="col"><span class="visually-hidden">${t('tasks.actions')}</span></th>
        </tr></thead>
        <tbody>${state.tasks.map((task) => {
          const lead = state.leads.get(task.lead_id);
          const open = task.status === 'TASK_STATUS_OPEN';
          return html`<tr data-testid="task-row" data-task-id=${task.task_id} data-lead-id=${task.lead_id}>
            <td><a href=${`#/leads/${encodeURIComponent(task.lead_id)}`}>${lead ? leadName(lead) : task.lead_id}</a>
              ${lead?.company ? html`<div class="muted small">${lead.company}</div>` : nothing}</td>
            <td>${tEnum('task.kind', task.kind)}</td>
            <td>${task.rep_id}</td>
            <td class="nowrap">${formatDateTime(task.due_at)}${open ? html`<div>${countdown(task, now)}</div>` : nothing}</td>
            <td>${tEnum('task.status', task.status)}
              ${task.completed_at ? html`<div class="muted small">${formatDateTime(task.completed_at)} · ${task.completed_by === 'lead_contacted' ? t('tasks.byContact') : task.completed_by}</div>` : nothing}
              ${task.breached_at ? html`<div><span class="badge badge-danger">${t('tasks.breached')}</span></div>` : nothing}</td>
            <td>${open ? html`<button class="btn btn-sm" data-testid="task-complete" ?disabled=${state.busy.has(task.task_id)}
              @click=${() => complete(task)}>${t('tasks.complete')}</button>` : nothing}</td>
          </tr>`;
        })}</tbody></table></div>
        ${state.nextToken ? html`<button class="btn" data-testid="load-more" @click=${() => load({ more: true })}>${t('common.loadMore')}</button>` : nothing}` : nothing}`, root);
  }

  rerender();
  load();
  if (!isRep) rpc('routing', 'ListReps', { page: { page_size: 500 } }).then((r) => { state.reps = r.reps || []; rerender(); }).catch(() => {});
  const tick = setInterval(() => { if (state.status === 'TASK_STATUS_OPEN') rerender(); }, 1000);
  return { rerender, dispose() { disposed = true; clearInterval(tick); } };
}

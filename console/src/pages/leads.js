// Leads, for managers and admins: every lead they may see, searched by text, source, tag, owner and
// review flags (capture.SearchLeads), and the fallback queue of leads no rep could take
// (routing.ListFallbackQueue, with capture.GetLead for each lead's name). A row opens the lead page.
import { html, render, nothing } from 'lit-html';
import { rpc, rpcOrNull, violationsByField } from '../api.js';
import { t, formatDateTime, formatRelative } from '../i18n/index.js';
import { errorBanner, fieldError, invalid, errorId, violationSummary, mapLimit, leadName } from '../ui.js';

const PAGE_SIZE = 50;
const VIEWS = ['search', 'queue'];

function filtersFrom(query) {
  return {
    text: query.get('q') || '', source: query.get('source') || '', tag: query.get('tag') || '',
    owner: query.get('owner') || '', duplicates: query.get('dup') === '1', review: query.get('review') === '1',
  };
}

export function leadsPage(root, { query }) {
  const state = {
    view: VIEWS.includes(query.get('view')) ? query.get('view') : 'search',
    filters: filtersFrom(query), reps: [],
    leads: [], nextToken: '', loading: false, searched: false, error: null, violations: new Map(),
    queue: [], queueLeads: new Map(), queueToken: '', queueLoading: false, queueLoaded: false, queueError: null,
  };
  let disposed = false;
  let searchSeq = 0;

  function syncUrl() {
    const f = state.filters;
    const params = new URLSearchParams();
    if (state.view !== 'search') params.set('view', state.view);
    if (f.text) params.set('q', f.text);
    if (f.source) params.set('source', f.source);
    if (f.tag) params.set('tag', f.tag);
    if (f.owner) params.set('owner', f.owner);
    if (f.duplicates) params.set('dup', '1');
    if (f.review) params.set('review', '1');
    // Keep the search in the address so going back from a lead finds the same list.
    history.replaceState(null, '', `#/leads${params.toString() ? `?${params}` : ''}`);
  }

  async function search({ more = false } = {}) {
    const f = state.filters;
    // A slow answer to an older search must not replace a newer one.
    const seq = ++searchSeq;
    state.loading = true;
    if (!more) state.violations = new Map();
    syncUrl();
    rerender();
    try {
      const response = await rpc('capture', 'SearchLeads', {
        text: f.text.trim(), source: f.source.trim(), tag: f.tag.trim(), owner_id: f.owner,
        possible_duplicates_only: f.duplicates, needs_review_only: f.review,
        page: { page_size: PAGE_SIZE, page_token: more ? state.nextToken : '' },
      });
      if (seq !== searchSeq) return;
      const list = response.leads || [];
      state.leads = more ? [...state.leads, ...list] : list;
      state.nextToken = response.page?.next_page_token || '';
      state.error = null;
    } catch (err) {
      if (seq !== searchSeq) return;
      state.violations = violationsByField(err);
      state.error = state.violations.size ? null : err;
      if (!more) state.leads = [];
      state.nextToken = '';
    }
    state.loading = false;
    state.searched = true;
    rerender();
  }

  async function loadQueue({ more = false } = {}) {
    state.queueLoading = true;
    rerender();
    try {
      const response = await rpc('routing', 'ListFallbackQueue', {
        page: { page_size: PAGE_SIZE, page_token: more ? state.queueToken : '' },
      });
      const list = response.assignments || [];
      state.queue = more ? [...state.queue, ...list] : list;
      state.queueToken = response.page?.next_page_token || '';
      state.queueError = null;
      const missing = [...new Set(list.map((a) => a.lead_id))].filter((id) => !state.queueLeads.has(id));
      await mapLimit(missing, 6, async (leadId) => {
        const lead = await rpcOrNull('capture', 'GetLead', { lead_id: leadId });
        state.queueLeads.set(leadId, lead?.lead || null);
      });
    } catch (err) {
      state.queueError = err;
    }
    state.queueLoading = false;
    state.queueLoaded = true;
    rerender();
  }

  function show(view) {
    state.view = view;
    syncUrl();
    if (view === 'queue' && !state.queueLoaded) loadQueue();
    else rerender();
  }

  function submit(event) {
    event.preventDefault();
    search();
  }

  // ---- views --------------------------------------------------------------------------------------

  function searchForm() {
    const f = state.filters;
    const v = state.violations;
    const input = (key, path, label, attrs = {}) => html`<div class="field">
      <label for=${`leads-${key}`}>${t(label)}</label>
      <input id=${`leads-${key}`} data-testid=${`leads-${key}`} type=${attrs.type || 'text'} .value=${f[key]}
        placeholder=${attrs.placeholder ? t(attrs.placeholder) : nothing}
        @input=${(e) => { f[key] = e.target.value; }} aria-invalid=${invalid(v, path)} aria-describedby=${errorId(path)} />
      ${fieldError(v, path)}
    </div>`;
    return html`<form class="card search-form" data-testid="leads-search-form" role="search" @submit=${submit} novalidate>
      ${violationSummary(v, ['text', 'source', 'tag', 'owner_id'])}
      <div class="search-grid">
        ${input('text', 'text', 'leads.text', { type: 'search', placeholder: 'leads.textPlaceholder' })}
        ${input('source', 'source', 'leads.source')}
        ${input('tag', 'tag', 'leads.tag')}
        <div class="field">
          <label for="leads-owner">${t('leads.owner')}</label>
          <select id="leads-owner" data-testid="leads-owner" @change=${(e) => { f.owner = e.target.value; }}
            aria-invalid=${invalid(v, 'owner_id')} aria-describedby=${errorId('owner_id')}>
            <option value="" ?selected=${!f.owner}>${t('common.any')}</option>
            ${state.reps.map((r) => html`<option value=${r.rep_id} ?selected=${f.owner === r.rep_id}>${r.name || r.rep_id}</option>`)}
          </select>
          ${fieldError(v, 'owner_id')}
        </div>
      </div>
      <div class="search-foot">
        <label class="check"><input type="checkbox" data-testid="leads-duplicates" .checked=${f.duplicates}
          @change=${(e) => { f.duplicates = e.target.checked; }} />${t('leads.duplicatesOnly')}</label>
        <label class="check"><input type="checkbox" data-testid="leads-review" .checked=${f.review}
          @change=${(e) => { f.review = e.target.checked; }} />${t('leads.reviewOnly')}</label>
        <span class="spacer"></span>
        <button class="btn btn-primary" type="submit" data-testid="leads-search" ?disabled=${state.loading}>${t('leads.search')}</button>
      </div>
    </form>`;
  }

  function flags(lead) {
    return html`${(lead.possible_duplicate_of || []).length
      ? html` <span class="badge badge-warn" data-testid="leads-flag-duplicate">${t('leads.flagDuplicate')}</span>` : nothing}
      ${lead.needs_review ? html` <span class="badge badge-warn" data-testid="leads-flag-review">${t('leads.flagReview')}</span>` : nothing}`;
  }

  function resultsView() {
    const list = state.leads;
    return html`
      ${errorBanner(state.error)}
      ${state.loading && !list.length ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${state.searched && !state.loading && !list.length && !state.error && !state.violations.size
        ? html`<div class="empty card" data-testid="leads-empty"><p>${t('leads.empty')}</p></div>` : nothing}
      ${list.length ? html`<div class="table-wrap card">
        <table class="table" data-testid="leads-table">
          <caption class="visually-hidden">${t('leads.results')}</caption>
          <thead><tr>
            <th scope="col">${t('leads.name')}</th>
            <th scope="col">${t('lead.company')}</th>
            <th scope="col">${t('lead.source')}</th>
            <th scope="col">${t('lead.captured')}</th>
            <th scope="col">${t('lead.owner')}</th>
          </tr></thead>
          <tbody>${list.map((lead) => html`<tr data-testid="leads-row" data-lead-id=${lead.lead_id}>
            <td><a href=${`#/leads/${encodeURIComponent(lead.lead_id)}`} data-testid="leads-link">${leadName(lead)}</a>${flags(lead)}
              ${lead.email && leadName(lead) !== lead.email ? html`<div class="muted small">${lead.email}</div>` : nothing}</td>
            <td>${lead.company || '–'}</td>
            <td>${[lead.attribution?.source, lead.attribution?.campaign].filter(Boolean).join(' / ') || '–'}</td>
            <td class="nowrap"><time datetime=${lead.captured_at} title=${formatDateTime(lead.captured_at)}>${formatDateTime(lead.captured_at)}</time></td>
            <td data-testid="leads-owner-cell">${lead.owner_id || html`<span class="muted">${t('leads.unassigned')}</span>`}</td>
          </tr>`)}</tbody>
        </table>
      </div>` : nothing}
      ${state.nextToken ? html`<button class="btn" data-testid="load-more" ?disabled=${state.loading}
        @click=${() => search({ more: true })}>${t('common.loadMore')}</button>` : nothing}`;
  }

  function queueView() {
    return html`
      <div class="card-head"><p class="muted">${t('leads.queueIntro')}</p>
        <button class="btn" data-testid="queue-refresh" @click=${() => loadQueue()}>${t('common.refresh')}</button></div>
      ${errorBanner(state.queueError)}
      ${state.queueLoading && !state.queue.length ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${state.queueLoaded && !state.queueLoading && !state.queue.length && !state.queueError
        ? html`<div class="empty card" data-testid="queue-empty"><p>${t('leads.queueEmpty')}</p></div>` : nothing}
      ${state.queue.length ? html`<div class="table-wrap card">
        <table class="table" data-testid="queue-table">
          <thead><tr>
            <th scope="col">${t('leads.name')}</th>
            <th scope="col">${t('lead.company')}</th>
            <th scope="col">${t('leads.queuedSince')}</th>
            <th scope="col">${t('leads.queueWhy')}</th>
          </tr></thead>
          <tbody>${state.queue.map((a) => {
            const lead = state.queueLeads.get(a.lead_id);
            const passed = (a.considered || []).filter((c) => c.skipped_reason);
            return html`<tr data-testid="queue-row" data-lead-id=${a.lead_id}>
              <td><a href=${`#/leads/${encodeURIComponent(a.lead_id)}`} data-testid="queue-link">${lead ? leadName(lead) : a.lead_id}</a></td>
              <td>${lead?.company || '–'}</td>
              <td class="nowrap" title=${formatDateTime(a.lead_captured_at)}>${formatRelative(a.lead_captured_at)}</td>
              <td><div>${a.reason || '–'}</div>
                ${passed.length ? html`<details class="small"><summary>${t('leads.queueConsidered', { n: passed.length })}</summary>
                  <ul>${passed.map((c) => html`<li><strong>${c.rep_id}</strong>: ${c.skipped_reason}</li>`)}</ul></details>` : nothing}</td>
            </tr>`;
          })}</tbody>
        </table>
      </div>` : nothing}
      ${state.queueToken ? html`<button class="btn" data-testid="queue-load-more" @click=${() => loadQueue({ more: true })}>${t('common.loadMore')}</button>` : nothing}`;
  }

  function rerender() {
    if (disposed) return;
    render(html`
      <div class="page-head"><div><h1>${t('leads.title')}</h1><p class="muted">${t('leads.intro')}</p></div></div>
      <nav class="tabs" aria-label=${t('leads.views')}>
        ${VIEWS.map((view) => html`<a href=${view === 'search' ? '#/leads' : `#/leads?view=${view}`} data-testid=${`leads-tab-${view}`}
          aria-current=${state.view === view ? 'page' : 'false'}
          @click=${(e) => { e.preventDefault(); show(view); }}>${t(`leads.tab.${view}`)}</a>`)}
      </nav>
      ${state.view === 'search' ? html`${searchForm()}${resultsView()}` : queueView()}`, root);
  }

  rerender();
  if (state.view === 'queue') loadQueue();
  search();
  rpc('routing', 'ListReps', { page: { page_size: 500 } }).then((r) => { state.reps = r.reps || []; rerender(); }).catch(() => {});
  return { rerender, dispose() { disposed = true; } };
}

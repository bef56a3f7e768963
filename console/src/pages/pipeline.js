// Pipeline board: the open opportunities of one pipeline as cards per stage
// (opportunity.ListPipelines/GetPipeline, ListOpportunities). Dragging a card to another column asks
// opportunity.MoveOpportunityStage; when the stage's exit criteria refuse the move (FAILED_PRECONDITION
// "cannot move to X: stage: field need is empty; stage: no call logged"), the card says what is
// missing and offers inputs for the missing fields (opportunity.UpdateOpportunity), then retries.
import { html, render, nothing } from 'lit-html';
import { rpc, ApiError, violationsByField } from '../api.js';
import { t, tEnum, formatMoney, formatDay, formatNumber } from '../i18n/index.js';
import { errorBanner, toast, errorMessage, fieldError } from '../ui.js';

// Opportunity fields UpdateOpportunity sets directly; every other exit field is a qualification fact.
const DIRECT_FIELDS = ['amount', 'currency', 'close_date', 'next_step'];
const FIELD_ITEM = /field (\w+) is empty/;

/** The server's refusal as a list of what is missing, and the fields a user can fill right here. */
export function parseExitFailure(message) {
  const text = String(message || '');
  const body = text.includes(': ') && /^cannot move to /.test(text) ? text.slice(text.indexOf(': ') + 2) : text;
  const items = body.split('; ').map((s) => s.trim()).filter(Boolean);
  const fields = [...new Set(items.map((item) => item.match(FIELD_ITEM)?.[1]).filter(Boolean))];
  return { items, fields };
}

export function pipelinePage(root, { me, query, navigate }) {
  const isRep = me.role === 'rep';
  const state = {
    pipelines: [], pipelineId: query.get('pipeline') || '', pipeline: null,
    owner: isRep ? '' : (query.get('owner') || ''), reps: [],
    opportunities: [], nextToken: '', loading: true, error: null,
    cardErrors: new Map(), // opportunity_id -> { target, items, fields, values, violations, busy }
    moving: new Set(), dragOver: '',
  };
  let disposed = false;

  function syncUrl() {
    const params = new URLSearchParams();
    if (state.pipelineId) params.set('pipeline', state.pipelineId);
    if (state.owner) params.set('owner', state.owner);
    // Keep the filters in the address so a reload or a shared link shows the same board.
    history.replaceState(null, '', `#/pipeline${params.toString() ? `?${params}` : ''}`);
  }

  async function loadPipelines() {
    const response = await rpc('opportunity', 'ListPipelines', { page: { page_size: 100 } });
    state.pipelines = response.pipelines || [];
    if (!state.pipelineId || !state.pipelines.some((p) => p.pipeline_id === state.pipelineId)) {
      state.pipelineId = (state.pipelines.find((p) => p.pipeline_id === 'new-business') || state.pipelines[0])?.pipeline_id || '';
    }
  }

  async function loadBoard({ more = false } = {}) {
    if (!more) state.loading = true;
    rerender();
    try {
      if (!state.pipelines.length) await loadPipelines();
      if (!more && state.pipelineId) {
        state.pipeline = (await rpc('opportunity', 'GetPipeline', { pipeline_id: state.pipelineId })).pipeline;
      }
      const response = await rpc('opportunity', 'ListOpportunities', {
        pipeline_id: state.pipelineId, owner_id: state.owner, status: 'OPPORTUNITY_STATUS_OPEN',
        page: { page_size: 200, page_token: more ? state.nextToken : '' },
      });
      const list = response.opportunities || [];
      state.opportunities = more ? [...state.opportunities, ...list] : list;
      state.nextToken = response.page?.next_page_token || '';
      state.error = null;
    } catch (err) {
      state.error = err;
    }
    state.loading = false;
    syncUrl();
    rerender();
  }

  function replace(opportunity) {
    state.opportunities = state.opportunities.map((o) => (o.opportunity_id === opportunity.opportunity_id ? opportunity : o));
  }

  async function move(opportunityId, stageId) {
    const opportunity = state.opportunities.find((o) => o.opportunity_id === opportunityId);
    if (!opportunity || opportunity.stage_id === stageId || state.moving.has(opportunityId)) return;
    state.moving.add(opportunityId);
    state.cardErrors.delete(opportunityId);
    rerender();
    try {
      const response = await rpc('opportunity', 'MoveOpportunityStage', {
        opportunity_id: opportunityId, stage_id: stageId, expected_version: opportunity.version,
      });
      replace(response.opportunity);
      toast(t('board.moved', { name: opportunity.name, stage: stageName(stageId) }), 'success');
    } catch (err) {
      if (err instanceof ApiError && err.httpStatus === 409 && /changed meanwhile/.test(err.message)) {
        // Someone else changed it: show the board as it is now rather than a stale card.
        toast(t('board.stale'), 'error');
        await loadBoard();
      } else if (err instanceof ApiError && err.httpStatus === 409) {
        const { items, fields } = parseExitFailure(err.message);
        state.cardErrors.set(opportunityId, { target: stageId, items, fields, values: {}, violations: new Map(), busy: false });
      } else {
        state.cardErrors.set(opportunityId, { target: stageId, items: [errorMessage(err)], fields: [], values: {}, violations: new Map(), busy: false });
      }
    }
    state.moving.delete(opportunityId);
    rerender();
  }

  async function fillAndRetry(event, opportunity) {
    event.preventDefault();
    const card = state.cardErrors.get(opportunity.opportunity_id);
    card.busy = true;
    card.violations = new Map();
    rerender();
    const values = { qualification: {} };
    const mask = [];
    for (const field of card.fields) {
      const value = (card.values[field] ?? '').trim();
      if (DIRECT_FIELDS.includes(field)) {
        values[field] = value;
        mask.push(field);
      } else {
        values.qualification[field] = value;
        mask.push(`qualification.${field}`);
      }
    }
    // An amount needs its currency: ask for both when the opportunity has none yet.
    if (mask.includes('amount') && !opportunity.currency && card.values.currency) {
      values.currency = card.values.currency.trim().toUpperCase();
      mask.push('currency');
    }
    try {
      const response = await rpc('opportunity', 'UpdateOpportunity', {
        opportunity_id: opportunity.opportunity_id, expected_version: opportunity.version,
        opportunity: values, update_mask: mask,
      });
      replace(response.opportunity);
      state.cardErrors.delete(opportunity.opportunity_id);
      rerender();
      await move(opportunity.opportunity_id, card.target);
    } catch (err) {
      card.busy = false;
      card.violations = violationsByField(err);
      if (!card.violations.size) card.items = [errorMessage(err)];
      rerender();
    }
  }

  function stageName(stageId) {
    return state.pipeline?.stages?.find((s) => s.stage_id === stageId)?.name || tEnum('stage', stageId);
  }

  /** Amounts per currency; a column may mix them, and summing across currencies would be wrong. */
  function totals(list) {
    const byCurrency = new Map();
    for (const o of list) {
      if (!o.amount) continue;
      byCurrency.set(o.currency || '', (byCurrency.get(o.currency || '') || 0) + Number(o.amount));
    }
    return [...byCurrency.entries()];
  }

  function fixInput(opportunity, card, field) {
    const path = DIRECT_FIELDS.includes(field) ? `opportunity.${field}` : `opportunity.qualification.${field}`;
    const id = `fix-${opportunity.opportunity_id}-${field}`;
    const extraCurrency = field === 'amount' && !opportunity.currency;
    return html`<div class="field field-sm">
      <label for=${id}>${tEnum('oppField', field)}</label>
      <input id=${id} data-testid=${`card-fix-${field}`} type=${field === 'close_date' ? 'date' : 'text'}
        .value=${card.values[field] || ''} @input=${(e) => { card.values[field] = e.target.value; }} />
      ${fieldError(card.violations, path, field, `qualification.${field}`, `update_mask`)}
      ${extraCurrency ? html`<label for=${`${id}-cur`}>${tEnum('oppField', 'currency')}</label>
        <input id=${`${id}-cur`} data-testid="card-fix-currency" .value=${card.values.currency || ''}
          @input=${(e) => { card.values.currency = e.target.value; }} />` : nothing}
    </div>`;
  }

  function cardView(o) {
    const card = state.cardErrors.get(o.opportunity_id);
    const stages = state.pipeline?.stages || [];
    return html`<article class=${`opp-card${card ? ' has-error' : ''}${state.moving.has(o.opportunity_id) ? ' is-moving' : ''}`}
      draggable="true" data-testid="opportunity-card" data-opportunity-id=${o.opportunity_id} data-stage-id=${o.stage_id}
      aria-label=${o.name}
      @dragstart=${(e) => { e.dataTransfer.setData('text/plain', o.opportunity_id); e.dataTransfer.effectAllowed = 'move'; }}>
      <div class="opp-name">${o.name}</div>
      <div class="muted small">${o.account_name || ''}</div>
      <div class="opp-meta">
        <strong data-testid="card-amount">${o.amount ? formatMoney(o.amount, o.currency) : t('board.noAmount')}</strong>
        <span class="badge badge-muted" title=${t('board.probability')}>${formatNumber(o.probability / 100, { style: 'percent' })}</span>
      </div>
      <div class="muted small opp-foot">
        <span title=${t('board.owner')}>${o.owner_id}</span>
        ${o.close_date ? html`<span title=${t('board.closeDate')}>${formatDay(o.close_date)}</span>` : nothing}
      </div>
      <label class="move-select">
        <span class="visually-hidden">${t('board.moveTo', { name: o.name })}</span>
        <select data-testid="card-move" @change=${(e) => { const target = e.target.value; e.target.value = ''; if (target) move(o.opportunity_id, target); }}>
          <option value="">${t('board.moveToShort')}</option>
          ${stages.filter((s) => s.stage_id !== o.stage_id).map((s) => html`<option value=${s.stage_id}>${s.name}</option>`)}
        </select>
      </label>
      ${card ? html`<div class="card-error" role="alert" data-testid="card-error">
        <p><strong>${t('board.blocked', { stage: stageName(card.target) })}</strong></p>
        <ul>${card.items.map((item) => html`<li data-testid="card-error-item">${item}</li>`)}</ul>
        ${card.items.some((item) => /no \w+ logged/.test(item)) ? html`<p class="small">
          <a href=${`#/leads/${encodeURIComponent(o.lead_id)}`}>${t('board.logOnLead')}</a></p>` : nothing}
        ${card.fields.length ? html`<form class="card-fix" data-testid="card-fix" @submit=${(e) => fillAndRetry(e, o)} novalidate>
          ${card.fields.map((field) => fixInput(o, card, field))}
          <button class="btn btn-primary btn-sm" type="submit" data-testid="card-fix-submit" ?disabled=${card.busy}>${t('board.fillAndRetry')}</button>
        </form>` : nothing}
        <button class="btn btn-ghost btn-sm" @click=${() => { state.cardErrors.delete(o.opportunity_id); rerender(); }}>${t('common.dismiss')}</button>
      </div>` : nothing}
    </article>`;
  }

  function column(stage) {
    const list = state.opportunities.filter((o) => o.stage_id === stage.stage_id);
    const sums = totals(list);
    return html`<section class=${`column${state.dragOver === stage.stage_id ? ' drag-over' : ''}`}
      data-testid="board-column" data-stage-id=${stage.stage_id} aria-label=${stage.name}
      @dragover=${(e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'move'; if (state.dragOver !== stage.stage_id) { state.dragOver = stage.stage_id; rerender(); } }}
      @dragleave=${(e) => { if (!e.currentTarget.contains(e.relatedTarget)) { state.dragOver = ''; rerender(); } }}
      @drop=${(e) => { e.preventDefault(); state.dragOver = ''; move(e.dataTransfer.getData('text/plain'), stage.stage_id); }}>
      <header class="column-head">
        <h2>${stage.name}</h2>
        <span class="badge badge-muted" data-testid="column-count" data-stage-id=${stage.stage_id}>${list.length}</span>
      </header>
      <p class="column-total" data-testid="column-total" data-stage-id=${stage.stage_id}
        data-amounts=${JSON.stringify(Object.fromEntries(sums))}>
        ${sums.length ? sums.map(([currency, sum], i) => html`${i ? ' · ' : ''}${formatMoney(sum, currency)}`) : formatMoney(0, '')}
      </p>
      <p class="muted small">${t('board.stageMeta', { p: stage.probability, forecast: tEnum('forecast', stage.forecast_category) })}</p>
      <div class="column-body">${list.map(cardView)}</div>
    </section>`;
  }

  function rerender() {
    if (disposed) return;
    const stages = state.pipeline?.stages || [];
    render(html`
      <div class="page-head">
        <h1>${t('board.title')}</h1>
        <div class="filters">
          <label>${t('board.pipeline')}
            <select data-testid="board-pipeline" @change=${(e) => { state.pipelineId = e.target.value; state.cardErrors.clear(); loadBoard(); }}>
              ${state.pipelines.map((p) => html`<option value=${p.pipeline_id} ?selected=${p.pipeline_id === state.pipelineId}>${p.name}</option>`)}
            </select></label>
          ${isRep ? nothing : html`<label>${t('board.owner')}
            <select data-testid="board-owner" @change=${(e) => { state.owner = e.target.value; loadBoard(); }}>
              <option value="" ?selected=${!state.owner}>${t('common.all')}</option>
              ${state.reps.map((r) => html`<option value=${r.rep_id} ?selected=${state.owner === r.rep_id}>${r.name || r.rep_id}</option>`)}
            </select></label>`}
          <button class="btn" data-testid="board-refresh" @click=${() => loadBoard()}>${t('common.refresh')}</button>
        </div>
      </div>
      <p class="muted small">${t('board.hint')}</p>
      ${errorBanner(state.error)}
      ${state.loading ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      <div class="board" data-testid="board" style=${`--columns:${Math.max(stages.length, 1)}`}>${stages.map(column)}</div>
      ${state.nextToken ? html`<button class="btn" data-testid="load-more" @click=${() => loadBoard({ more: true })}>${t('common.loadMore')}</button>` : nothing}
    `, root);
  }

  rerender();
  loadBoard();
  if (!isRep) rpc('routing', 'ListReps', { page: { page_size: 500 } }).then((r) => { state.reps = r.reps || []; rerender(); }).catch(() => {});
  return { rerender, dispose() { disposed = true; } };
}

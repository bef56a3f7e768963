// Pipeline board: the open opportunities of one pipeline as cards per stage
// (opportunity.ListPipelines/GetPipeline, ListOpportunities). Dragging a card to another column asks
// opportunity.MoveOpportunityStage; when the stage's exit criteria refuse the move (FAILED_PRECONDITION
// "cannot move to X: stage: field need is empty; stage: no call logged"), the card says what is
// missing and offers inputs for the missing fields (opportunity.UpdateOpportunity), then retries.
// Dropping a card on "Won" or "Lost" closes it (opportunity.CloseOpportunity; a win must meet the
// current stage's exit criteria, a loss names one of the pipeline's lost reasons); the "Closed" view
// lists the pipeline's closed deals, which managers can reopen (opportunity.ReopenOpportunity).
// Each card's files (opportunity.ListAttachments, UploadAttachment, DownloadAttachment) open on the
// card, so a rep can attach the proposal a stage asks for without leaving the board.
import { html, render, nothing } from 'lit-html';
import { rpc, upload, download, saveBlob, ApiError, violationsByField } from '../api.js';
import { t, tEnum, formatMoney, formatDay, formatNumber, formatDateTime } from '../i18n/index.js';
import { errorBanner, toast, errorMessage, fieldError, invalid, errorId } from '../ui.js';

// Opportunity fields UpdateOpportunity sets directly; every other exit field is a qualification fact.
const DIRECT_FIELDS = ['amount', 'currency', 'close_date', 'next_step'];
const FIELD_ITEM = /field (\w+) is empty/;
const ATTACHMENT_ITEM = /attachment\(s\) needed/;
const WON = 'closed_won';
const LOST = 'closed_lost';
// Menu values for closing, kept apart from stage ids (which are lower-case words).
const CLOSE_WON = '@won';
const CLOSE_LOST = '@lost';
const CLOSED_PAGE = 100;

// What the server accepts as an attachment, by file extension, for browsers that give no type.
const CONTENT_TYPES = {
  pdf: 'application/pdf', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', txt: 'text/plain', csv: 'text/csv',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
};

/** The content type to declare for a file: the extension's accepted type, else what the browser says. */
export function contentTypeOf(file) {
  const extension = String(file?.name || '').split('.').pop().toLowerCase();
  return CONTENT_TYPES[extension] || file?.type || 'application/octet-stream';
}

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
    losing: new Map(), // opportunity_id -> { reason, note, violations, error, busy }: the lost form
    showClosed: query.get('closed') === '1', closed: [], closedLoading: false, closedError: null,
    reopening: new Map(), // opportunity_id -> { reason, violations, error, busy }
    files: new Map(), // opportunity_id -> { list, loading, error, busy, violations }
  };
  const mayReopen = me.role === 'manager' || me.role === 'admin';
  let disposed = false;

  function syncUrl() {
    const params = new URLSearchParams();
    if (state.pipelineId) params.set('pipeline', state.pipelineId);
    if (state.owner) params.set('owner', state.owner);
    if (state.showClosed) params.set('closed', '1');
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

  /** A drop or a menu choice: an open stage moves the card, Won and Lost close it. */
  function choose(opportunityId, target) {
    if (target === CLOSE_WON) return closeWon(opportunityId);
    if (target === CLOSE_LOST) return askLostReason(opportunityId);
    return move(opportunityId, target);
  }

  async function move(opportunityId, stageId) {
    if (stageId === WON) return closeWon(opportunityId);
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
      } else {
        refuse(opportunityId, stageId, err);
      }
    }
    state.moving.delete(opportunityId);
    rerender();
  }

  /** Show on the card why the server refused a move or a win, with inputs for what can be filled here. */
  function refuse(opportunityId, target, err) {
    if (err instanceof ApiError && err.httpStatus === 409) {
      const { items, fields } = parseExitFailure(err.message);
      state.cardErrors.set(opportunityId, { target, items, fields, values: {}, violations: new Map(), busy: false });
      // An attachment is missing: open the card's files, where one can be uploaded.
      if (items.some((item) => ATTACHMENT_ITEM.test(item))) openFiles(opportunityId, { keepOpen: true });
    } else {
      state.cardErrors.set(opportunityId, { target, items: [errorMessage(err)], fields: [], values: {}, violations: new Map(), busy: false });
    }
  }

  /** A closed deal leaves the board; the Closed view, when shown, lists it. */
  function closed(opportunity, message) {
    state.opportunities = state.opportunities.filter((o) => o.opportunity_id !== opportunity.opportunity_id);
    state.cardErrors.delete(opportunity.opportunity_id);
    state.losing.delete(opportunity.opportunity_id);
    state.files.delete(opportunity.opportunity_id);
    toast(message, 'success');
    if (state.showClosed) state.closed = [opportunity, ...state.closed.filter((o) => o.opportunity_id !== opportunity.opportunity_id)];
  }

  async function closeWon(opportunityId) {
    const opportunity = state.opportunities.find((o) => o.opportunity_id === opportunityId);
    if (!opportunity || state.moving.has(opportunityId)) return;
    state.moving.add(opportunityId);
    state.cardErrors.delete(opportunityId);
    state.losing.delete(opportunityId);
    rerender();
    try {
      const response = await rpc('opportunity', 'CloseOpportunity', {
        opportunity_id: opportunityId, won: true, expected_version: opportunity.version,
      });
      closed(response.opportunity, t('board.closedWon', { name: opportunity.name }));
    } catch (err) {
      if (err instanceof ApiError && err.httpStatus === 409 && /changed meanwhile/.test(err.message)) {
        toast(t('board.stale'), 'error');
        state.moving.delete(opportunityId);
        await loadBoard();
        return;
      }
      refuse(opportunityId, WON, err);
    }
    state.moving.delete(opportunityId);
    rerender();
  }

  function askLostReason(opportunityId) {
    if (!state.opportunities.some((o) => o.opportunity_id === opportunityId)) return;
    state.cardErrors.delete(opportunityId);
    state.losing.set(opportunityId, { reason: '', note: '', violations: new Map(), error: null, busy: false });
    rerender();
    // The form appears on the card: take the keyboard user there.
    requestAnimationFrame(() => root.querySelector(`[data-opportunity-id="${CSS.escape(opportunityId)}"] [data-testid="lost-reason"]`)?.focus());
  }

  async function closeLost(event, opportunity) {
    event.preventDefault();
    const form = state.losing.get(opportunity.opportunity_id);
    form.busy = true;
    form.violations = new Map();
    form.error = null;
    rerender();
    try {
      const response = await rpc('opportunity', 'CloseOpportunity', {
        opportunity_id: opportunity.opportunity_id, won: false, lost_reason: form.reason, note: form.note.trim(),
        expected_version: opportunity.version,
      });
      closed(response.opportunity, t('board.closedLost', { name: opportunity.name, reason: tEnum('lostReason', form.reason) }));
    } catch (err) {
      form.busy = false;
      form.violations = violationsByField(err);
      form.error = form.violations.size ? null : err;
    }
    rerender();
  }

  // ---- closed deals -------------------------------------------------------------------------------

  /** The pipeline's recently closed deals, won and lost, the latest close first. */
  async function loadClosed() {
    state.closedLoading = true;
    rerender();
    try {
      const [won, lost] = await Promise.all(['OPPORTUNITY_STATUS_WON', 'OPPORTUNITY_STATUS_LOST'].map((status) =>
        rpc('opportunity', 'ListOpportunities', {
          pipeline_id: state.pipelineId, owner_id: state.owner, status, page: { page_size: CLOSED_PAGE },
        })));
      state.closed = [...(won.opportunities || []), ...(lost.opportunities || [])]
        .sort((a, b) => (Date.parse(b.closed_at) || 0) - (Date.parse(a.closed_at) || 0));
      state.closedError = null;
    } catch (err) {
      state.closedError = err;
    }
    state.closedLoading = false;
    rerender();
  }

  function toggleClosed() {
    state.showClosed = !state.showClosed;
    syncUrl();
    if (state.showClosed) loadClosed();
    else rerender();
  }

  async function reopen(event, opportunity) {
    event.preventDefault();
    const form = state.reopening.get(opportunity.opportunity_id);
    form.busy = true;
    form.violations = new Map();
    form.error = null;
    rerender();
    try {
      const response = await rpc('opportunity', 'ReopenOpportunity', {
        opportunity_id: opportunity.opportunity_id, reason: form.reason.trim(),
      });
      const reopened = response.opportunity;
      state.reopening.delete(opportunity.opportunity_id);
      state.closed = state.closed.filter((o) => o.opportunity_id !== reopened.opportunity_id);
      if (reopened.pipeline_id === state.pipelineId && (!state.owner || reopened.owner_id === state.owner)) {
        state.opportunities = [reopened, ...state.opportunities.filter((o) => o.opportunity_id !== reopened.opportunity_id)];
      }
      toast(t('board.reopened', { name: reopened.name, stage: stageName(reopened.stage_id) }), 'success');
    } catch (err) {
      form.busy = false;
      form.violations = violationsByField(err);
      form.error = form.violations.size ? null : err;
    }
    rerender();
  }

  // ---- attachments --------------------------------------------------------------------------------

  async function loadFiles(opportunityId) {
    const files = state.files.get(opportunityId);
    if (!files) return;
    files.loading = true;
    rerender();
    try {
      const response = await rpc('opportunity', 'ListAttachments', { opportunity_id: opportunityId, page: { page_size: 100 } });
      files.list = response.attachments || [];
      files.error = null;
    } catch (err) {
      files.error = err;
    }
    files.loading = false;
    rerender();
  }

  function openFiles(opportunityId, { keepOpen = false } = {}) {
    if (state.files.has(opportunityId)) {
      if (!keepOpen) state.files.delete(opportunityId);
      rerender();
      return;
    }
    state.files.set(opportunityId, { list: [], loading: true, error: null, busy: false, violations: new Map() });
    loadFiles(opportunityId);
  }

  async function uploadFile(event, opportunity) {
    const input = event.target;
    const file = input.files?.[0];
    if (!file) return;
    const files = state.files.get(opportunity.opportunity_id);
    files.busy = true;
    files.error = null;
    files.violations = new Map();
    rerender();
    try {
      const response = await upload('opportunity', 'UploadAttachment', {
        opportunity_id: opportunity.opportunity_id, filename: file.name, content_type: contentTypeOf(file),
      }, { file });
      files.list = [response.attachment, ...files.list];
      toast(t('files.uploaded', { name: response.attachment.filename }), 'success');
      // The refusal that sent the user here may be satisfied now; it is checked again on the next move.
      const card = state.cardErrors.get(opportunity.opportunity_id);
      if (card?.items.some((item) => ATTACHMENT_ITEM.test(item))) {
        card.items = card.items.filter((item) => !ATTACHMENT_ITEM.test(item));
        if (!card.items.length) state.cardErrors.delete(opportunity.opportunity_id);
      }
    } catch (err) {
      files.violations = violationsByField(err);
      files.error = files.violations.size ? null : err;
    }
    files.busy = false;
    input.value = '';
    rerender();
  }

  async function downloadFile(attachment) {
    try {
      const { blob, filename } = await download('opportunity', 'DownloadAttachment', { attachment_id: attachment.attachment_id });
      saveBlob(blob, filename || attachment.filename);
    } catch (err) {
      toast(errorMessage(err), 'error');
    }
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
        <select data-testid="card-move" @change=${(e) => { const target = e.target.value; e.target.value = ''; if (target) choose(o.opportunity_id, target); }}>
          <option value="">${t('board.moveToShort')}</option>
          ${stages.filter((s) => s.stage_id !== o.stage_id).map((s) => html`<option value=${s.stage_id}>${s.name}</option>`)}
          <optgroup label=${t('board.close')}>
            <option value=${CLOSE_WON} data-testid="card-close-won">${t('board.closeWon')}</option>
            <option value=${CLOSE_LOST} data-testid="card-close-lost">${t('board.closeLost')}</option>
          </optgroup>
        </select>
      </label>
      <button class="btn btn-ghost btn-sm card-files-toggle" type="button" data-testid="card-files"
        aria-expanded=${state.files.has(o.opportunity_id) ? 'true' : 'false'} @click=${() => openFiles(o.opportunity_id)}>
        ${t('files.toggle')}</button>
      ${state.losing.has(o.opportunity_id) ? lostForm(o) : nothing}
      ${card ? html`<div class="card-error" role="alert" data-testid="card-error" data-target=${card.target}>
        <p><strong>${card.target === WON ? t('board.blockedWon') : t('board.blocked', { stage: stageName(card.target) })}</strong></p>
        <ul>${card.items.map((item) => html`<li data-testid="card-error-item">${item}</li>`)}</ul>
        ${card.items.some((item) => /no \w+ logged/.test(item)) ? html`<p class="small">
          <a href=${`#/leads/${encodeURIComponent(o.lead_id)}`}>${t('board.logOnLead')}</a></p>` : nothing}
        ${card.fields.length ? html`<form class="card-fix" data-testid="card-fix" @submit=${(e) => fillAndRetry(e, o)} novalidate>
          ${card.fields.map((field) => fixInput(o, card, field))}
          <button class="btn btn-primary btn-sm" type="submit" data-testid="card-fix-submit" ?disabled=${card.busy}>${t('board.fillAndRetry')}</button>
        </form>` : nothing}
        <button class="btn btn-ghost btn-sm" @click=${() => { state.cardErrors.delete(o.opportunity_id); rerender(); }}>${t('common.dismiss')}</button>
      </div>` : nothing}
      ${state.files.has(o.opportunity_id) ? filesPanel(o) : nothing}
    </article>`;
  }

  function lostForm(o) {
    const form = state.losing.get(o.opportunity_id);
    const v = form.violations;
    const reasons = state.pipeline?.lost_reasons || [];
    const id = `lost-${o.opportunity_id}`;
    return html`<form class="card-form" data-testid="lost-form" @submit=${(e) => closeLost(e, o)} novalidate>
      <p><strong>${t('board.lostTitle')}</strong></p>
      ${errorBanner(form.error, 'lost-error')}
      <div class="field field-sm">
        <label for=${`${id}-reason`}>${t('board.lostReason')}</label>
        <select id=${`${id}-reason`} data-testid="lost-reason" aria-invalid=${invalid(v, 'lost_reason')}
          aria-describedby=${errorId('lost_reason')} @change=${(e) => { form.reason = e.target.value; }}>
          <option value="" ?selected=${!form.reason}>${t('board.lostReasonPick')}</option>
          ${reasons.map((r) => html`<option value=${r} ?selected=${form.reason === r}>${tEnum('lostReason', r)}</option>`)}
        </select>
        ${fieldError(v, 'lost_reason')}
      </div>
      <div class="field field-sm">
        <label for=${`${id}-note`}>${t('board.lostNote')}</label>
        <textarea id=${`${id}-note`} data-testid="lost-note" rows="2" maxlength="2000" .value=${form.note}
          aria-invalid=${invalid(v, 'note')} aria-describedby=${errorId('note')}
          @input=${(e) => { form.note = e.target.value; }}></textarea>
        ${fieldError(v, 'note')}
      </div>
      <div class="card-form-actions">
        <button class="btn btn-primary btn-sm" type="submit" data-testid="lost-submit" ?disabled=${form.busy}>
          ${form.busy ? t('common.saving') : t('board.lostSubmit')}</button>
        <button class="btn btn-ghost btn-sm" type="button" data-testid="lost-cancel"
          @click=${() => { state.losing.delete(o.opportunity_id); rerender(); }}>${t('common.cancel')}</button>
      </div>
    </form>`;
  }

  function filesPanel(o) {
    const files = state.files.get(o.opportunity_id);
    const inputId = `files-${o.opportunity_id}`;
    return html`<div class="card-files" data-testid="card-attachments">
      <p><strong>${t('files.title')}</strong></p>
      ${errorBanner(files.error, 'files-error')}
      ${files.violations.size ? html`<div class="banner banner-error" role="alert" data-testid="files-violations">
        ${[...files.violations.values()].flat().map((m) => html`<p>${m}</p>`)}</div>` : nothing}
      ${files.loading ? html`<p class="muted small" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${!files.loading && !files.list.length && !files.error ? html`<p class="muted small" data-testid="files-empty">${t('files.empty')}</p>` : nothing}
      <ul class="file-list">
        ${files.list.map((a) => html`<li data-testid="attachment-row" data-attachment-id=${a.attachment_id}>
          <button class="link" type="button" data-testid="attachment-download" title=${t('files.download', { name: a.filename })}
            @click=${() => downloadFile(a)}>${a.filename}</button>
          <span class="muted small">${formatBytes(a.size)} · ${a.uploaded_by} · ${formatDateTime(a.uploaded_at)}</span>
        </li>`)}
      </ul>
      <label class="btn btn-sm file-pick" aria-busy=${files.busy ? 'true' : 'false'}>
        ${files.busy ? t('files.uploading') : t('files.add')}
        <input class="visually-hidden" type="file" data-testid="attachment-upload" ?disabled=${files.busy}
          aria-describedby=${`${inputId}-help`} accept=".pdf,.png,.jpg,.jpeg,.docx,.xlsx,.pptx,.txt,.csv"
          @change=${(e) => uploadFile(e, o)} /></label>
      <p class="help" id=${`${inputId}-help`}>${t('files.help')}</p>
    </div>`;
  }

  function formatBytes(size) {
    const n = Number(size) || 0;
    if (n < 1024) return t('files.bytes', { n: formatNumber(n) });
    if (n < 1024 * 1024) return t('files.kib', { n: formatNumber(n / 1024, { maximumFractionDigits: 1 }) });
    return t('files.mib', { n: formatNumber(n / 1024 / 1024, { maximumFractionDigits: 1 }) });
  }

  /** Won and Lost: drop targets next to the stage columns. */
  function closeZone(kind) {
    const target = kind === 'won' ? CLOSE_WON : CLOSE_LOST;
    return html`<section class=${`close-zone close-zone-${kind}${state.dragOver === target ? ' drag-over' : ''}`}
      data-testid=${`drop-${kind}`} aria-label=${t(`board.drop.${kind}`)}
      @dragover=${(e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'move'; if (state.dragOver !== target) { state.dragOver = target; rerender(); } }}
      @dragleave=${(e) => { if (!e.currentTarget.contains(e.relatedTarget)) { state.dragOver = ''; rerender(); } }}
      @drop=${(e) => { e.preventDefault(); state.dragOver = ''; choose(e.dataTransfer.getData('text/plain'), target); }}>
      <strong>${t(`board.drop.${kind}`)}</strong>
      <span class="muted small">${t(`board.drop.${kind}Hint`)}</span>
    </section>`;
  }

  function closedView() {
    return html`<section class="card closed-deals" data-testid="closed-list" aria-labelledby="closed-h">
      <div class="card-head"><h2 id="closed-h">${t('board.closedTitle')}</h2>
        <button class="btn btn-ghost btn-sm" data-testid="closed-refresh" @click=${() => loadClosed()}>${t('common.refresh')}</button></div>
      ${errorBanner(state.closedError, 'closed-error')}
      ${state.closedLoading ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${!state.closedLoading && !state.closed.length && !state.closedError ? html`<p class="muted" data-testid="closed-empty">${t('board.closedEmpty')}</p>` : nothing}
      ${state.closed.length ? html`<div class="table-wrap"><table class="table compact">
        <thead><tr>
          <th scope="col">${t('board.closedName')}</th>
          <th scope="col">${t('board.closedOutcome')}</th>
          <th scope="col" class="num">${t('oppField.amount')}</th>
          <th scope="col">${t('board.owner')}</th>
          <th scope="col">${t('board.closedAt')}</th>
          <th scope="col"><span class="visually-hidden">${t('board.reopen')}</span></th>
        </tr></thead>
        <tbody>${state.closed.map(closedRow)}</tbody>
      </table></div>` : nothing}
    </section>`;
  }

  function closedRow(o) {
    const won = o.status === 'OPPORTUNITY_STATUS_WON';
    const form = state.reopening.get(o.opportunity_id);
    return html`<tr data-testid="closed-row" data-opportunity-id=${o.opportunity_id} data-status=${won ? 'won' : 'lost'}>
      <td><div class="opp-name">${o.name}</div><div class="muted small">${o.account_name || ''}</div></td>
      <td><span class=${`badge ${won ? 'badge-ok' : 'badge-danger'}`}>${won ? t('board.outcomeWon') : t('board.outcomeLost')}</span>
        ${!won && o.lost_reason ? html`<div class="small" data-testid="closed-reason">${tEnum('lostReason', o.lost_reason)}</div>` : nothing}
        ${o.close_note ? html`<div class="muted small">${o.close_note}</div>` : nothing}</td>
      <td class="num">${o.amount ? formatMoney(o.amount, o.currency) : '–'}</td>
      <td>${o.owner_id}</td>
      <td class="nowrap">${formatDateTime(o.closed_at)}</td>
      <td>${!mayReopen ? nothing : form ? html`<form class="reopen-form" data-testid="reopen-form" @submit=${(e) => reopen(e, o)} novalidate>
          <label class="visually-hidden" for=${`reopen-${o.opportunity_id}`}>${t('board.reopenReason')}</label>
          <input id=${`reopen-${o.opportunity_id}`} data-testid="reopen-reason" placeholder=${t('board.reopenReason')}
            .value=${form.reason} @input=${(e) => { form.reason = e.target.value; }}
            aria-invalid=${invalid(form.violations, 'reason')} aria-describedby=${errorId('reason')} />
          ${fieldError(form.violations, 'reason')}
          ${form.error ? html`<p class="field-error">${errorMessage(form.error)}</p>` : nothing}
          <button class="btn btn-primary btn-sm" type="submit" data-testid="reopen-submit" ?disabled=${form.busy}>${t('board.reopen')}</button>
          <button class="btn btn-ghost btn-sm" type="button" @click=${() => { state.reopening.delete(o.opportunity_id); rerender(); }}>${t('common.cancel')}</button>
        </form>`
        : html`<button class="btn btn-sm" data-testid="closed-reopen"
          @click=${() => { state.reopening.set(o.opportunity_id, { reason: '', violations: new Map(), error: null, busy: false }); rerender(); }}>
          ${t('board.reopen')}</button>`}</td>
    </tr>`;
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
            <select data-testid="board-pipeline" @change=${(e) => { state.pipelineId = e.target.value; state.cardErrors.clear(); state.losing.clear(); state.files.clear(); loadBoard().then(() => state.showClosed && loadClosed()); }}>
              ${state.pipelines.map((p) => html`<option value=${p.pipeline_id} ?selected=${p.pipeline_id === state.pipelineId}>${p.name}</option>`)}
            </select></label>
          ${isRep ? nothing : html`<label>${t('board.owner')}
            <select data-testid="board-owner" @change=${(e) => { state.owner = e.target.value; loadBoard().then(() => state.showClosed && loadClosed()); }}>
              <option value="" ?selected=${!state.owner}>${t('common.all')}</option>
              ${state.reps.map((r) => html`<option value=${r.rep_id} ?selected=${state.owner === r.rep_id}>${r.name || r.rep_id}</option>`)}
            </select></label>`}
          <button class="btn" data-testid="board-refresh" @click=${() => { loadBoard(); if (state.showClosed) loadClosed(); }}>${t('common.refresh')}</button>
          <button class="btn" data-testid="board-show-closed" aria-pressed=${state.showClosed ? 'true' : 'false'}
            @click=${toggleClosed}>${t('board.showClosed')}</button>
        </div>
      </div>
      <p class="muted small">${t('board.hint')}</p>
      ${errorBanner(state.error)}
      ${state.loading ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${state.showClosed ? closedView() : nothing}
      <div class="close-zones">${closeZone('won')}${closeZone('lost')}</div>
      <div class="board" data-testid="board" style=${`--columns:${Math.max(stages.length, 1)}`}>${stages.map(column)}</div>
      ${state.nextToken ? html`<button class="btn" data-testid="load-more" @click=${() => loadBoard({ more: true })}>${t('common.loadMore')}</button>` : nothing}
    `, root);
  }

  rerender();
  loadBoard().then(() => state.showClosed && loadClosed());
  if (!isRep) rpc('routing', 'ListReps', { page: { page_size: 500 } }).then((r) => { state.reps = r.reps || []; rerender(); }).catch(() => {});
  return { rerender, dispose() { disposed = true; } };
}

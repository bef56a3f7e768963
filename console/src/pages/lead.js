// One lead: its record and score, the Lead 360 timeline (reporting.GetLeadTimeline), and the rep's
// actions on it: log a call/email/meeting/note with @mentions (opportunity.LogActivity: the first
// call, email or meeting is the first contact, which completes the SLA task), qualify
// (opportunity.QualifyLead) and convert (opportunity.ConvertLead). Managers and admins also see who
// routing gave the lead to and why (routing.GetAssignment) and can hand it to another rep, or back
// to the policy (routing.ReassignLead).
import { html, render, nothing } from 'lit-html';
import { rpc, rpcOrNull } from '../api.js';
import { t, tEnum, formatDateTime, formatNumber, formatRelative, locale } from '../i18n/index.js';
import {
  countdown, gradeBadge, errorBanner, fieldError, invalid, errorId, violationSummary, toast, errorMessage,
  leadName, splitList, submitForm,
} from '../ui.js';

const ACTIVITY_TYPES = ['ACTIVITY_TYPE_CALL', 'ACTIVITY_TYPE_EMAIL', 'ACTIVITY_TYPE_MEETING', 'ACTIVITY_TYPE_NOTE'];
// The default qualification framework (QUALIFICATION_FRAMEWORK, BANT); a server configured with
// other questions names them in its field violations, which the form then lists.
const BANT = ['budget', 'authority', 'need', 'timeline'];
const MENTION = /@([A-Za-z0-9._-]+[A-Za-z0-9_-])/g;

function blankActivity() {
  return { type: 'ACTIVITY_TYPE_CALL', subject: '', body: '', outcome: '', next_step: '', mentions: '' };
}

export function leadPage(root, { parts, me }) {
  const leadId = parts[1];
  const manages = me.role === 'manager' || me.role === 'admin';
  const state = {
    assignment: null, assignmentLoaded: false, assignmentError: null,
    reassign: { rep_id: '', reason: '' }, reassignBusy: false, reassignViolations: new Map(), reassignError: null,
    lead: null, score: null, task: null, loading: true, error: null,
    timeline: [], timelineToken: '', timelineError: null,
    reps: [], pipelines: [],
    activity: blankActivity(), activityBusy: false, activityViolations: new Map(), activityError: null,
    qualify: { outcome: 'QUALIFICATION_OUTCOME_QUALIFIED', answers: {}, reason: '', recycle_on: '' },
    qualifyBusy: false, qualifyViolations: new Map(), qualifyError: null, qualified: null,
    convert: null, convertBusy: false, convertViolations: new Map(), convertError: null, converted: null,
  };
  let disposed = false;

  async function loadTimeline({ more = false } = {}) {
    try {
      const response = await rpc('reporting', 'GetLeadTimeline', {
        lead_id: leadId, page: { page_size: 200, page_token: more ? state.timelineToken : '' },
      });
      state.timeline = more ? [...state.timeline, ...(response.entries || [])] : (response.entries || []);
      state.timelineToken = response.page?.next_page_token || '';
      state.timelineError = null;
    } catch (err) {
      state.timelineError = err;
    }
  }

  /** Reporting learns of an action through events, a moment later: poll until the entry shows up. */
  async function awaitTimeline(match, attempts = 12) {
    for (let i = 0; i < attempts && !disposed; i++) {
      await new Promise((resolve) => setTimeout(resolve, i === 0 ? 300 : 1000));
      await loadTimeline();
      rerender();
      if (state.timeline.some(match)) return true;
    }
    return false;
  }

  async function loadAssignment() {
    try {
      const response = await rpcOrNull('routing', 'GetAssignment', { lead_id: leadId });
      state.assignment = response?.assignment || null;
      state.assignmentError = null;
    } catch (err) {
      state.assignmentError = err;
    }
    state.assignmentLoaded = true;
  }

  async function loadTask() {
    const tasks = await rpcOrNull('routing', 'ListTasks', { lead_id: leadId, status: 'TASK_STATUS_OPEN', page: { page_size: 10 } });
    state.task = tasks?.tasks?.[0] || null;
  }

  async function load() {
    try {
      const [lead, score] = await Promise.all([
        rpc('capture', 'GetLead', { lead_id: leadId }),
        rpcOrNull('scoring', 'GetLeadScore', { lead_id: leadId }),
      ]);
      state.lead = lead.lead;
      state.score = score?.score || null;
      state.convert = convertDefaults(state.lead);
    } catch (err) {
      state.error = err;
    }
    state.loading = false;
    rerender();
    if (!state.lead) return;
    await Promise.all([
      loadTimeline(),
      loadTask().catch(() => {}),
      rpc('routing', 'ListReps', { page: { page_size: 500 } }).then((r) => { state.reps = r.reps || []; }).catch(() => {}),
      rpc('opportunity', 'ListPipelines', { page: { page_size: 100 } })
        .then((r) => { state.pipelines = r.pipelines || []; }).catch(() => {}),
      manages ? loadAssignment() : null,
    ]);
    if (!disposed) rerender();
  }

  function convertDefaults(lead) {
    return {
      name: [lead.company || leadName(lead), t('convert.defaultSuffix')].filter(Boolean).join(' – '),
      amount: '', currency: locale() === 'zh' ? 'CNY' : 'USD', close_date: '', pipeline_id: '',
      account_name: lead.company || '', account_domain: lead.company_domain || '',
    };
  }

  // ---- actions ----------------------------------------------------------------------------------------

  async function logActivity(event) {
    event.preventDefault();
    const a = state.activity;
    await submitForm(state, 'activity', rerender, async () => {
      const response = await rpc('opportunity', 'LogActivity', {
        lead_id: leadId, type: a.type, subject: a.subject, body: a.body, outcome: a.outcome,
        next_step: a.next_step, mentions: splitList(a.mentions).map((m) => m.replace(/^@/, '')),
      });
      const activity = response.activity;
      toast(response.first_contact ? t('activity.firstContact') : t('activity.logged'), 'success');
      state.activity = blankActivity();
      if (response.first_contact) loadTask().then(() => !disposed && rerender()).catch(() => {});
      awaitTimeline((entry) => entry.event_type === 'activity_logged' && entry.details?.activity_id === activity.activity_id);
    });
  }

  async function qualify(event) {
    event.preventDefault();
    const q = state.qualify;
    const body = { lead_id: leadId, outcome: q.outcome };
    if (q.outcome === 'QUALIFICATION_OUTCOME_QUALIFIED') body.answers = q.answers;
    if (q.outcome === 'QUALIFICATION_OUTCOME_DISQUALIFIED') body.reason = q.reason;
    if (q.outcome === 'QUALIFICATION_OUTCOME_RECYCLE') body.recycle_on = q.recycle_on;
    await submitForm(state, 'qualify', rerender, async () => {
      const response = await rpc('opportunity', 'QualifyLead', body);
      state.qualified = response;
      toast(t('qualify.done', { outcome: tEnum('qualify.outcome', response.outcome) }), 'success');
      awaitTimeline((entry) => ['lead_sales_qualified', 'lead_sales_disqualified', 'lead_recycled'].includes(entry.event_type));
    });
  }

  async function convert(event) {
    event.preventDefault();
    const c = state.convert;
    const lead = state.lead;
    await submitForm(state, 'convert', rerender, async () => {
      const response = await rpc('opportunity', 'ConvertLead', {
        lead_id: leadId,
        account: { name: c.account_name, domain: c.account_domain, industry: lead.industry, country: lead.country },
        contact: {
          first_name: lead.first_name, last_name: lead.last_name, email: lead.email, phone: lead.phone_e164,
          title: lead.title,
        },
        opportunity: {
          name: c.name, pipeline_id: c.pipeline_id, amount: c.amount.trim(), currency: c.amount.trim() ? c.currency.trim().toUpperCase() : '',
          close_date: c.close_date,
        },
      });
      state.converted = response;
      toast(response.already_converted ? t('convert.already') : t('convert.done'), 'success');
      awaitTimeline((entry) => entry.event_type === 'lead_converted');
    });
  }

  async function reassign(event) {
    event.preventDefault();
    const r = state.reassign;
    await submitForm(state, 'reassign', rerender, async () => {
      const response = await rpc('routing', 'ReassignLead', { lead_id: leadId, rep_id: r.rep_id, reason: r.reason.trim() });
      state.assignment = response.assignment;
      state.reassign = { rep_id: '', reason: '' };
      toast(state.assignment.rep_id ? t('assignment.reassigned', { rep: repLabel(state.assignment.rep_id) }) : t('assignment.queued'), 'success');
      // The lead's owner and follow-up task follow the new assignment.
      const [lead] = await Promise.all([rpcOrNull('capture', 'GetLead', { lead_id: leadId }), loadTask().catch(() => {})]);
      if (lead?.lead) state.lead = lead.lead;
    });
  }

  // ---- views --------------------------------------------------------------------------------------------

  function details(lead) {
    const rows = [
      ['lead.email', lead.email], ['lead.phone', lead.phone_e164], ['lead.company', lead.company],
      ['lead.title', lead.title], ['lead.industry', lead.industry],
      ['lead.companySize', lead.company_size ? formatNumber(lead.company_size) : ''],
      ['lead.country', [lead.country, lead.region, lead.city].filter(Boolean).join(' · ')],
      ['lead.website', lead.website],
      ['lead.source', [lead.attribution?.source, lead.attribution?.medium, lead.attribution?.campaign].filter(Boolean).join(' / ')],
      ['lead.captured', formatDateTime(lead.captured_at)], ['lead.owner', lead.owner_id],
      ['lead.tags', (lead.tags || []).join(', ')],
    ].filter(([, value]) => value);
    return html`<dl class="details" data-testid="lead-details">
      ${rows.map(([key, value]) => html`<div><dt>${t(key)}</dt><dd>${value}</dd></div>`)}
      ${Object.entries(lead.custom_fields || {}).map(([key, value]) => html`<div><dt>${key}</dt><dd>${value}</dd></div>`)}
    </dl>
    ${lead.needs_review ? html`<p class="banner banner-warn">${t('lead.needsReview')}</p>` : nothing}
    ${(lead.possible_duplicate_of || []).length ? html`<p class="banner banner-warn">${t('lead.possibleDuplicate')}
      ${lead.possible_duplicate_of.map((id) => html` <a href=${`#/leads/${id}`}>${id.slice(0, 8)}</a>`)}</p>` : nothing}`;
  }

  function scoreCard(score) {
    if (!score) return html`<p class="muted">${t('score.none')}</p>`;
    return html`<div class="score-head">
        ${gradeBadge(score)}
        <div><div class="score-total" data-testid="score-total">${score.total}<span class="muted"> / ${t('score.threshold', { n: score.threshold })}</span></div>
        <div class="muted small">${t('score.fitEngagement', { fit: score.fit, engagement: score.engagement })}
          ${score.qualified ? html` · <strong>${t('score.mql')}</strong>` : nothing}
          ${score.has_win_probability ? html` · ${t('score.winProbability', { p: formatNumber(score.win_probability, { style: 'percent' }) })}` : nothing}</div></div>
      </div>
      <ul class="reasons" data-testid="score-reasons">
        ${(score.reasons || []).map((r) => html`<li><span class=${r.points < 0 ? 'pts neg' : 'pts'}>${r.points > 0 ? '+' : ''}${r.points}</span> ${r.description}</li>`)}
      </ul>`;
  }

  function timelineEntryText(entry) {
    const d = entry.details || {};
    const extra = [];
    if (entry.event_type === 'activity_logged') {
      if (d.subject) extra.push(d.subject);
      if ((d.mentions || []).length) extra.push(d.mentions.map((m) => `@${m}`).join(' '));
    }
    return extra.join(' · ');
  }

  function timelineView() {
    return html`<section class="card" aria-labelledby="timeline-h">
      <div class="card-head"><h2 id="timeline-h">${t('timeline.title')}</h2>
        <button class="btn btn-ghost btn-sm" @click=${async () => { await loadTimeline(); rerender(); }}>${t('common.refresh')}</button></div>
      ${errorBanner(state.timelineError)}
      ${!state.timeline.length && !state.timelineError ? html`<p class="muted">${t('timeline.empty')}</p>` : nothing}
      <ol class="timeline" data-testid="timeline">
        ${state.timeline.map((entry) => html`<li class=${`tl tl-${entry.service}`} data-testid="timeline-entry" data-event-type=${entry.event_type}>
          <div class="tl-dot" aria-hidden="true"></div>
          <div class="tl-body">
            <div class="tl-title"><strong>${tEnum('event', entry.event_type)}</strong>
              <time class="muted small" datetime=${entry.occurred_at} title=${formatDateTime(entry.occurred_at)}>${formatRelative(entry.occurred_at)}</time></div>
            ${timelineEntryText(entry) ? html`<div class="tl-extra">${timelineEntryText(entry)}</div>` : nothing}
            <div class="muted small">${entry.summary}</div>
          </div></li>`)}
      </ol>
      ${state.timelineToken ? html`<button class="btn" data-testid="load-more" @click=${async () => { await loadTimeline({ more: true }); rerender(); }}>${t('common.loadMore')}</button>` : nothing}
    </section>`;
  }

  function activityForm() {
    const a = state.activity;
    const v = state.activityViolations;
    const bodyMentions = [...new Set([...a.body.matchAll(MENTION)].map((m) => m[1]))];
    const set = (key) => (e) => { state.activity[key] = e.target.value; rerender(); };
    return html`<section class="card" aria-labelledby="activity-h">
      <h2 id="activity-h">${t('activity.title')}</h2>
      <form data-testid="activity-form" @submit=${logActivity} novalidate>
        ${violationSummary(v, ['type', 'subject', 'body', 'outcome', 'next_step', 'mentions'])}
        ${errorBanner(state.activityError)}
        <fieldset class="segmented">
          <legend>${t('activity.type')}</legend>
          ${ACTIVITY_TYPES.map((type) => html`<label>
            <input type="radio" name="activity-type" value=${type} .checked=${a.type === type}
              data-testid=${`activity-type-${type.replace('ACTIVITY_TYPE_', '').toLowerCase()}`}
              @change=${() => { state.activity.type = type; rerender(); }} />
            <span>${tEnum('activity.kind', type)}</span></label>`)}
        </fieldset>
        ${fieldError(v, 'type')}
        <div class="field">
          <label for="act-subject">${t('activity.subject')}</label>
          <input id="act-subject" data-testid="activity-subject" .value=${a.subject} @input=${set('subject')}
            aria-invalid=${invalid(v, 'subject')} aria-describedby=${errorId('subject')} maxlength="200" />
          ${fieldError(v, 'subject')}
        </div>
        <div class="field">
          <label for="act-body">${t('activity.body')}</label>
          <textarea id="act-body" data-testid="activity-body" rows="4" .value=${a.body} @input=${set('body')}
            aria-invalid=${invalid(v, 'body')} aria-describedby=${`act-body-help ${errorId('body')}`}></textarea>
          <p class="help" id="act-body-help">${t('activity.bodyHelp')}</p>
          ${bodyMentions.length ? html`<p class="chips" data-testid="activity-mention-preview">${t('activity.willNotify')}
            ${bodyMentions.map((m) => html`<span class="chip">@${m}</span>`)}</p>` : nothing}
          ${fieldError(v, 'body')}
        </div>
        <div class="grid-2">
          <div class="field">
            <label for="act-outcome">${t('activity.outcome')}</label>
            <input id="act-outcome" data-testid="activity-outcome" list="outcomes" .value=${a.outcome} @input=${set('outcome')}
              aria-invalid=${invalid(v, 'outcome')} aria-describedby=${errorId('outcome')} />
            <datalist id="outcomes">${['connected', 'voicemail', 'no_answer', 'meeting_booked', 'replied'].map((o) => html`<option value=${o}></option>`)}</datalist>
            ${fieldError(v, 'outcome')}
          </div>
          <div class="field">
            <label for="act-mentions">${t('activity.mentions')}</label>
            <input id="act-mentions" data-testid="activity-mentions" list="rep-ids" .value=${a.mentions} @input=${set('mentions')}
              placeholder=${t('activity.mentionsPlaceholder')} aria-invalid=${invalid(v, 'mentions')} aria-describedby=${errorId('mentions')} />
            <datalist id="rep-ids">${state.reps.map((r) => html`<option value=${r.rep_id}>${r.name}</option>`)}</datalist>
            ${fieldError(v, 'mentions')}
          </div>
        </div>
        <div class="field">
          <label for="act-next">${t('activity.nextStep')}</label>
          <input id="act-next" data-testid="activity-next-step" .value=${a.next_step} @input=${set('next_step')}
            aria-invalid=${invalid(v, 'next_step')} aria-describedby=${errorId('next_step')} />
          ${fieldError(v, 'next_step')}
        </div>
        <button class="btn btn-primary" type="submit" data-testid="activity-submit" ?disabled=${state.activityBusy}>
          ${state.activityBusy ? t('common.saving') : t('activity.submit')}</button>
      </form>
    </section>`;
  }

  function qualifyForm() {
    const q = state.qualify;
    const v = state.qualifyViolations;
    const outcomes = ['QUALIFICATION_OUTCOME_QUALIFIED', 'QUALIFICATION_OUTCOME_DISQUALIFIED', 'QUALIFICATION_OUTCOME_RECYCLE'];
    return html`<section class="card" aria-labelledby="qualify-h">
      <h2 id="qualify-h">${t('qualify.title')}</h2>
      ${state.qualified ? html`<p class="banner banner-ok" data-testid="qualify-result" role="status">
        ${t('qualify.recorded', { outcome: tEnum('qualify.outcome', state.qualified.outcome), at: formatDateTime(state.qualified.qualified_at) })}</p>` : nothing}
      <form data-testid="qualify-form" @submit=${qualify} novalidate>
        ${violationSummary(v, ['outcome', 'reason', 'recycle_on', ...BANT.map((k) => `answers[${k}]`)])}
        ${errorBanner(state.qualifyError)}
        <fieldset class="segmented">
          <legend>${t('qualify.outcome')}</legend>
          ${outcomes.map((o) => html`<label><input type="radio" name="qualify-outcome" value=${o} .checked=${q.outcome === o}
            data-testid=${`qualify-outcome-${o.replace('QUALIFICATION_OUTCOME_', '').toLowerCase()}`}
            @change=${() => { state.qualify.outcome = o; rerender(); }} /><span>${tEnum('qualify.outcome', o)}</span></label>`)}
        </fieldset>
        ${q.outcome === 'QUALIFICATION_OUTCOME_QUALIFIED' ? html`<div class="grid-2">
          ${BANT.map((key) => html`<div class="field">
            <label for=${`q-${key}`}>${t(`qualify.${key}`)}</label>
            <input id=${`q-${key}`} data-testid=${`qualify-${key}`} .value=${q.answers[key] || ''}
              @input=${(e) => { state.qualify.answers[key] = e.target.value; }}
              aria-invalid=${invalid(v, `answers[${key}]`)} aria-describedby=${errorId(`answers[${key}]`)} />
            ${fieldError(v, `answers[${key}]`)}
          </div>`)}</div>` : nothing}
        ${q.outcome === 'QUALIFICATION_OUTCOME_DISQUALIFIED' ? html`<div class="field">
            <label for="q-reason">${t('qualify.reason')}</label>
            <input id="q-reason" data-testid="qualify-reason" .value=${q.reason} @input=${(e) => { state.qualify.reason = e.target.value; }}
              aria-invalid=${invalid(v, 'reason')} aria-describedby=${errorId('reason')} />
            ${fieldError(v, 'reason')}</div>` : nothing}
        ${q.outcome === 'QUALIFICATION_OUTCOME_RECYCLE' ? html`<div class="field">
            <label for="q-recycle">${t('qualify.recycleOn')}</label>
            <input id="q-recycle" type="date" data-testid="qualify-recycle-on" .value=${q.recycle_on}
              @input=${(e) => { state.qualify.recycle_on = e.target.value; }}
              aria-invalid=${invalid(v, 'recycle_on')} aria-describedby=${errorId('recycle_on')} />
            ${fieldError(v, 'recycle_on')}</div>` : nothing}
        <button class="btn" type="submit" data-testid="qualify-submit" ?disabled=${state.qualifyBusy}>
          ${state.qualifyBusy ? t('common.saving') : t('qualify.submit')}</button>
      </form>
    </section>`;
  }

  function convertForm() {
    const c = state.convert;
    const v = state.convertViolations;
    if (!c) return nothing;
    const done = state.converted;
    const convertedEntry = state.timeline.find((entry) => entry.event_type === 'lead_converted');
    const set = (key) => (e) => { state.convert[key] = e.target.value; };
    const input = (key, path, label, attrs = {}) => html`<div class="field">
      <label for=${`c-${key}`}>${t(label)}</label>
      <input id=${`c-${key}`} data-testid=${`convert-${key.replace(/_/g, '-')}`} type=${attrs.type || 'text'}
        inputmode=${attrs.inputmode || nothing} .value=${c[key]} @input=${set(key)}
        aria-invalid=${invalid(v, path)} aria-describedby=${errorId(path)} />
      ${fieldError(v, path)}</div>`;
    return html`<section class="card" aria-labelledby="convert-h">
      <h2 id="convert-h">${t('convert.title')}</h2>
      ${done ? html`<div class="banner banner-ok" role="status" data-testid="convert-result"
          data-opportunity-id=${done.opportunity.opportunity_id}>
          <p>${done.already_converted ? t('convert.already') : t('convert.done')}</p>
          <p><strong>${done.opportunity.name}</strong> · ${tEnum('stage', done.opportunity.stage_id)}
            · <a href=${`#/pipeline?pipeline=${encodeURIComponent(done.opportunity.pipeline_id)}`} data-testid="convert-open-pipeline">${t('convert.openPipeline')}</a></p>
        </div>` : nothing}
      ${!done && convertedEntry ? html`<p class="banner banner-ok" data-testid="lead-converted">${t('convert.alreadyBanner')}
        <a href="#/pipeline">${t('convert.openPipeline')}</a></p>` : nothing}
      ${done || convertedEntry ? nothing : html`<form data-testid="convert-form" @submit=${convert} novalidate>
        ${violationSummary(v, ['opportunity.name', 'opportunity.amount', 'opportunity.currency', 'opportunity.close_date',
          'opportunity.pipeline_id', 'account.name', 'account.domain'])}
        ${errorBanner(state.convertError)}
        ${input('name', 'opportunity.name', 'convert.name')}
        <div class="grid-2">
          ${input('amount', 'opportunity.amount', 'convert.amount', { inputmode: 'decimal' })}
          ${input('currency', 'opportunity.currency', 'convert.currency')}
        </div>
        <div class="grid-2">
          <div class="field">
            <label for="c-pipeline">${t('convert.pipeline')}</label>
            <select id="c-pipeline" data-testid="convert-pipeline" @change=${set('pipeline_id')}
              aria-invalid=${invalid(v, 'opportunity.pipeline_id')} aria-describedby=${errorId('opportunity.pipeline_id')}>
              <option value="" ?selected=${!c.pipeline_id}>${t('convert.defaultPipeline')}</option>
              ${state.pipelines.map((p) => html`<option value=${p.pipeline_id} ?selected=${c.pipeline_id === p.pipeline_id}>${p.name}</option>`)}
            </select>
            ${fieldError(v, 'opportunity.pipeline_id')}
          </div>
          ${input('close_date', 'opportunity.close_date', 'convert.closeDate', { type: 'date' })}
        </div>
        <div class="grid-2">
          ${input('account_name', 'account.name', 'convert.accountName')}
          ${input('account_domain', 'account.domain', 'convert.accountDomain')}
        </div>
        <p class="help">${t('convert.contactHelp', { name: leadName(state.lead) })}</p>
        <button class="btn btn-primary" type="submit" data-testid="convert-submit" ?disabled=${state.convertBusy}>
          ${state.convertBusy ? t('common.saving') : t('convert.submit')}</button>
      </form>`}
    </section>`;
  }

  function repLabel(repId) {
    const rep = state.reps.find((r) => r.rep_id === repId);
    return rep?.name && rep.name !== repId ? `${rep.name} (${repId})` : repId;
  }

  function assignmentCard() {
    const a = state.assignment;
    const v = state.reassignViolations;
    const r = state.reassign;
    const passed = (a?.considered || []).filter((c) => c.skipped_reason);
    return html`<section class="card" aria-labelledby="assignment-h" data-testid="assignment-card">
      <h2 id="assignment-h">${t('assignment.title')}</h2>
      ${errorBanner(state.assignmentError)}
      ${!state.assignmentLoaded ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${state.assignmentLoaded && !a && !state.assignmentError ? html`<p class="muted" data-testid="assignment-none">${t('assignment.none')}</p>` : nothing}
      ${a ? html`
        <p class="assignment-owner">${t('assignment.owner')}
          <strong data-testid="assignment-owner" data-rep-id=${a.rep_id}>${a.rep_id ? repLabel(a.rep_id) : t('assignment.inQueue')}</strong>
          ${a.team ? html`<span class="badge badge-muted">${a.team}</span>` : nothing}</p>
        <p data-testid="assignment-reason"><span class="muted">${t('assignment.why')}</span> ${a.reason || '–'}</p>
        <p class="muted small">${[a.strategy && t('assignment.strategy', { strategy: a.strategy }),
          a.rule_id && t('assignment.rule', { rule: a.rule_id }),
          a.policy_version && t('assignment.policy', { version: a.policy_version })].filter(Boolean).join(' · ')}</p>
        ${passed.length ? html`<details class="small"><summary>${t('assignment.passedOver', { n: passed.length })}</summary>
          <ul>${passed.map((c) => html`<li><strong>${c.rep_id}</strong>: ${c.skipped_reason}</li>`)}</ul></details>` : nothing}
        ${(a.history || []).length ? html`<h3 class="sub-h">${t('assignment.history')}</h3>
          <ol class="history" data-testid="assignment-history">
            ${a.history.map((h) => html`<li data-testid="assignment-history-entry" data-kind=${h.kind}>
              <strong>${tEnum('assignment.kind', h.kind)}</strong>
              ${h.rep_id ? html` → ${repLabel(h.rep_id)}` : nothing}
              <span class="muted small">· ${formatDateTime(h.at)} · ${h.by}</span>
              ${h.reason ? html`<div class="small">${h.reason}</div>` : nothing}
            </li>`)}
          </ol>` : nothing}` : nothing}
      ${state.assignmentLoaded && !state.assignmentError ? html`<form data-testid="reassign-form" @submit=${reassign} novalidate>
        <h3 class="sub-h">${t('assignment.reassign')}</h3>
        ${violationSummary(v, ['rep_id', 'reason'])}
        ${errorBanner(state.reassignError)}
        <div class="grid-2">
          <div class="field">
            <label for="reassign-rep">${t('assignment.newRep')}</label>
            <select id="reassign-rep" data-testid="reassign-rep" @change=${(e) => { state.reassign.rep_id = e.target.value; }}
              aria-invalid=${invalid(v, 'rep_id')} aria-describedby=${errorId('rep_id')}>
              <option value="" ?selected=${!r.rep_id}>${t('assignment.byPolicy')}</option>
              ${state.reps.filter((rep) => rep.rep_id !== a?.rep_id).map((rep) => html`<option value=${rep.rep_id} ?selected=${r.rep_id === rep.rep_id}>
                ${repLabel(rep.rep_id)}${rep.status === 'REP_STATUS_PAUSED' ? ` – ${t('assignment.paused')}` : ''}</option>`)}
            </select>
            ${fieldError(v, 'rep_id')}
          </div>
          <div class="field">
            <label for="reassign-reason">${t('assignment.reason')}</label>
            <input id="reassign-reason" data-testid="reassign-reason" .value=${r.reason} maxlength="500"
              @input=${(e) => { state.reassign.reason = e.target.value; }}
              aria-invalid=${invalid(v, 'reason')} aria-describedby=${errorId('reason')} />
            ${fieldError(v, 'reason')}
          </div>
        </div>
        <button class="btn" type="submit" data-testid="reassign-submit" ?disabled=${state.reassignBusy}>
          ${state.reassignBusy ? t('common.saving') : t('assignment.submit')}</button>
      </form>` : nothing}
    </section>`;
  }

  function rerender() {
    if (disposed) return;
    const lead = state.lead;
    render(html`
      <p class="crumbs">${manages ? html`<a href="#/leads">← ${t('nav.leads')}</a>` : html`<a href="#/inbox">← ${t('nav.inbox')}</a>`}</p>
      ${errorBanner(state.error)}
      ${state.loading ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${lead ? html`
        <div class="page-head lead-head" data-testid="lead-page" data-lead-id=${lead.lead_id}>
          <div>
            <h1 data-testid="lead-name">${leadName(lead)}</h1>
            <p class="muted">${[lead.title, lead.company].filter(Boolean).join(' · ')}</p>
          </div>
          <div class="head-badges">
            ${gradeBadge(state.score)}
            ${state.task ? html`<div class="sla-box"><span class="muted small">${t('lead.firstResponseDue')}</span>${countdown(state.task)}</div>`
              : html`<span class="badge badge-ok" data-testid="sla-done">${t('lead.noOpenTask')}</span>`}
          </div>
        </div>
        <div class="lead-grid">
          <div class="stack">
            <section class="card" aria-labelledby="details-h"><h2 id="details-h">${t('lead.details')}</h2>${details(lead)}</section>
            <section class="card" aria-labelledby="score-h"><h2 id="score-h">${t('score.title')}</h2>${scoreCard(state.score)}</section>
            ${manages ? assignmentCard() : nothing}
            ${timelineView()}
          </div>
          <div class="stack">
            ${activityForm()}
            ${qualifyForm()}
            ${convertForm()}
          </div>
        </div>` : nothing}`, root);
  }

  rerender();
  load();
  const tick = setInterval(() => { if (state.task) rerender(); }, 1000);
  return {
    rerender,
    dispose() {
      disposed = true;
      clearInterval(tick);
    },
  };
}

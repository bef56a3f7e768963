// Reps and teams (routing.ListReps/PutRep/SetRepAvailability, ListTeams/PutTeam): who takes leads,
// how many, when, and who hears about escalations.
import { html, render, nothing } from 'lit-html';
import { rpc } from '../api.js';
import { t, tEnum, formatNumber, formatDateTime } from '../i18n/index.js';
import { errorBanner, toast, errorMessage, fieldError, invalid, errorId, violationSummary, splitList, submitForm } from '../ui.js';

const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

function blankRep() {
  return {
    rep_id: '', name: '', email: '', team: '', status: 'REP_STATUS_ACTIVE', role: 'sdr', weight: 1, capacity: 0,
    time_zone: '', territories: '', industries: '', size_bands: '', languages: '', skills: '', hours: '', holidays: '',
  };
}

/** "mon 09:00-18:00" lines <-> the working_hours map. */
function hoursText(map) {
  return WEEKDAYS.filter((d) => map?.[d]).map((d) => `${d} ${map[d]}`).join('\n');
}
function hoursMap(text) {
  const map = {};
  for (const line of String(text || '').split('\n')) {
    const [day, range] = line.trim().split(/\s+/);
    if (day && range) map[day.toLowerCase()] = range;
  }
  return map;
}

function toEditable(rep) {
  return {
    ...blankRep(), ...rep,
    territories: (rep.territories || []).join(', '), industries: (rep.industries || []).join(', '),
    size_bands: (rep.size_bands || []).join(', '), languages: (rep.languages || []).join(', '),
    skills: (rep.skills || []).join(', '), holidays: (rep.holidays || []).join(', '), hours: hoursText(rep.working_hours),
  };
}

function toRequest(edit) {
  return {
    rep_id: edit.rep_id.trim(), name: edit.name, email: edit.email, team: edit.team.trim(), status: edit.status,
    role: edit.role, weight: Number(edit.weight) || 0, capacity: Number(edit.capacity) || 0, time_zone: edit.time_zone,
    territories: splitList(edit.territories), industries: splitList(edit.industries), size_bands: splitList(edit.size_bands),
    languages: splitList(edit.languages), skills: splitList(edit.skills), holidays: splitList(edit.holidays),
    working_hours: hoursMap(edit.hours),
  };
}

export function repsPage(root) {
  const state = {
    reps: [], repsToken: '', teams: [], loading: true, error: null,
    edit: null, editIsNew: false, repViolations: new Map(), repBusy: false, repError: null,
    team: null, teamViolations: new Map(), teamBusy: false, teamError: null, toggling: new Set(),
  };
  let disposed = false;

  async function load({ more = false } = {}) {
    try {
      const [reps, teams] = await Promise.all([
        rpc('routing', 'ListReps', { page: { page_size: 100, page_token: more ? state.repsToken : '' } }),
        more ? Promise.resolve(null) : rpc('routing', 'ListTeams', { page: { page_size: 200 } }),
      ]);
      state.reps = more ? [...state.reps, ...(reps.reps || [])] : (reps.reps || []);
      state.repsToken = reps.page?.next_page_token || '';
      if (teams) state.teams = teams.teams || [];
      state.error = null;
    } catch (err) {
      state.error = err;
    }
    state.loading = false;
    rerender();
  }

  async function toggle(rep) {
    state.toggling.add(rep.rep_id);
    rerender();
    const status = rep.status === 'REP_STATUS_PAUSED' ? 'REP_STATUS_ACTIVE' : 'REP_STATUS_PAUSED';
    try {
      const response = await rpc('routing', 'SetRepAvailability', {
        rep_id: rep.rep_id, status, away_from: rep.away_from, away_until: rep.away_until, away_note: rep.away_note || '',
      });
      state.reps = state.reps.map((r) => (r.rep_id === rep.rep_id ? response.rep : r));
      toast(t('admin.reps.statusChanged', { id: rep.rep_id, status: tEnum('repStatus', status) }), 'success');
    } catch (err) {
      toast(errorMessage(err), 'error');
    }
    state.toggling.delete(rep.rep_id);
    rerender();
  }

  async function saveRep(event) {
    event.preventDefault();
    await submitForm(state, 'rep', rerender, async () => {
      const response = await rpc('routing', 'PutRep', { rep: toRequest(state.edit) });
      toast(t('admin.reps.saved', { id: response.rep.rep_id }), 'success');
      state.edit = null;
      await load();
    });
  }

  async function saveTeam(event) {
    event.preventDefault();
    await submitForm(state, 'team', rerender, async () => {
      const team = { ...state.team, managers: splitList(state.team.managers_text) };
      delete team.managers_text;
      const response = await rpc('routing', 'PutTeam', { team });
      toast(t('admin.teams.saved', { id: response.team.team_id }), 'success');
      state.team = null;
      await load();
    });
  }

  function input(obj, violations, key, path, label, { type = 'text', help = '', readonly = false, testid } = {}) {
    const id = `${path.replace(/\W/g, '-')}`;
    return html`<div class="field">
      <label for=${id}>${t(label)}</label>
      <input id=${id} type=${type} data-testid=${testid || id} ?readonly=${readonly} .value=${String(obj[key] ?? '')}
        @input=${(e) => { obj[key] = e.target.value; }}
        aria-invalid=${invalid(violations, path)} aria-describedby=${`${errorId(path)} ${id}-help`} />
      ${help ? html`<p class="help" id=${`${id}-help`}>${t(help)}</p>` : nothing}
      ${[...violations.entries()].filter(([k]) => k === path || k.startsWith(`${path}[`)).length
        ? fieldError(violations, path, ...[...violations.keys()].filter((k) => k.startsWith(`${path}[`))) : nothing}
    </div>`;
  }

  function repForm() {
    const e = state.edit;
    const v = state.repViolations;
    const keys = ['rep_id', 'name', 'email', 'team', 'role', 'weight', 'capacity', 'time_zone', 'territories', 'industries',
      'size_bands', 'languages', 'skills', 'holidays', 'working_hours'];
    return html`<form class="card" data-testid="rep-form" @submit=${saveRep} novalidate>
      <h2>${state.editIsNew ? t('admin.reps.newTitle') : t('admin.reps.editTitle', { id: e.rep_id })}</h2>
      ${violationSummary(v, keys.map((k) => `rep.${k}`).concat([...v.keys()].filter((k) => /^rep\.\w+\[/.test(k))))}
      ${errorBanner(state.repError)}
      <div class="grid-3">
        ${input(e, v, 'rep_id', 'rep.rep_id', 'admin.reps.id', { readonly: !state.editIsNew, testid: 'rep-id' })}
        ${input(e, v, 'name', 'rep.name', 'admin.reps.name', { testid: 'rep-name' })}
        ${input(e, v, 'email', 'rep.email', 'admin.reps.email', { type: 'email', testid: 'rep-email' })}
      </div>
      <div class="grid-3">
        <div class="field"><label for="rep-team">${t('admin.reps.team')}</label>
          <input id="rep-team" list="team-ids" data-testid="rep-team" .value=${e.team} @input=${(ev) => { e.team = ev.target.value; }}
            aria-invalid=${invalid(v, 'rep.team')} aria-describedby=${errorId('rep.team')} />
          <datalist id="team-ids">${state.teams.map((team) => html`<option value=${team.team_id}>${team.name}</option>`)}</datalist>
          ${fieldError(v, 'rep.team')}</div>
        <div class="field"><label for="rep-role">${t('admin.reps.role')}</label>
          <select id="rep-role" @change=${(ev) => { e.role = ev.target.value; }} aria-invalid=${invalid(v, 'rep.role')} aria-describedby=${errorId('rep.role')}>
            ${['sdr', 'ae', 'manager'].map((r) => html`<option value=${r} ?selected=${e.role === r}>${tEnum('repRole', r)}</option>`)}
          </select>${fieldError(v, 'rep.role')}</div>
        ${input(e, v, 'time_zone', 'rep.time_zone', 'admin.reps.timeZone', { help: 'admin.reps.timeZoneHelp' })}
      </div>
      <div class="grid-3">
        ${input(e, v, 'weight', 'rep.weight', 'admin.reps.weight', { type: 'number', help: 'admin.reps.weightHelp' })}
        ${input(e, v, 'capacity', 'rep.capacity', 'admin.reps.capacity', { type: 'number', help: 'admin.reps.capacityHelp' })}
        ${input(e, v, 'holidays', 'rep.holidays', 'admin.reps.holidays', { help: 'admin.reps.listHelp' })}
      </div>
      <div class="grid-3">
        ${input(e, v, 'territories', 'rep.territories', 'admin.reps.territories', { help: 'admin.reps.listHelp' })}
        ${input(e, v, 'industries', 'rep.industries', 'admin.reps.industries', { help: 'admin.reps.listHelp' })}
        ${input(e, v, 'size_bands', 'rep.size_bands', 'admin.reps.sizeBands', { help: 'admin.reps.sizeBandsHelp' })}
      </div>
      <div class="grid-2">
        ${input(e, v, 'languages', 'rep.languages', 'admin.reps.languages', { help: 'admin.reps.listHelp' })}
        ${input(e, v, 'skills', 'rep.skills', 'admin.reps.skills', { help: 'admin.reps.listHelp' })}
      </div>
      <div class="field"><label for="rep-hours">${t('admin.reps.hours')}</label>
        <textarea id="rep-hours" rows="3" class="code" .value=${e.hours} @input=${(ev) => { e.hours = ev.target.value; }}
          aria-describedby="rep-hours-help" aria-invalid=${invalid(v, 'rep.working_hours')}></textarea>
        <p class="help" id="rep-hours-help">${t('admin.reps.hoursHelp')}</p>
        ${fieldError(v, 'rep.working_hours', ...[...v.keys()].filter((k) => k.startsWith('rep.working_hours')))}</div>
      <div class="actions">
        <button type="button" class="btn btn-ghost" @click=${() => { state.edit = null; rerender(); }}>${t('common.cancel')}</button>
        <button class="btn btn-primary" type="submit" data-testid="rep-save" ?disabled=${state.repBusy}>${t('common.save')}</button>
      </div>
    </form>`;
  }

  function teamForm() {
    const team = state.team;
    const v = state.teamViolations;
    return html`<form class="card" data-testid="team-form" @submit=${saveTeam} novalidate>
      <h2>${t('admin.teams.edit')}</h2>
      ${violationSummary(v, ['team.team_id', 'team.name', 'team.webhook_url', 'team.managers'])}
      ${errorBanner(state.teamError)}
      <div class="grid-2">
        ${input(team, v, 'team_id', 'team.team_id', 'admin.teams.id')}
        ${input(team, v, 'name', 'team.name', 'admin.teams.name')}
      </div>
      <div class="grid-2">
        ${input(team, v, 'managers_text', 'team.managers', 'admin.teams.managers', { help: 'admin.reps.listHelp' })}
        ${input(team, v, 'webhook_url', 'team.webhook_url', 'admin.teams.webhook', { type: 'url' })}
      </div>
      <div class="actions">
        <button type="button" class="btn btn-ghost" @click=${() => { state.team = null; rerender(); }}>${t('common.cancel')}</button>
        <button class="btn btn-primary" type="submit" ?disabled=${state.teamBusy}>${t('common.save')}</button>
      </div>
    </form>`;
  }

  function rerender() {
    if (disposed) return;
    render(html`
      <div class="page-head"><div><h1>${t('admin.reps.title')}</h1><p class="muted">${t('admin.reps.intro')}</p></div>
        <button class="btn btn-primary" data-testid="rep-new" @click=${() => { state.edit = toEditable(blankRep()); state.editIsNew = true; state.repViolations = new Map(); rerender(); }}>${t('admin.reps.new')}</button></div>
      ${errorBanner(state.error)}
      ${state.edit ? repForm() : nothing}
      ${state.loading ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${state.reps.length ? html`<div class="table-wrap card"><table class="table" data-testid="reps-table">
        <thead><tr><th scope="col">${t('admin.reps.id')}</th><th scope="col">${t('admin.reps.name')}</th><th scope="col">${t('admin.reps.team')}</th>
          <th scope="col">${t('admin.reps.role')}</th><th scope="col" class="num">${t('admin.reps.openLeads')}</th>
          <th scope="col">${t('admin.reps.status')}</th><th scope="col"><span class="visually-hidden">${t('tasks.actions')}</span></th></tr></thead>
        <tbody>${state.reps.map((rep) => html`<tr data-testid="rep-row" data-rep-id=${rep.rep_id}>
          <td>${rep.rep_id}</td><td>${rep.name}<div class="muted small">${rep.email}</div></td><td>${rep.team}</td>
          <td>${tEnum('repRole', rep.role || 'sdr')}</td>
          <td class="num">${formatNumber(rep.open_leads)}${rep.capacity ? html`<span class="muted"> / ${formatNumber(rep.capacity)}</span>` : nothing}</td>
          <td>${rep.status === 'REP_STATUS_PAUSED' ? html`<span class="badge badge-warn">${tEnum('repStatus', rep.status)}</span>`
            : html`<span class="badge badge-ok">${tEnum('repStatus', 'REP_STATUS_ACTIVE')}</span>`}
            ${rep.away_until && Date.parse(rep.away_until) > Date.now() ? html`<div class="muted small">${t('admin.reps.awayUntil', { at: formatDateTime(rep.away_until) })}</div>` : nothing}</td>
          <td class="nowrap">
            <button class="btn btn-sm" data-testid="rep-toggle" ?disabled=${state.toggling.has(rep.rep_id)} @click=${() => toggle(rep)}>
              ${rep.status === 'REP_STATUS_PAUSED' ? t('admin.reps.resume') : t('admin.reps.pause')}</button>
            <button class="btn btn-ghost btn-sm" @click=${() => { state.edit = toEditable(rep); state.editIsNew = false; state.repViolations = new Map(); rerender(); window.scrollTo(0, 0); }}>${t('common.edit')}</button>
          </td></tr>`)}</tbody></table></div>
        ${state.repsToken ? html`<button class="btn" data-testid="load-more" @click=${() => load({ more: true })}>${t('common.loadMore')}</button>` : nothing}` : nothing}
      <div class="page-head sub"><h2>${t('admin.teams.title')}</h2>
        <button class="btn" data-testid="team-new" @click=${() => { state.team = { team_id: '', name: '', managers_text: '', webhook_url: '' }; state.teamViolations = new Map(); rerender(); }}>${t('admin.teams.new')}</button></div>
      ${state.team ? teamForm() : nothing}
      ${state.teams.length ? html`<div class="table-wrap card"><table class="table" data-testid="teams-table">
        <thead><tr><th scope="col">${t('admin.teams.id')}</th><th scope="col">${t('admin.teams.name')}</th><th scope="col">${t('admin.teams.managers')}</th>
          <th scope="col">${t('admin.teams.webhook')}</th><th scope="col"><span class="visually-hidden">${t('tasks.actions')}</span></th></tr></thead>
        <tbody>${state.teams.map((team) => html`<tr><td>${team.team_id}</td><td>${team.name}</td><td>${(team.managers || []).join(', ') || '–'}</td>
          <td>${team.webhook_url || '–'}</td>
          <td><button class="btn btn-ghost btn-sm" @click=${() => { state.team = { ...team, managers_text: (team.managers || []).join(', ') }; state.teamViolations = new Map(); rerender(); }}>${t('common.edit')}</button></td></tr>`)}</tbody>
      </table></div>` : html`<p class="muted">${t('admin.teams.empty')}</p>`}`, root);
  }

  rerender();
  load();
  return { rerender, dispose() { disposed = true; } };
}

// Web forms (capture.ListForms/GetForm/PutForm): the list, and an editor with real inputs for the
// form's settings and a row per field; after saving, its public page, embed snippet and QR code.
import { html, render, nothing } from 'lit-html';
import { rpc, violationsByField } from '../api.js';
import { t, locale, formatDateTime } from '../i18n/index.js';
import { errorBanner, toast, fieldError, invalid, errorId, violationSummary, splitList } from '../ui.js';

const FIELD_TYPES = ['text', 'email', 'tel', 'number', 'textarea', 'select', 'checkbox', 'hidden', 'country'];
const TARGETS = ['email', 'phone', 'first_name', 'last_name', 'company', 'title', 'country', 'region', 'city',
  'address', 'website', 'industry', 'company_size'];

function defaultFields() {
  return [
    { name: 'email', type: 'email', label: t('admin.forms.default.email'), required: true },
    { name: 'first_name', type: 'text', label: t('admin.forms.default.firstName'), required: false },
    { name: 'last_name', type: 'text', label: t('admin.forms.default.lastName'), required: false },
    { name: 'company', type: 'text', label: t('admin.forms.default.company'), required: true },
    { name: 'title', type: 'text', label: t('admin.forms.default.title'), required: false },
  ];
}

function blankForm() {
  return {
    form_id: '', name: '', fields: defaultFields(), consent_text: '', consent_required: false,
    allowed_origins: [], tags: [], attribution: { source: 'web_form', medium: '', campaign: '' },
    default_region: '', language: locale(), thank_you_message: '', redirect_url: '', paused: false,
  };
}

/** The form as the editor holds it: list fields as text, every field row with all its keys. */
function toEditable(form) {
  return {
    ...blankForm(), ...form,
    attribution: { source: '', medium: '', campaign: '', ...(form.attribution || {}) },
    fields: (form.fields || []).map((f) => ({ ...f, options: (f.options || []).join(', ') })),
    allowed_origins_text: (form.allowed_origins || []).join('\n'),
    tags_text: (form.tags || []).join(', '),
  };
}

function toRequest(edit) {
  return {
    form_id: edit.form_id.trim(), name: edit.name, consent_text: edit.consent_text, consent_required: edit.consent_required,
    allowed_origins: splitList(edit.allowed_origins_text), tags: splitList(edit.tags_text),
    attribution: edit.attribution, default_region: edit.default_region, language: edit.language,
    thank_you_message: edit.thank_you_message, redirect_url: edit.redirect_url, paused: edit.paused,
    fields: edit.fields.map((f) => ({
      name: f.name, type: f.type, label: f.label, required: Boolean(f.required),
      options: splitList(f.options), pattern: f.pattern || '', max_length: Number(f.max_length) || 0,
      placeholder: f.placeholder || '', help_text: f.help_text || '', default_value: f.default_value || '',
    })),
  };
}

export function embedSnippet(form) {
  const title = String(form.name || form.form_id).replace(/"/g, '&quot;');
  return `<iframe src="${form.url}" title="${title}" style="width:100%;max-width:560px;height:760px;border:0" loading="lazy"></iframe>`;
}

export function formsPage(root, { parts, navigate }) {
  const formId = parts[2] || '';
  return formId ? formEditor(root, formId === 'new' ? '' : formId, navigate) : formList(root);
}

function formList(root) {
  const state = { forms: [], token: '', loading: true, error: null };
  let disposed = false;

  async function load({ more = false } = {}) {
    try {
      const response = await rpc('capture', 'ListForms', { page: { page_size: 50, page_token: more ? state.token : '' } });
      state.forms = more ? [...state.forms, ...(response.forms || [])] : (response.forms || []);
      state.token = response.page?.next_page_token || '';
      state.error = null;
    } catch (err) {
      state.error = err;
    }
    state.loading = false;
    rerender();
  }

  function rerender() {
    if (disposed) return;
    render(html`
      <div class="page-head"><div><h1>${t('admin.forms.title')}</h1><p class="muted">${t('admin.forms.intro')}</p></div>
        <a class="btn btn-primary" href="#/admin/forms/new" data-testid="form-new">${t('admin.forms.new')}</a></div>
      ${errorBanner(state.error)}
      ${state.loading ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${!state.loading && !state.forms.length && !state.error ? html`<div class="empty card"><p>${t('admin.forms.empty')}</p></div>` : nothing}
      ${state.forms.length ? html`<div class="table-wrap card"><table class="table" data-testid="forms-table">
        <thead><tr><th scope="col">${t('admin.forms.id')}</th><th scope="col">${t('admin.forms.name')}</th>
          <th scope="col">${t('admin.forms.version')}</th><th scope="col">${t('admin.forms.status')}</th>
          <th scope="col">${t('admin.forms.updated')}</th><th scope="col">${t('admin.forms.publicPage')}</th></tr></thead>
        <tbody>${state.forms.map((f) => html`<tr data-testid="form-row" data-form-id=${f.form_id}>
          <td><a href=${`#/admin/forms/${encodeURIComponent(f.form_id)}`}>${f.form_id}</a></td><td>${f.name}</td>
          <td>${f.version}</td>
          <td>${f.paused ? html`<span class="badge badge-warn">${t('admin.forms.paused')}</span>` : html`<span class="badge badge-ok">${t('admin.forms.active')}</span>`}</td>
          <td>${formatDateTime(f.updated_at)}</td>
          <td>${f.url ? html`<a href=${f.url} target="_blank" rel="noopener">${t('admin.forms.open')}</a>` : '–'}</td></tr>`)}</tbody>
      </table></div>` : nothing}
      ${state.token ? html`<button class="btn" data-testid="load-more" @click=${() => load({ more: true })}>${t('common.loadMore')}</button>` : nothing}`, root);
  }

  rerender();
  load();
  return { rerender, dispose() { disposed = true; } };
}

function formEditor(root, formId, navigate) {
  const state = {
    edit: toEditable(blankForm()), stored: null, loading: Boolean(formId), error: null, busy: false,
    violations: new Map(),
  };
  let disposed = false;

  async function load() {
    try {
      const response = await rpc('capture', 'GetForm', { form_id: formId });
      state.stored = response.form;
      state.edit = toEditable(response.form);
    } catch (err) {
      state.error = err;
    }
    state.loading = false;
    rerender();
  }

  async function save(event) {
    event.preventDefault();
    state.busy = true;
    state.violations = new Map();
    state.error = null;
    rerender();
    try {
      const response = await rpc('capture', 'PutForm', { form: toRequest(state.edit) });
      state.stored = response.form;
      state.edit = toEditable(response.form);
      toast(t('admin.forms.saved', { version: response.form.version }), 'success');
      if (!formId) {
        // The editor now edits the stored form; the address says which, so a reload keeps it.
        history.replaceState(null, '', `#/admin/forms/${encodeURIComponent(response.form.form_id)}`);
        formId = response.form.form_id;
      }
    } catch (err) {
      state.violations = violationsByField(err);
      state.error = state.violations.size ? null : err;
    }
    state.busy = false;
    rerender();
    if (state.violations.size) root.querySelector('[aria-invalid="true"]')?.focus();
  }

  function text(key, path, label, { type = 'text', help = '', aliases = [], readonly = false, value, onInput } = {}) {
    const id = `form-${key}`;
    const v = state.violations;
    return html`<div class="field">
      <label for=${id}>${t(label)}</label>
      <input id=${id} type=${type} data-testid=${`form-${key.replace(/_/g, '-')}`} ?readonly=${readonly}
        .value=${value ?? state.edit[key] ?? ''} @input=${onInput || ((e) => { state.edit[key] = e.target.value; })}
        aria-invalid=${invalid(v, path, ...aliases)} aria-describedby=${`${errorId(path)} ${id}-help`} />
      ${help ? html`<p class="help" id=${`${id}-help`}>${t(help)}</p>` : nothing}
      ${fieldError(state.violations, path, ...aliases)}
    </div>`;
  }

  function fieldRow(field, index) {
    const base = `form.fields[${index}]`;
    const v = state.violations;
    const rowErrors = [...v.entries()].filter(([key]) => key.startsWith(`${base}.`) &&
      ![`${base}.name`, `${base}.type`, `${base}.label`].includes(key));
    const set = (key) => (e) => { field[key] = e.target.type === 'checkbox' ? e.target.checked : e.target.value; };
    return html`<tr data-testid="form-field-row">
      <td><input aria-label=${t('admin.forms.field.name')} list="form-targets" .value=${field.name} @input=${set('name')}
        data-testid=${`form-field-name-${index}`} aria-invalid=${invalid(v, `${base}.name`)} aria-describedby=${errorId(`${base}.name`)} />
        ${fieldError(v, `${base}.name`)}</td>
      <td><select aria-label=${t('admin.forms.field.type')} @change=${set('type')} data-testid=${`form-field-type-${index}`}
        aria-invalid=${invalid(v, `${base}.type`)} aria-describedby=${errorId(`${base}.type`)}>
        ${FIELD_TYPES.map((type) => html`<option value=${type} ?selected=${field.type === type}>${type}</option>`)}</select>
        ${fieldError(v, `${base}.type`)}</td>
      <td><input aria-label=${t('admin.forms.field.label')} .value=${field.label || ''} @input=${set('label')}
        data-testid=${`form-field-label-${index}`} aria-invalid=${invalid(v, `${base}.label`)} aria-describedby=${errorId(`${base}.label`)} />
        ${fieldError(v, `${base}.label`)}</td>
      <td class="center"><input type="checkbox" aria-label=${t('admin.forms.field.required')} .checked=${Boolean(field.required)} @change=${set('required')} /></td>
      <td><input aria-label=${t('admin.forms.field.options')} .value=${field.options || ''} @input=${set('options')}
        placeholder=${t('admin.forms.field.optionsPlaceholder')} ?disabled=${field.type !== 'select'} />
        ${rowErrors.map(([key, list]) => html`<p class="field-error" data-testid="field-error" data-field=${key}>${key.slice(base.length + 1)}: ${list.join('; ')}</p>`)}</td>
      <td><button type="button" class="btn btn-ghost btn-sm" aria-label=${t('admin.forms.field.remove', { n: index + 1 })}
        @click=${() => { state.edit.fields.splice(index, 1); rerender(); }}>✕</button></td>
    </tr>`;
  }

  function publishing(form) {
    if (!form) return nothing;
    return html`<section class="card" aria-labelledby="publish-h" data-testid="form-publishing">
      <h2 id="publish-h">${t('admin.forms.publishing')}</h2>
      ${form.url ? html`
        <div class="publish-grid">
          <div>
            <p><strong>${t('admin.forms.publicPage')}</strong><br />
              <a href=${form.url} target="_blank" rel="noopener" data-testid="form-url">${form.url}</a></p>
            <label for="embed">${t('admin.forms.embed')}</label>
            <textarea id="embed" class="code" rows="4" readonly data-testid="form-embed" .value=${embedSnippet(form)}></textarea>
            <button class="btn btn-sm" type="button" @click=${async () => {
              try { await navigator.clipboard.writeText(embedSnippet(form)); toast(t('common.copied'), 'success'); } catch { toast(t('common.copyFailed'), 'error'); }
            }}>${t('common.copy')}</button>
            <p class="help">${t('admin.forms.embedHelp')}</p>
          </div>
          <figure class="qr">
            ${form.qr_url ? html`<img src=${form.qr_url} alt=${t('admin.forms.qrAlt', { name: form.name })} width="180" height="180" data-testid="form-qr" />
              <figcaption><a href=${form.qr_url} target="_blank" rel="noopener" data-testid="form-qr-url">${t('admin.forms.qrDownload')}</a></figcaption>` : nothing}
          </figure>
        </div>` : html`<p class="muted" data-testid="form-no-url">${t('admin.forms.noUrl', { key: form.public_key })}</p>`}
    </section>`;
  }

  function rerender() {
    if (disposed) return;
    const e = state.edit;
    const v = state.violations;
    const shown = ['form.form_id', 'form.name', 'form.consent_text', 'form.source', 'form.attribution.source', 'form.medium',
      'form.attribution.medium', 'form.campaign', 'form.attribution.campaign', 'form.default_region', 'form.language',
      'form.thank_you_message', 'form.redirect_url', 'form.fields',
      ...[...v.keys()].filter((k) => /^form\.(fields\[\d+\]|allowed_origins|tags)/.test(k))];
    render(html`
      <p class="crumbs"><a href="#/admin/forms">← ${t('admin.forms.title')}</a></p>
      <div class="page-head"><div><h1>${formId ? t('admin.forms.editTitle', { id: formId }) : t('admin.forms.newTitle')}</h1>
        ${state.stored ? html`<p class="muted">${t('admin.forms.versionLine', { version: state.stored.version, at: formatDateTime(state.stored.updated_at) })}</p>` : nothing}</div></div>
      ${errorBanner(state.error)}
      ${state.loading ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : html`
      ${publishing(state.stored)}
      <form class="card" data-testid="form-editor" @submit=${save} novalidate>
        ${violationSummary(v, shown)}
        <div class="grid-2">
          ${text('form_id', 'form.form_id', 'admin.forms.id', { help: 'admin.forms.idHelp', readonly: Boolean(formId) })}
          ${text('name', 'form.name', 'admin.forms.name')}
        </div>
        <fieldset><legend>${t('admin.forms.fields')}</legend>
          ${fieldError(v, 'form.fields')}
          <div class="table-wrap"><table class="table compact fields-table">
            <thead><tr><th scope="col">${t('admin.forms.field.name')}</th><th scope="col">${t('admin.forms.field.type')}</th>
              <th scope="col">${t('admin.forms.field.label')}</th><th scope="col">${t('admin.forms.field.required')}</th>
              <th scope="col">${t('admin.forms.field.options')}</th><th scope="col"><span class="visually-hidden">${t('tasks.actions')}</span></th></tr></thead>
            <tbody>${e.fields.map(fieldRow)}</tbody></table></div>
          <datalist id="form-targets">${TARGETS.map((name) => html`<option value=${name}></option>`)}<option value="custom."></option></datalist>
          <button type="button" class="btn btn-sm" data-testid="form-add-field"
            @click=${() => { state.edit.fields.push({ name: '', type: 'text', label: '', required: false, options: '' }); rerender(); }}>${t('admin.forms.addField')}</button>
          <p class="help">${t('admin.forms.fieldsHelp')}</p>
        </fieldset>
        <fieldset><legend>${t('admin.forms.attribution')}</legend>
          <div class="grid-3">
            ${text('source', 'form.source', 'admin.forms.source', { aliases: ['form.attribution.source'], value: e.attribution.source, onInput: (ev) => { e.attribution.source = ev.target.value; } })}
            ${text('medium', 'form.medium', 'admin.forms.medium', { aliases: ['form.attribution.medium'], value: e.attribution.medium, onInput: (ev) => { e.attribution.medium = ev.target.value; } })}
            ${text('campaign', 'form.campaign', 'admin.forms.campaign', { aliases: ['form.attribution.campaign'], value: e.attribution.campaign, onInput: (ev) => { e.attribution.campaign = ev.target.value; } })}
          </div>
          <div class="grid-2">
            ${text('tags_text', 'form.tags', 'admin.forms.tags', { help: 'admin.forms.tagsHelp' })}
            ${text('default_region', 'form.default_region', 'admin.forms.defaultRegion', { help: 'admin.forms.defaultRegionHelp' })}
          </div>
        </fieldset>
        <fieldset><legend>${t('admin.forms.consentAndAfter')}</legend>
          <div class="field">
            <label for="form-consent">${t('admin.forms.consentText')}</label>
            <textarea id="form-consent" rows="2" data-testid="form-consent-text" .value=${e.consent_text}
              @input=${(ev) => { e.consent_text = ev.target.value; }} aria-invalid=${invalid(v, 'form.consent_text')} aria-describedby=${errorId('form.consent_text')}></textarea>
            ${fieldError(v, 'form.consent_text')}
          </div>
          <label class="check"><input type="checkbox" .checked=${e.consent_required} @change=${(ev) => { e.consent_required = ev.target.checked; }} /> ${t('admin.forms.consentRequired')}</label>
          <div class="grid-2">
            <div class="field"><label for="form-language">${t('admin.forms.language')}</label>
              <select id="form-language" data-testid="form-language" @change=${(ev) => { e.language = ev.target.value; }}
                aria-invalid=${invalid(v, 'form.language')} aria-describedby=${errorId('form.language')}>
                ${['en', 'zh'].map((code) => html`<option value=${code} ?selected=${e.language === code}>${t(`language.${code}`)}</option>`)}
              </select>${fieldError(v, 'form.language')}</div>
            ${text('redirect_url', 'form.redirect_url', 'admin.forms.redirectUrl', { type: 'url' })}
          </div>
          <div class="field"><label for="form-thanks">${t('admin.forms.thankYou')}</label>
            <textarea id="form-thanks" rows="2" .value=${e.thank_you_message} @input=${(ev) => { e.thank_you_message = ev.target.value; }}
              aria-invalid=${invalid(v, 'form.thank_you_message')} aria-describedby=${errorId('form.thank_you_message')}></textarea>
            ${fieldError(v, 'form.thank_you_message')}</div>
          <div class="field"><label for="form-origins">${t('admin.forms.allowedOrigins')}</label>
            <textarea id="form-origins" rows="2" data-testid="form-allowed-origins" .value=${e.allowed_origins_text}
              @input=${(ev) => { e.allowed_origins_text = ev.target.value; }} aria-describedby="form-origins-help"></textarea>
            <p class="help" id="form-origins-help">${t('admin.forms.allowedOriginsHelp')}</p>
            ${[...v.entries()].filter(([k]) => k.startsWith('form.allowed_origins')).map(([k, list]) => html`<p class="field-error" data-testid="field-error" data-field=${k}>${list.join('; ')}</p>`)}
          </div>
          <label class="check"><input type="checkbox" data-testid="form-paused" .checked=${e.paused} @change=${(ev) => { e.paused = ev.target.checked; }} /> ${t('admin.forms.pausedLabel')}</label>
        </fieldset>
        <div class="actions">
          <button class="btn btn-primary" type="submit" data-testid="form-save" ?disabled=${state.busy}>${state.busy ? t('common.saving') : t('common.save')}</button>
        </div>
      </form>`}`, root);
  }

  rerender();
  if (formId) load();
  return { rerender, dispose() { disposed = true; } };
}

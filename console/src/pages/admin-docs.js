// A JSON document editor for the versioned configuration documents (scoring model, routing policy,
// pipelines): load the live version, edit, validate (validate_only), apply, and browse versions.
import { html, render, nothing } from 'lit-html';
import { rpc, violationsByField } from '../api.js';
import { t, formatDateTime } from '../i18n/index.js';
import { errorBanner, toast, errorMessage } from '../ui.js';

const NEW_PIPELINE = {
  id: 'new-pipeline', name: 'New pipeline', allow_skip: false, allow_backward: true,
  stages: [
    { id: 'qualification', name: 'Qualification', probability: 10, forecast: 'pipeline' },
    { id: 'proposal', name: 'Proposal', probability: 50, forecast: 'best_case' },
  ],
  lost_reasons: ['price', 'timing', 'competitor', 'other'],
};

export function docEditorPage(config) {
  return function page(root) {
    const state = {
      key: '', keys: [], // pipeline ids when config.multi
      loaded: null, text: '', versions: [], versionsToken: '', options: {},
      busy: false, error: null, violations: new Map(), parseError: '', validated: null, loading: true,
    };
    let disposed = false;

    async function loadKeys() {
      const response = await rpc('opportunity', 'ListPipelines', { page: { page_size: 100 } });
      state.keys = response.pipelines || [];
      if (!state.key) state.key = state.keys[0]?.pipeline_id || '';
    }

    async function loadVersion(number = 0) {
      const { method, body, pick } = config.get(number, state.key);
      const doc = pick(await rpc(config.service, method, body));
      state.loaded = doc;
      state.text = JSON.stringify(doc?.definition || {}, null, 2);
      state.violations = new Map();
      state.parseError = '';
      state.validated = null;
    }

    async function loadVersions({ more = false } = {}) {
      if (config.multi) {
        const live = state.keys.find((p) => p.pipeline_id === state.key);
        const newest = live?.version || 0;
        state.versions = Array.from({ length: newest }, (_, i) => ({
          pipeline_id: state.key, version: newest - i, live: i === 0,
          created_at: i === 0 ? live.created_at : '', created_by: i === 0 ? live.created_by : '',
        }));
        return;
      }
      const response = await rpc(config.service, config.list.method, { page: { page_size: 20, page_token: more ? state.versionsToken : '' } });
      const list = config.list.pick(response);
      state.versions = more ? [...state.versions, ...list] : list;
      state.versionsToken = response.page?.next_page_token || '';
    }

    async function load() {
      state.loading = true;
      rerender();
      try {
        if (config.multi) await loadKeys();
        if (!config.multi || state.key) await loadVersion(0);
        await loadVersions();
        state.error = null;
      } catch (err) {
        state.error = err;
      }
      state.loading = false;
      rerender();
    }

    function parsed() {
      try {
        const value = JSON.parse(state.text);
        if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error(t('admin.doc.notObject'));
        state.parseError = '';
        return value;
      } catch (err) {
        state.parseError = t('admin.doc.badJson', { message: err.message });
        return null;
      }
    }

    async function submit(validateOnly) {
      const definition = parsed();
      state.violations = new Map();
      state.validated = null;
      if (!definition) return rerender();
      state.busy = true;
      rerender();
      try {
        const body = { definition, validate_only: validateOnly };
        for (const option of config.options) if (!validateOnly) body[option.key] = Boolean(state.options[option.key]);
        const response = await rpc(config.service, config.put.method, body);
        if (validateOnly) {
          state.validated = true;
          toast(t('admin.doc.valid'), 'success');
        } else {
          const stored = config.put.pick(response);
          toast(t('admin.doc.applied', { version: config.versionLabel(stored) }), 'success');
          if (config.multi) state.key = stored.pipeline_id;
          if (config.multi) await loadKeys();
          await loadVersion(0);
          await loadVersions();
        }
        state.error = null;
      } catch (err) {
        state.violations = violationsByField(err);
        state.error = state.violations.size ? null : err;
      }
      state.busy = false;
      rerender();
    }

    async function openVersion(number) {
      try {
        await loadVersion(number);
      } catch (err) {
        toast(errorMessage(err), 'error');
      }
      rerender();
    }

    function rerender() {
      if (disposed) return;
      const loaded = state.loaded;
      const violations = [...state.violations.entries()];
      render(html`
        <div class="page-head"><div><h1>${t(config.title)}</h1><p class="muted">${t(config.intro)}</p></div>
          ${config.multi ? html`<div class="filters"><label>${t('admin.pipelines.choose')}
            <select data-testid="admin-pipeline-select" @change=${async (e) => {
              if (e.target.value === '__new') {
                state.key = '';
                state.loaded = { definition: NEW_PIPELINE, version: 0 };
                state.text = JSON.stringify(NEW_PIPELINE, null, 2);
                state.versions = [];
                return rerender();
              }
              state.key = e.target.value; await loadVersion(0); await loadVersions(); rerender();
            }}>
              ${state.keys.map((p) => html`<option value=${p.pipeline_id} ?selected=${state.key === p.pipeline_id}>${p.name} (${p.pipeline_id})</option>`)}
              <option value="__new" ?selected=${!state.key && !state.loading}>${t('admin.pipelines.new')}</option>
            </select></label></div>` : nothing}
        </div>
        ${errorBanner(state.error)}
        ${state.loading ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
        <div class="doc-layout">
          <section class="card" aria-labelledby=${`${config.id}-doc-h`}>
            <div class="card-head"><h2 id=${`${config.id}-doc-h`}>${t('admin.doc.document')}</h2>
              ${loaded ? html`<span class="muted small" data-testid="doc-version">${t('admin.doc.showing', { version: config.versionLabel(loaded) || '–' })}
                ${loaded.live ? html` <span class="badge badge-ok">${t('admin.doc.live')}</span>` : nothing}</span>` : nothing}</div>
            <label class="visually-hidden" for=${`${config.id}-json`}>${t('admin.doc.jsonLabel')}</label>
            <textarea id=${`${config.id}-json`} class="code" rows="26" spellcheck="false" data-testid="doc-json"
              .value=${state.text} @input=${(e) => { state.text = e.target.value; state.validated = null; }}
              aria-invalid=${state.parseError || violations.length ? 'true' : 'false'} aria-describedby=${`${config.id}-problems`}></textarea>
            <div id=${`${config.id}-problems`} aria-live="polite">
              ${state.parseError ? html`<p class="field-error" data-testid="doc-parse-error">${state.parseError}</p>` : nothing}
              ${violations.length ? html`<div class="banner banner-error" data-testid="doc-violations"><p>${t('form.fixFields', { n: violations.length })}</p>
                <ul>${violations.map(([field, list]) => html`<li data-field=${field}><code>${field}</code>: ${list.join('; ')}</li>`)}</ul></div>` : nothing}
              ${state.validated ? html`<p class="banner banner-ok" data-testid="doc-valid">${t('admin.doc.valid')}</p>` : nothing}
            </div>
            <div class="actions">
              ${config.options.map((option) => html`<label class="check"><input type="checkbox" .checked=${Boolean(state.options[option.key])}
                @change=${(e) => { state.options[option.key] = e.target.checked; }} /> ${t(option.label)}</label>`)}
              <button class="btn" data-testid="doc-validate" ?disabled=${state.busy} @click=${() => submit(true)}>${t('admin.doc.validate')}</button>
              <button class="btn btn-primary" data-testid="doc-apply" ?disabled=${state.busy} @click=${() => submit(false)}>${t('admin.doc.apply')}</button>
            </div>
          </section>
          <aside class="card" aria-labelledby=${`${config.id}-versions-h`}>
            <h2 id=${`${config.id}-versions-h`}>${t('admin.doc.versions')}</h2>
            ${!state.versions.length ? html`<p class="muted">${t('admin.doc.noVersions')}</p>` : nothing}
            <ol class="versions" data-testid="doc-versions">
              ${state.versions.map((v) => html`<li>
                <button class="link" @click=${() => openVersion(config.versionNumber(v))}
                  aria-current=${loaded && config.versionNumber(loaded) === config.versionNumber(v) ? 'true' : 'false'}>
                  ${config.versionLabel(v)}</button>
                ${v.live ? html`<span class="badge badge-ok">${t('admin.doc.live')}</span>` : nothing}
                ${v.created_at ? html`<div class="muted small">${formatDateTime(v.created_at)}${v.created_by ? ` · ${v.created_by}` : ''}</div>` : nothing}
              </li>`)}
            </ol>
            ${state.versionsToken ? html`<button class="btn btn-sm" data-testid="load-more" @click=${async () => { await loadVersions({ more: true }); rerender(); }}>${t('common.loadMore')}</button>` : nothing}
          </aside>
        </div>`, root);
    }

    rerender();
    load();
    return { rerender, dispose() { disposed = true; } };
  };
}

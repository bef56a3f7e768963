// Admin › Import leads: a CSV or XLSX file uploaded to capture.ImportLeadFile (multipart: the
// ImportHeader as JSON, then the file), and the import report: counts, the column mapping used, and
// every rejected row with its spreadsheet row number, column and reason.
import { html, render, nothing } from 'lit-html';
import { upload, violationsByField } from '../api.js';
import { t, formatNumber } from '../i18n/index.js';
import { errorBanner, fieldError, invalid, errorId, violationSummary, toast, splitList } from '../ui.js';

const ACCEPT = '.csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
const COUNTS = ['rows', 'accepted', 'merged', 'unchanged', 'rejected'];

function blankForm() {
  return { source: '', campaign: '', tags: '', default_country: '', dry_run: false };
}

export function importPage(root) {
  const state = {
    form: blankForm(), file: null, busy: false, violations: new Map(), error: null, report: null, reportOf: '',
  };
  let disposed = false;

  async function submit(event) {
    event.preventDefault();
    const f = state.form;
    state.violations = new Map();
    state.error = null;
    // The server checks everything else; without a file there is nothing to send it.
    if (!state.file) {
      state.violations = new Map([['file', [t('import.fileRequired')]]]);
      rerender();
      return;
    }
    state.busy = true;
    rerender();
    const header = {
      filename: state.file.name,
      attribution: { source: f.source.trim(), campaign: f.campaign.trim() },
      tags: splitList(f.tags),
      default_country: f.default_country.trim(),
      dry_run: f.dry_run,
    };
    try {
      state.report = await upload('capture', 'ImportLeadFile', header, { file: state.file });
      state.reportOf = state.file.name;
      toast(state.report.dry_run ? t('import.checked', { n: state.report.rows }) : t('import.done', { n: state.report.accepted }), 'success');
    } catch (err) {
      state.violations = violationsByField(err);
      state.error = state.violations.size ? null : err;
      state.report = null;
    }
    state.busy = false;
    rerender();
  }

  function input(key, path, label, attrs = {}) {
    const v = state.violations;
    return html`<div class="field">
      <label for=${`imp-${key}`}>${t(label)}${attrs.required ? html` <span aria-hidden="true">*</span>` : nothing}</label>
      <input id=${`imp-${key}`} data-testid=${`import-${key.replace(/_/g, '-')}`} .value=${state.form[key]}
        ?required=${attrs.required} @input=${(e) => { state.form[key] = e.target.value; }}
        aria-invalid=${invalid(v, path)} aria-describedby=${`${attrs.help ? `imp-${key}-help ` : ''}${errorId(path)}`} />
      ${attrs.help ? html`<p class="help" id=${`imp-${key}-help`}>${t(attrs.help)}</p>` : nothing}
      ${fieldError(v, path)}
    </div>`;
  }

  function reportView() {
    const r = state.report;
    if (!r) return nothing;
    const rejected = r.rejected_rows || [];
    const mapping = Object.entries(r.mapping || {});
    return html`<section class="card" data-testid="import-report" aria-labelledby="import-report-h" data-dry-run=${r.dry_run ? 'true' : 'false'}>
      <h2 id="import-report-h">${t('import.reportTitle', { name: state.reportOf })}</h2>
      ${r.dry_run ? html`<p class="banner banner-warn" data-testid="import-dry-run">${t('import.dryRunDone')}</p>` : nothing}
      <div class="stats">
        ${COUNTS.map((key) => html`<div class="stat">
          <span class="stat-value" data-testid=${`import-count-${key}`}>${formatNumber(r[key] || 0)}</span>
          <span class="stat-label">${t(`import.count.${key}`)}</span></div>`)}
      </div>
      ${rejected.length ? html`<h3 class="sub-h">${t('import.rejectedTitle')}</h3>
        ${r.rejected > rejected.length ? html`<p class="muted small">${t('import.rejectedCut', { shown: rejected.length, n: r.rejected })}</p>` : nothing}
        <div class="table-wrap"><table class="table compact" data-testid="import-rejected">
          <thead><tr><th scope="col" class="num">${t('import.row')}</th><th scope="col">${t('import.column')}</th><th scope="col">${t('import.reason')}</th></tr></thead>
          <tbody>${rejected.map((row) => html`<tr data-testid="import-rejected-row" data-row=${row.row}>
            <td class="num">${row.row}</td><td>${row.column ? html`<code>${row.column}</code>` : '–'}</td><td>${row.reason}</td></tr>`)}</tbody>
        </table></div>` : nothing}
      ${mapping.length ? html`<details class="small"><summary>${t('import.mappingUsed')}</summary>
        <table class="table compact" data-testid="import-mapping">
          <thead><tr><th scope="col">${t('import.column')}</th><th scope="col">${t('import.field')}</th></tr></thead>
          <tbody>${mapping.map(([column, field]) => html`<tr><td>${column}</td><td><code>${field}</code></td></tr>`)}</tbody>
        </table></details>` : nothing}
    </section>`;
  }

  function rerender() {
    if (disposed) return;
    const v = state.violations;
    const f = state.form;
    render(html`
      <div class="page-head"><div><h1>${t('import.title')}</h1><p class="muted">${t('import.intro')}</p></div></div>
      <form class="card" data-testid="import-form" @submit=${submit} novalidate>
        ${violationSummary(v, ['file', 'header.filename', 'header.mapping', 'header.attribution.source', 'header.attribution.campaign', 'header.tags', 'header.default_country'])}
        ${errorBanner(state.error, 'import-error')}
        <div class="field">
          <label for="imp-file">${t('import.file')} <span aria-hidden="true">*</span></label>
          <input id="imp-file" type="file" data-testid="import-file" accept=${ACCEPT} required
            @change=${(e) => { state.file = e.target.files?.[0] || null; state.violations.delete('file'); rerender(); }}
            aria-invalid=${invalid(v, 'file', 'header.filename')} aria-describedby=${`imp-file-help ${errorId('file')}`} />
          <p class="help" id="imp-file-help">${t('import.fileHelp')}</p>
          ${fieldError(v, 'file', 'header.filename', 'header.mapping')}
        </div>
        <div class="grid-2">
          ${input('source', 'header.attribution.source', 'import.source', { required: true, help: 'import.sourceHelp' })}
          ${input('campaign', 'header.attribution.campaign', 'import.campaign')}
        </div>
        <div class="grid-2">
          ${input('tags', 'header.tags', 'import.tags', { help: 'import.tagsHelp' })}
          ${input('default_country', 'header.default_country', 'import.defaultCountry', { help: 'import.defaultCountryHelp' })}
        </div>
        <label class="check"><input type="checkbox" data-testid="import-dry-run-toggle" .checked=${f.dry_run}
          @change=${(e) => { f.dry_run = e.target.checked; }} />${t('import.dryRun')}</label>
        <p class="help">${t('import.dryRunHelp')}</p>
        <div class="actions">
          <button class="btn btn-primary" type="submit" data-testid="import-submit" ?disabled=${state.busy}>
            ${state.busy ? t('import.uploading') : t('import.submit')}</button>
        </div>
      </form>
      ${reportView()}`, root);
  }

  rerender();
  return { rerender, dispose() { disposed = true; } };
}

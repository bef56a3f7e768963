// Admin › Import leads: a CSV or XLSX file uploaded to capture.ImportLeadFile (multipart: the
// ImportHeader as JSON, then the file), and the import report: counts, the column mapping used, and
// every rejected row with its spreadsheet row number, column and reason. While a long import runs, the
// page asks capture for its progress (by the import id it put in the header) and shows a bar.
import { html, render, nothing } from 'lit-html';
import { rpc, upload, violationsByField } from '../api.js';
import { t, formatNumber } from '../i18n/index.js';
import { errorBanner, fieldError, invalid, errorId, violationSummary, toast, splitList } from '../ui.js';

const ACCEPT = '.csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
const COUNTS = ['rows', 'accepted', 'merged', 'unchanged', 'rejected'];
const PROGRESS_POLL_MS = 700;

/** An import id for the header: 32 hex digits (crypto.randomUUID needs a secure context; this does not). */
function newImportId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

function blankForm() {
  return { source: '', campaign: '', tags: '', default_country: '', dry_run: false };
}

export function importPage(root) {
  const state = {
    form: blankForm(), file: null, busy: false, violations: new Map(), error: null, report: null, reportOf: '',
    progress: null,
  };
  let disposed = false;

  /** Ask for the import's progress until the upload answers; a miss (not begun yet) just waits for the next. */
  function followProgress(importId) {
    let stopped = false;
    (async () => {
      while (!stopped && !disposed) {
        await new Promise((resolve) => { setTimeout(resolve, PROGRESS_POLL_MS); });
        if (stopped || disposed) break;
        try {
          const answer = await rpc('capture', 'GetImportProgress', { import_id: importId });
          if (!stopped && answer.progress) {
            state.progress = answer.progress;
            rerender();
          }
        } catch {
          // Not begun yet, or a moment's outage: the import goes on regardless.
        }
      }
    })();
    return () => { stopped = true; };
  }

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
    state.progress = null;
    rerender();
    const header = {
      filename: state.file.name,
      attribution: { source: f.source.trim(), campaign: f.campaign.trim() },
      tags: splitList(f.tags),
      default_country: f.default_country.trim(),
      dry_run: f.dry_run,
      import_id: newImportId(),
    };
    const stopFollowing = followProgress(header.import_id);
    try {
      state.report = await upload('capture', 'ImportLeadFile', header, { file: state.file });
      state.reportOf = state.file.name;
      toast(state.report.dry_run ? t('import.checked', { n: state.report.rows }) : t('import.done', { n: state.report.accepted }), 'success');
    } catch (err) {
      state.violations = violationsByField(err);
      state.error = state.violations.size ? null : err;
      state.report = null;
    }
    stopFollowing();
    state.busy = false;
    state.progress = null;
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

  function progressView() {
    const p = state.progress;
    if (!state.busy || !p) return nothing;
    const phase = (p.phase || '').replace('IMPORT_PHASE_', '').toLowerCase() || 'receiving';
    const read = Number(p.rows_read || 0);
    const expected = Math.max(Number(p.rows_expected || 0), read);
    const share = expected ? Math.min(100, Math.round((read / expected) * 100)) : 0;
    return html`<section class="card" data-testid="import-progress" aria-live="polite" data-phase=${phase}>
      <p>${t(`import.phase.${phase}`, { mb: formatNumber(Number(p.bytes_received || 0) / 1e6, { maximumFractionDigits: 1 }) })}</p>
      ${phase === 'storing' || phase === 'finished' ? html`
        <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax=${expected} aria-valuenow=${read}
          aria-label=${t('import.progressLabel')}><span style=${`width: ${share}%`}></span></div>
        <p class="small" data-testid="import-progress-counts">${t('import.progressCounts', {
          read: formatNumber(read), expected: formatNumber(expected),
          stored: formatNumber(Number(p.rows_stored || 0)), rejected: formatNumber(Number(p.rows_rejected || 0)) })}</p>`
        : nothing}
    </section>`;
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
      ${progressView()}
      ${reportView()}`, root);
  }

  rerender();
  return { rerender, dispose() { disposed = true; } };
}

// The live win model (scoring.GetWinModel): what its cross-validation promised when it was trained,
// beside how its predictions have really done on the new leads whose outcome is known since.
import { html, render, nothing } from 'lit-html';
import { rpc } from '../api.js';
import { t, formatNumber, formatPercent, formatDateTime } from '../i18n/index.js';
import { errorBanner } from '../ui.js';

// The same thresholds as the LeadflowWinModelUnderperforming alert (deploy/prometheus/rules).
const UNDERPERFORMING_GAP = -0.05;
const UNDERPERFORMING_OUTCOMES = 200;

const ratio = (value) => formatNumber(value ?? 0, { minimumFractionDigits: 3, maximumFractionDigits: 3 });

function calibrationTable(rows, testid) {
  if (!rows?.length) return html`<p class="muted">${t('admin.winmodel.noCalibration')}</p>`;
  return html`<div class="table-wrap"><table class="table compact" data-testid=${testid}>
    <thead><tr><th scope="col">${t('admin.winmodel.bin')}</th><th scope="col" class="num">${t('admin.winmodel.leads')}</th>
      <th scope="col" class="num">${t('admin.winmodel.predicted')}</th><th scope="col" class="num">${t('admin.winmodel.observed')}</th></tr></thead>
    <tbody>${rows.map((row) => html`<tr><td>${formatPercent(row.low ?? 0)}–${formatPercent(row.high ?? 0)}</td>
      <td class="num">${formatNumber(row.leads ?? 0)}</td><td class="num">${formatPercent(row.mean_predicted ?? 0, 1)}</td>
      <td class="num">${formatPercent(row.observed_rate ?? 0, 1)}</td></tr>`)}</tbody></table></div>`;
}

export function winModelPage(root) {
  const state = { model: null, loading: true, error: null, none: false };
  let disposed = false;

  async function load() {
    try {
      state.model = (await rpc('scoring', 'GetWinModel', {})).model;
      state.error = null;
    } catch (err) {
      state.none = err.code === 'NOT_FOUND';
      state.error = state.none ? null : err;
    }
    state.loading = false;
    rerender();
  }

  function figures(model) {
    const realised = model.realised || {};
    const outcomes = realised.outcomes ?? 0;
    const gap = realised.roc_auc_gap ?? 0;
    const underperforming = realised.has_roc_auc && outcomes >= UNDERPERFORMING_OUTCOMES && gap < UNDERPERFORMING_GAP;
    return html`
      ${underperforming ? html`<div class="banner banner-error" role="alert" data-testid="winmodel-underperforming">
        <p>${t('admin.winmodel.underperforming', { gap: ratio(-gap) })}</p></div>` : nothing}
      <div class="table-wrap card"><table class="table" data-testid="winmodel-figures">
        <thead><tr><th scope="col">${t('admin.winmodel.figure')}</th>
          <th scope="col" class="num">${t('admin.winmodel.trained')}</th>
          <th scope="col" class="num">${t('admin.winmodel.realised')}</th></tr></thead>
        <tbody>
          <tr data-testid="winmodel-auc"><th scope="row">${t('admin.winmodel.rocAuc')}</th>
            <td class="num">${ratio(model.roc_auc)} <span class="muted small">± ${ratio(model.roc_auc_sd)}</span></td>
            <td class="num" data-testid="winmodel-realised-auc">${realised.has_roc_auc ? ratio(realised.roc_auc) : '–'}</td></tr>
          <tr><th scope="row">${t('admin.winmodel.brier')}</th>
            <td class="num">${ratio(model.brier)} <span class="muted small">± ${ratio(model.brier_sd)}</span></td>
            <td class="num">${outcomes ? ratio(realised.brier) : '–'}</td></tr>
          <tr><th scope="row">${t('admin.winmodel.leadsCounted')}</th>
            <td class="num">${formatNumber(model.examples ?? 0)}</td>
            <td class="num" data-testid="winmodel-outcomes">${formatNumber(outcomes)}
              <span class="muted small">(${t('admin.winmodel.won', { count: formatNumber(realised.positives ?? 0) })})</span></td></tr>
          <tr><th scope="row">${t('admin.winmodel.logistic')}</th><td class="num">${ratio(model.logistic_roc_auc)}</td><td class="num">–</td></tr>
          <tr><th scope="row">${t('admin.winmodel.naiveBayes')}</th><td class="num">${ratio(model.baseline_roc_auc)}</td><td class="num">–</td></tr>
        </tbody></table>
        <p class="muted small">${t('admin.winmodel.realisedHelp')}</p>
        ${realised.since_version && realised.since_version !== model.version
          ? html`<p class="muted small" data-testid="winmodel-since">${t('admin.winmodel.since', { version: realised.since_version })}</p>` : nothing}</div>
      <div class="grid-2">
        <section class="card"><h2>${t('admin.winmodel.trainedCalibration')}</h2>${calibrationTable(model.calibration, 'winmodel-trained-calibration')}</section>
        <section class="card"><h2>${t('admin.winmodel.realisedCalibration')}</h2>${calibrationTable(realised.calibration, 'winmodel-realised-calibration')}</section>
      </div>`;
  }

  function rerender() {
    if (disposed) return;
    const model = state.model;
    render(html`
      <div class="page-head"><div><h1>${t('admin.winmodel.title')}</h1><p class="muted">${t('admin.winmodel.intro')}</p></div>
        <button class="btn" data-testid="winmodel-refresh" @click=${load}>${t('admin.winmodel.refresh')}</button></div>
      ${errorBanner(state.error)}
      ${state.loading ? html`<p class="muted" aria-busy="true">${t('common.loading')}</p>` : nothing}
      ${state.none ? html`<p class="muted" data-testid="winmodel-none">${t('admin.winmodel.none')}</p>` : nothing}
      ${model ? html`<p data-testid="winmodel-summary">${t('admin.winmodel.summary', {
        version: model.version, kind: t(`admin.winmodel.kind.${model.model_kind || 'gradient_boosting'}`),
        calibration: model.calibration_method || 'none', at: formatDateTime(model.trained_at), by: model.trained_by || '–' })}</p>
        <p class="muted small">${model.status_reason}</p>
        ${figures(model)}` : nothing}`, root);
  }

  rerender();
  load();
  return { rerender, dispose() { disposed = true; } };
}

// Manager dashboard: the funnel with drop-off (reporting.GetFunnel), conversion by source
// (GetSourcePerformance), speed to lead (GetSpeedToLead), SLA compliance (GetSlaCompliance), win rate
// by rep (GetWinRate, GetRepPerformance) and forecast vs quota (GetForecast, GetQuotaAttainment).
// Every chart also prints its key numbers as text (data-testid) for people who read and for tests.
import { html, render, nothing } from 'lit-html';
import {
  Chart, BarController, BarElement, DoughnutController, ArcElement, CategoryScale, LinearScale,
  LogarithmicScale, Legend, Tooltip,
} from 'chart.js';
import { rpc } from '../api.js';
import {
  t, tEnum, formatNumber, formatPercent, formatMoney, formatDuration, formatDay, intlLocale,
} from '../i18n/index.js';
import { errorBanner, todayUtc } from '../ui.js';

// Only the chart types and parts used here, so the bundle carries no line, radar or time-scale code.
Chart.register(BarController, BarElement, DoughnutController, ArcElement, CategoryScale, LinearScale,
  LogarithmicScale, Legend, Tooltip);
// One or two groups would otherwise stretch into slabs across the whole card.
Chart.defaults.datasets.bar.maxBarThickness = 56;

const COLORS = {
  primary: '#2563eb', primarySoft: 'rgba(37, 99, 235, 0.18)', teal: '#0d9488', amber: '#d97706',
  red: '#dc2626', slate: '#94a3b8', violet: '#7c3aed', green: '#16a34a', gray: '#e2e8f0',
};
const PERIODS = [7, 30, 90, 365];

function quarterBounds() {
  const now = new Date();
  const q = Math.floor(now.getUTCMonth() / 3);
  const start = new Date(Date.UTC(now.getUTCFullYear(), q * 3, 1));
  const end = new Date(Date.UTC(now.getUTCFullYear(), q * 3 + 3, 0));
  return [start.toISOString().slice(0, 10), end.toISOString().slice(0, 10)];
}

export function dashboardPage(root, { me, query }) {
  const state = {
    days: Number(query.get('days')) || 30,
    currency: query.get('currency') || '',
    team: query.get('team') || '',
    teams: [],
    reports: {}, // name -> { data, error }
    loading: true,
  };
  const charts = new Map();
  let disposed = false;

  function filters() {
    const base = { period_start: todayUtc(-(state.days - 1)), period_end: todayUtc(), team: state.team, currency: state.currency };
    const [qs, qe] = quarterBounds();
    return { base, quarter: { ...base, period_start: qs, period_end: qe } };
  }

  async function load() {
    state.loading = true;
    rerender();
    const { base, quarter } = filters();
    const calls = {
      funnel: rpc('reporting', 'GetFunnel', { filter: base }),
      sources: rpc('reporting', 'GetSourcePerformance', { filter: base }),
      speed: rpc('reporting', 'GetSpeedToLead', { filter: base, group_by: 'GROUP_BY_OWNER' }),
      sla: rpc('reporting', 'GetSlaCompliance', { filter: base, group_by: 'GROUP_BY_OWNER' }),
      winRate: rpc('reporting', 'GetWinRate', { filter: base, group_by: 'GROUP_BY_OWNER' }),
      reps: rpc('reporting', 'GetRepPerformance', { filter: base }),
      forecast: rpc('reporting', 'GetForecast', { filter: quarter }),
      quotas: rpc('reporting', 'GetQuotaAttainment', { filter: quarter }),
    };
    const names = Object.keys(calls);
    const settled = await Promise.allSettled(Object.values(calls));
    names.forEach((name, i) => {
      state.reports[name] = settled[i].status === 'fulfilled' ? { data: settled[i].value } : { error: settled[i].reason };
    });
    state.loading = false;
    rerender();
  }

  // ---- charts ---------------------------------------------------------------------------------------

  function draw(id, config) {
    const canvas = root.querySelector(`canvas[data-chart="${id}"]`);
    charts.get(id)?.destroy();
    charts.delete(id);
    if (!canvas) return;
    charts.set(id, new Chart(canvas, {
      ...config,
      options: {
        responsive: true, maintainAspectRatio: false, locale: intlLocale(), animation: { duration: 300 },
        plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } }, ...(config.options?.plugins || {}) },
        ...config.options,
      },
    }));
  }

  function drawAll() {
    const r = state.reports;
    const funnel = r.funnel?.data?.steps || [];
    if (funnel.length) {
      draw('funnel', {
        type: 'bar',
        data: {
          labels: funnel.map((s) => tEnum('funnel', s.stage)),
          datasets: [
            { label: t('dash.funnel.reached'), data: funnel.map((s) => Number(s.leads)), backgroundColor: COLORS.primary, stack: 'a' },
            { label: t('dash.funnel.dropped'), data: funnel.map((s) => Number(s.dropped)), backgroundColor: COLORS.gray, stack: 'a' },
          ],
        },
        options: {
          indexAxis: 'y',
          scales: { x: { stacked: true, ticks: { precision: 0 } }, y: { stacked: true } },
          plugins: {
            tooltip: { callbacks: { afterLabel: (ctx) => (ctx.datasetIndex === 0
              ? t('dash.funnel.fromPrevious', { p: formatPercent(funnel[ctx.dataIndex].conversion_from_previous, 1) }) : '') } },
          },
        },
      });
    }
    const sources = (r.sources?.data?.rows || []).slice(0, 10);
    if (sources.length) {
      draw('sources', {
        type: 'bar',
        data: {
          labels: sources.map((s) => s.source || t('common.unknown')),
          datasets: [
            { label: t('dash.sources.leads'), data: sources.map((s) => Number(s.leads)), backgroundColor: COLORS.slate },
            { label: t('dash.sources.mqls'), data: sources.map((s) => Number(s.mqls)), backgroundColor: COLORS.teal },
            { label: t('dash.sources.opportunities'), data: sources.map((s) => Number(s.opportunities)), backgroundColor: COLORS.primary },
          ],
        },
        options: { scales: { y: { ticks: { precision: 0 } } } },
      });
    }
    const speed = r.speed?.data?.total;
    if (speed) {
      const keys = ['p50_seconds', 'p90_seconds', 'p99_seconds'];
      draw('speed', {
        type: 'bar',
        data: {
          labels: [t('dash.speed.p50'), t('dash.speed.p90'), t('dash.speed.p99')],
          datasets: [
            { label: t('dash.speed.toAssignment'), data: keys.map((k) => speed.to_assignment?.[k] || 0), backgroundColor: COLORS.teal },
            { label: t('dash.speed.toContact'), data: keys.map((k) => speed.to_contact?.[k] || 0), backgroundColor: COLORS.violet },
          ],
        },
        options: {
          // Assignment takes milliseconds and contact hours: a log axis shows both, labelled at powers of ten.
          scales: { y: { type: 'logarithmic', ticks: { callback: (v) => (Number.isInteger(Math.log10(v)) ? formatDuration(v) : '') } } },
          plugins: { tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${formatDuration(ctx.raw)}` } } },
        },
      });
    }
    const sla = r.sla?.data?.total;
    if (sla) {
      draw('sla', {
        type: 'doughnut',
        data: {
          labels: [t('dash.sla.met'), t('dash.sla.breached'), t('dash.sla.escalated'), t('dash.sla.open')],
          datasets: [{
            data: [sla.met, sla.breached, sla.escalated, sla.open].map(Number),
            backgroundColor: [COLORS.green, COLORS.red, COLORS.amber, COLORS.slate],
          }],
        },
        options: { cutout: '62%' },
      });
    }
    const winRows = (r.winRate?.data?.rows || []).slice(0, 12);
    if (winRows.length) {
      draw('winRate', {
        type: 'bar',
        data: {
          labels: winRows.map((row) => row.key || t('common.unknown')),
          datasets: [
            { label: t('dash.win.won'), data: winRows.map((row) => Number(row.won)), backgroundColor: COLORS.green, stack: 'c' },
            { label: t('dash.win.lost'), data: winRows.map((row) => Number(row.lost)), backgroundColor: COLORS.gray, stack: 'c' },
          ],
        },
        options: {
          scales: { x: { stacked: true }, y: { stacked: true, ticks: { precision: 0 } } },
          plugins: { tooltip: { callbacks: { footer: (items) => t('dash.win.rate', { p: formatPercent(winRows[items[0].dataIndex].win_rate, 1) }) } } },
        },
      });
    }
    const categories = r.forecast?.data?.categories || [];
    const quotas = r.quotas?.data?.quotas || [];
    const anyAmount = categories.some((c) => Number(c.weighted_amount) > 0) || quotas.length > 0;
    if (anyAmount) {
      const quotaTotal = quotas.reduce((sum, q) => sum + Number(q.quota?.amount || 0), 0);
      const palette = { closed: COLORS.green, commit: COLORS.primary, best_case: COLORS.teal, pipeline: COLORS.slate };
      draw('forecast', {
        type: 'bar',
        data: {
          labels: [t('dash.forecast.forecast'), t('dash.forecast.quota')],
          datasets: [
            ...categories.map((c) => ({
              label: tEnum('forecast', c.category), data: [Number(c.weighted_amount || 0), null],
              backgroundColor: palette[c.category] || COLORS.slate, stack: 'f',
            })),
            { label: t('dash.forecast.quota'), data: [null, quotaTotal], backgroundColor: COLORS.amber, stack: 'f' },
          ],
        },
        options: {
          indexAxis: 'y',
          scales: { x: { stacked: true, ticks: { callback: (v) => formatMoney(v, state.currency) } }, y: { stacked: true } },
          plugins: { tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${formatMoney(ctx.raw, state.currency)}` } } },
        },
      });
    }
  }

  // ---- views ------------------------------------------------------------------------------------------

  function panel(id, title, body, report, wide = false) {
    return html`<section class=${`card chart-card${wide ? ' wide' : ''}`} aria-labelledby=${`${id}-h`} data-testid=${`dash-${id}`}>
      <h2 id=${`${id}-h`}>${title}</h2>
      ${report?.error ? html`${errorBanner(report.error, `dash-${id}-error`)}
        ${report.error.httpStatus === 409 ? html`<p class="help">${t('dash.currencyHint')}</p>` : nothing}` : body}
    </section>`;
  }

  function stat(testid, label, value) {
    return html`<div class="stat"><span class="stat-value" data-testid=${testid}>${value}</span><span class="stat-label">${label}</span></div>`;
  }

  function funnelView() {
    const steps = state.reports.funnel?.data?.steps || [];
    const count = (stage) => steps.find((s) => s.stage === stage)?.leads ?? '0';
    const captured = Number(count('FUNNEL_STAGE_CAPTURED'));
    return html`<div class="stats">
        ${stat('funnel-captured', t('funnel.FUNNEL_STAGE_CAPTURED'), formatNumber(captured))}
        ${stat('funnel-qualified', t('funnel.FUNNEL_STAGE_QUALIFIED'), formatNumber(count('FUNNEL_STAGE_QUALIFIED')))}
        ${stat('funnel-contacted', t('funnel.FUNNEL_STAGE_CONTACTED'), formatNumber(count('FUNNEL_STAGE_CONTACTED')))}
        ${stat('funnel-converted', t('funnel.FUNNEL_STAGE_CONVERTED'), formatNumber(count('FUNNEL_STAGE_CONVERTED')))}
        ${stat('funnel-won', t('funnel.FUNNEL_STAGE_WON'), formatNumber(count('FUNNEL_STAGE_WON')))}
        ${stat('funnel-overall', t('dash.funnel.overall'), formatPercent(captured ? Number(count('FUNNEL_STAGE_CONVERTED')) / captured : 0, 1))}
      </div>
      <div class="chart-box tall"><canvas data-chart="funnel" role="img" aria-label=${t('dash.funnel.aria', {
        steps: steps.map((s) => `${tEnum('funnel', s.stage)} ${s.leads}`).join(', ') })}></canvas></div>
      <ul class="visually-hidden" data-testid="funnel-steps">${steps.map((s) => html`<li data-stage=${s.stage} data-leads=${s.leads}>${tEnum('funnel', s.stage)}: ${s.leads}</li>`)}</ul>`;
  }

  function sourcesView() {
    const rows = state.reports.sources?.data?.rows || [];
    if (!rows.length) return html`<p class="muted">${t('dash.noData')}</p>`;
    const best = [...rows].filter((r) => Number(r.leads) > 0).sort((a, b) => b.opportunity_rate - a.opportunity_rate)[0];
    return html`<div class="stats">
        ${stat('sources-count', t('dash.sources.count'), formatNumber(rows.length))}
        ${best ? stat('sources-best', t('dash.sources.best', { source: best.source }), formatPercent(best.opportunity_rate, 1)) : nothing}
      </div>
      <div class="chart-box"><canvas data-chart="sources" role="img" aria-label=${t('dash.sources.title')}></canvas></div>
      <table class="table compact" data-testid="sources-table"><thead><tr>
        <th scope="col">${t('dash.sources.source')}</th><th scope="col" class="num">${t('dash.sources.leads')}</th>
        <th scope="col" class="num">${t('dash.sources.mqlRate')}</th><th scope="col" class="num">${t('dash.sources.convRate')}</th>
        <th scope="col" class="num">${t('dash.sources.wonValue')}</th></tr></thead>
        <tbody>${rows.slice(0, 10).map((r) => html`<tr data-source=${r.source}><td>${r.source}</td><td class="num">${formatNumber(r.leads)}</td>
          <td class="num">${formatPercent(r.mql_rate, 1)}</td><td class="num">${formatPercent(r.opportunity_rate, 1)}</td>
          <td class="num">${formatMoney(r.won_value, state.currency)}</td></tr>`)}</tbody></table>`;
  }

  function speedView() {
    const total = state.reports.speed?.data?.total;
    const rows = state.reports.speed?.data?.rows || [];
    if (!total) return html`<p class="muted">${t('dash.noData')}</p>`;
    return html`<div class="stats">
        ${stat('speed-assignment-p50', t('dash.speed.assignmentMedian'), total.to_assignment?.leads > 0 ? formatDuration(total.to_assignment.p50_seconds) : '–')}
        ${stat('speed-contact-p50', t('dash.speed.contactMedian'), total.to_contact?.leads > 0 ? formatDuration(total.to_contact.p50_seconds) : '–')}
        ${stat('speed-leads', t('dash.speed.leads'), formatNumber(total.leads))}
      </div>
      <div class="chart-box"><canvas data-chart="speed" role="img" aria-label=${t('dash.speed.title')}></canvas></div>
      ${rows.length ? html`<table class="table compact"><thead><tr><th scope="col">${t('dash.rep')}</th>
        <th scope="col" class="num">${t('dash.speed.leads')}</th><th scope="col" class="num">${t('dash.speed.contactMedian')}</th></tr></thead>
        <tbody>${rows.map((r) => html`<tr><td>${r.key || t('common.unknown')}</td><td class="num">${formatNumber(r.leads)}</td>
          <td class="num">${r.to_contact?.leads > 0 ? formatDuration(r.to_contact.p50_seconds) : '–'}</td></tr>`)}</tbody></table>` : nothing}`;
  }

  function slaView() {
    const total = state.reports.sla?.data?.total;
    if (!total) return html`<p class="muted">${t('dash.noData')}</p>`;
    return html`<div class="stats">
        ${stat('sla-met-share', t('dash.sla.metShare'), formatPercent(total.met_share, 1))}
        ${stat('sla-tasks', t('dash.sla.tasks'), formatNumber(total.tasks))}
        ${stat('sla-breached', t('dash.sla.breached'), formatNumber(total.breached))}
        ${stat('sla-open', t('dash.sla.open'), formatNumber(total.open))}
      </div>
      <div class="chart-box"><canvas data-chart="sla" role="img" aria-label=${t('dash.sla.aria', {
        met: total.met, breached: total.breached, open: total.open })}></canvas></div>`;
  }

  function winView() {
    const total = state.reports.winRate?.data?.total;
    const reps = state.reports.reps?.data?.reps || [];
    return html`<div class="stats">
        ${stat('win-rate-total', t('dash.win.total'), total ? formatPercent(total.win_rate, 1) : '–')}
        ${stat('win-closed', t('dash.win.closed'), formatNumber(total?.closed ?? 0))}
        ${stat('win-value', t('dash.win.value'), formatMoney(total?.won_value || 0, state.currency))}
      </div>
      ${(state.reports.winRate?.data?.rows || []).length
        ? html`<div class="chart-box"><canvas data-chart="winRate" role="img" aria-label=${t('dash.win.title')}></canvas></div>`
        : html`<p class="muted">${t('dash.win.noneClosed')}</p>`}
      ${state.reports.reps?.error ? errorBanner(state.reports.reps.error) : nothing}
      ${reps.length ? html`<div class="table-wrap"><table class="table compact" data-testid="rep-performance"><thead><tr>
        <th scope="col">${t('dash.rep')}</th><th scope="col" class="num">${t('dash.reps.leads')}</th>
        <th scope="col" class="num">${t('dash.reps.response')}</th><th scope="col" class="num">${t('dash.reps.activities')}</th>
        <th scope="col" class="num">${t('dash.reps.opportunities')}</th><th scope="col" class="num">${t('dash.reps.winRate')}</th>
        <th scope="col" class="num">${t('dash.reps.openPipeline')}</th></tr></thead>
        <tbody>${reps.map((r) => html`<tr data-rep-id=${r.rep_id}><td>${r.rep_id}</td><td class="num">${formatNumber(r.leads)}</td>
          <td class="num">${r.median_response_seconds ? formatDuration(r.median_response_seconds) : '–'}</td>
          <td class="num">${formatNumber(r.activities)}</td><td class="num">${formatNumber(r.opportunities)}</td>
          <td class="num">${formatPercent(r.win_rate, 0)}</td><td class="num">${formatMoney(r.open_pipeline, state.currency)}</td></tr>`)}</tbody>
      </table></div>` : nothing}`;
  }

  function forecastView() {
    const forecast = state.reports.forecast?.data;
    const quotas = state.reports.quotas?.data?.quotas || [];
    const [qs, qe] = quarterBounds();
    return html`<p class="muted small">${t('dash.forecast.period', { start: formatDay(qs), end: formatDay(qe) })}</p>
      <div class="stats">
        ${stat('forecast-weighted-total', t('dash.forecast.weighted'), formatMoney(forecast?.weighted_total || 0, state.currency))}
        ${stat('forecast-from-model', t('dash.forecast.fromModel'), formatNumber(forecast?.from_win_model ?? 0))}
        ${quotas.length ? stat('quota-attainment', t('dash.forecast.attainment'),
          formatPercent(quotas.reduce((s, q) => s + Number(q.won_value || 0), 0) / (quotas.reduce((s, q) => s + Number(q.quota?.amount || 0), 0) || 1), 0)) : nothing}
      </div>
      ${state.reports.forecast?.error ? errorBanner(state.reports.forecast.error) : nothing}
      ${(forecast?.categories || []).some((c) => Number(c.weighted_amount) > 0) || quotas.length
        ? html`<div class="chart-box short"><canvas data-chart="forecast" role="img" aria-label=${t('dash.forecast.title')}></canvas></div>`
        : html`<p class="muted">${t('dash.forecast.empty')}</p>`}
      ${state.reports.quotas?.error ? errorBanner(state.reports.quotas.error) : nothing}
      ${quotas.length ? html`<ul class="quotas" data-testid="quota-list">${quotas.map((q) => html`<li>
          <div class="quota-head"><span>${q.quota.owner_id || q.quota.team}</span>
            <span>${formatMoney(q.won_value, q.quota.currency)} / ${formatMoney(q.quota.amount, q.quota.currency)}</span></div>
          <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=${Math.round(q.attainment * 100)}
            aria-label=${t('dash.forecast.attainmentOf', { who: q.quota.owner_id || q.quota.team })}>
            <span style=${`width:${Math.min(100, q.attainment * 100)}%`}></span>
            <span class="projected" style=${`width:${Math.min(100, q.projected_attainment * 100)}%`}></span></div>
          <div class="muted small">${t('dash.forecast.quotaLine', { a: formatPercent(q.attainment, 0), p: formatPercent(q.projected_attainment, 0) })}</div>
        </li>`)}</ul>` : html`<p class="muted">${t('dash.forecast.noQuotas')}</p>`}`;
  }

  function rerender() {
    if (disposed) return;
    const r = state.reports;
    render(html`
      <div class="page-head">
        <div><h1>${t('dash.title')}</h1>
          <p class="muted">${t('dash.scope', { role: t(`role.${me.role}`), team: me.team || '–' })}</p></div>
        <form class="filters" @submit=${(e) => { e.preventDefault(); load(); }}>
          <label>${t('dash.period')}
            <select data-testid="dash-period" @change=${(e) => { state.days = Number(e.target.value); load(); }}>
              ${PERIODS.map((d) => html`<option value=${d} ?selected=${state.days === d}>${t('dash.lastDays', { n: d })}</option>`)}
            </select></label>
          ${me.role === 'admin' ? html`<label>${t('dash.team')}
            <select data-testid="dash-team" @change=${(e) => { state.team = e.target.value; load(); }}>
              <option value="" ?selected=${!state.team}>${t('common.all')}</option>
              ${state.teams.map((team) => html`<option value=${team.team_id} ?selected=${state.team === team.team_id}>${team.name || team.team_id}</option>`)}
            </select></label>` : nothing}
          <label>${t('dash.currency')}
            <input data-testid="dash-currency" size="4" maxlength="3" .value=${state.currency} placeholder=${t('common.any')}
              @change=${(e) => { state.currency = e.target.value.trim().toUpperCase(); load(); }} /></label>
          <button class="btn" type="submit" data-testid="dash-refresh">${t('common.refresh')}</button>
        </form>
      </div>
      ${state.loading ? html`<p class="muted" aria-busy="true" data-testid="dash-loading">${t('common.loading')}</p>` : nothing}
      <div class="dash-grid" data-testid="dashboard" data-loaded=${state.loading ? 'false' : 'true'}>
        ${panel('funnel', t('dash.funnel.title'), funnelView(), r.funnel, true)}
        ${panel('sla', t('dash.sla.title'), slaView(), r.sla)}
        ${panel('speed', t('dash.speed.title'), speedView(), r.speed)}
        ${panel('sources', t('dash.sources.title'), sourcesView(), r.sources, true)}
        ${panel('win', t('dash.win.title'), winView(), r.winRate)}
        ${panel('forecast', t('dash.forecast.title'), forecastView(), null)}
      </div>`, root);
    if (!state.loading) drawAll();
  }

  rerender();
  load();
  if (me.role === 'admin') rpc('routing', 'ListTeams', { page: { page_size: 200 } }).then((res) => { state.teams = res.teams || []; rerender(); }).catch(() => {});
  return {
    rerender,
    dispose() {
      disposed = true;
      charts.forEach((chart) => chart.destroy());
      charts.clear();
    },
  };
}

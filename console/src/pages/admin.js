// Admin: web forms, the scoring model, the win model's trained and realised figures, the routing policy, reps and teams, pipelines, and lead file
// import.
// Structured documents (scoring model, routing policy, pipeline) are edited as JSON with a
// validate-only check (the Put RPCs' validate_only) before they are applied, next to their versions.
import { html, render } from 'lit-html';
import { t } from '../i18n/index.js';
import { formsPage } from './admin-forms.js';
import { docEditorPage } from './admin-docs.js';
import { repsPage } from './admin-reps.js';
import { importPage } from './admin-import.js';
import { winModelPage } from './admin-winmodel.js';

const SECTIONS = ['forms', 'scoring', 'winmodel', 'routing', 'reps', 'pipelines', 'import'];

const scoringPage = docEditorPage({
  id: 'scoring',
  title: 'admin.scoring.title',
  intro: 'admin.scoring.intro',
  service: 'scoring',
  get: (number) => ({ method: 'GetScoringModel', body: { number }, pick: (r) => r.model }),
  list: { method: 'ListScoringModelVersions', pick: (r) => r.models || [] },
  put: { method: 'PutScoringModel', pick: (r) => r.model },
  options: [{ key: 'rescore', label: 'admin.scoring.rescore' }],
  versionLabel: (v) => v.version,
  versionNumber: (v) => v.number,
});

const routingPage = docEditorPage({
  id: 'routing',
  title: 'admin.routing.title',
  intro: 'admin.routing.intro',
  service: 'routing',
  get: (number) => ({ method: 'GetRoutingPolicy', body: { number }, pick: (r) => r.policy }),
  list: { method: 'ListRoutingPolicyVersions', pick: (r) => r.policies || [] },
  put: { method: 'PutRoutingPolicy', pick: (r) => r.policy },
  options: [],
  versionLabel: (v) => v.version,
  versionNumber: (v) => v.number,
});

const pipelinesPage = docEditorPage({
  id: 'pipelines',
  title: 'admin.pipelines.title',
  intro: 'admin.pipelines.intro',
  service: 'opportunity',
  multi: true, // several pipelines, chosen by id; versions are 1..the live one
  get: (number, key) => ({ method: 'GetPipeline', body: { pipeline_id: key, version: number }, pick: (r) => r.pipeline }),
  put: { method: 'PutPipeline', pick: (r) => r.pipeline },
  options: [],
  versionLabel: (v) => `${v.pipeline_id}@${v.version}`,
  versionNumber: (v) => v.version,
});

const SUBPAGES = { forms: formsPage, scoring: scoringPage, winmodel: winModelPage, routing: routingPage, reps: repsPage, pipelines: pipelinesPage, import: importPage };

export function adminPage(root, ctx) {
  const section = SECTIONS.includes(ctx.parts[1]) ? ctx.parts[1] : 'forms';
  root.innerHTML = '<nav class="tabs" data-admin-tabs></nav><div data-admin-body></div>';
  const tabs = root.querySelector('[data-admin-tabs]');
  const body = root.querySelector('[data-admin-body]');
  const page = SUBPAGES[section](body, ctx);

  function rerender() {
    tabs.setAttribute('aria-label', t('admin.sections'));
    render(html`${SECTIONS.map((s) => html`<a href=${`#/admin/${s}`} data-testid=${`admin-tab-${s}`}
      aria-current=${s === section ? 'page' : 'false'}>${t(`admin.tab.${s}`)}</a>`)}`, tabs);
    page.rerender?.();
  }
  rerender();
  return { rerender, dispose: () => page.dispose?.() };
}


// The console's shell: hash routing, the header (navigation per role, language, logout) and the page.
import { html, render } from 'lit-html';
import './styles.css';
import { onUnauthorized } from './api.js';
import { t, locale, setLocale, onLocaleChange, LOCALES, intlLocale } from './i18n/index.js';
import { session, clearSession, mayOpen, homePage, PAGES_BY_ROLE } from './session.js';
import { loginPage, loginWithToken } from './pages/login.js';
import { inboxPage } from './pages/inbox.js';
import { leadPage } from './pages/lead.js';
import { leadsPage } from './pages/leads.js';
import { tasksPage } from './pages/tasks.js';
import { pipelinePage } from './pages/pipeline.js';
import { dashboardPage } from './pages/dashboard.js';
import { adminPage } from './pages/admin.js';

const PAGES = {
  inbox: inboxPage,
  lead: leadPage,
  leads: leadsPage,
  tasks: tasksPage,
  pipeline: pipelinePage,
  dashboard: dashboardPage,
  admin: adminPage,
};

const app = document.getElementById('app');
app.innerHTML = '<header class="topbar" id="topbar"></header><main id="main" class="page" tabindex="-1"></main>';
const topbar = document.getElementById('topbar');
const main = document.getElementById('main');
document.documentElement.lang = intlLocale();

let current = null; // { name, page }

/** "#/leads/abc?x=1" -> { parts: ["leads", "abc"], query: URLSearchParams }. */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, queryString = ''] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(queryString) };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function routeName(parts) {
  if (!parts.length) return '';
  // "#/leads" is the search (managers, admins); "#/leads/<id>" one lead (anyone with an inbox).
  if (parts[0] === 'leads') return parts.length > 1 ? 'lead' : 'leads';
  return parts[0];
}

function renderTopbar(name) {
  const s = session();
  const role = s?.me?.role;
  const pages = role ? PAGES_BY_ROLE[role] || [] : [];
  render(html`
    <div class="brand"><span class="logo" aria-hidden="true"></span>${t('app.name')}</div>
    ${s ? html`<nav aria-label=${t('nav.label')} data-testid="nav">
      ${pages.map((page) => html`<a href="#/${page === 'admin' ? 'admin/forms' : page}" data-testid=${`nav-${page}`}
        aria-current=${(name === page || (name === 'lead' && page === (pages.includes('leads') ? 'leads' : 'inbox'))) ? 'page' : 'false'}>${t(`nav.${page}`)}</a>`)}
    </nav>` : html`<span class="spacer"></span>`}
    <div class="topbar-right">
      <label class="lang">
        <span class="visually-hidden">${t('nav.language')}</span>
        <select data-testid="language-switcher" aria-label=${t('nav.language')}
          @change=${(e) => setLocale(e.target.value)}>
          ${LOCALES.map((code) => html`<option value=${code} ?selected=${code === locale()}>${t(`language.${code}`)}</option>`)}
        </select>
      </label>
      ${s ? html`<span class="who" data-testid="current-user">
          <span class="avatar" aria-hidden="true">${(s.me.id || '?').slice(0, 1).toUpperCase()}</span>
          <span>${s.me.id}</span><span class="badge badge-muted">${t(`role.${s.me.role}`)}</span></span>
        <button class="btn btn-ghost" data-testid="logout" @click=${logout}>${t('nav.logout')}</button>` : ''}
    </div>`, topbar);
}

function logout() {
  clearSession();
  navigate('#/login');
}

function mountPage(name, factory, ctx) {
  current?.page?.dispose?.();
  // lit-html remembers what it rendered on a container; a fresh one per page keeps pages apart.
  const container = document.createElement('div');
  main.replaceChildren(container);
  const page = factory(container, ctx);
  current = { name, page };
}

async function route() {
  const { parts, query } = parseHash();
  let name = routeName(parts);

  // A link like #/login?token=... logs in, then the token leaves the address bar and the history.
  if (name === 'login' && query.get('token')) {
    const token = query.get('token');
    history.replaceState(null, '', `${location.pathname}${location.search}#/login`);
    const ok = await loginWithToken(token);
    if (ok) return navigate(`#/${homePage(session().me.role) || 'login'}`);
  }

  const s = session();
  if (!s) {
    if (name !== 'login') return navigate('#/login');
    renderTopbar('login');
    return mountPage('login', loginPage, { navigate });
  }
  const role = s.me.role;
  if (!name || name === 'login') {
    const home = homePage(role);
    if (home) return navigate(`#/${home}`);
    name = 'none';
  }
  renderTopbar(name);
  if (name === 'none' || !PAGES[name]) {
    return mountPage(name, (root) => {
      render(html`<section class="empty-page" data-testid="no-pages"><h1>${t('app.name')}</h1>
        <p>${PAGES[name] ? '' : t(homePage(role) ? 'nav.notFound' : 'nav.noPages')}</p></section>`, root);
      return {};
    }, {});
  }
  if (!mayOpen(role, name)) {
    return mountPage('forbidden', (root) => {
      render(html`<section class="empty-page" data-testid="forbidden"><h1>${t('nav.forbiddenTitle')}</h1>
        <p>${t('nav.forbidden')}</p></section>`, root);
      return {};
    }, {});
  }
  mountPage(name, PAGES[name], { me: s.me, parts, query, navigate });
}

onLocaleChange(() => {
  renderTopbar(current?.name);
  document.querySelector('[data-skip]').textContent = t('nav.skip');
  if (current?.page?.rerender) current.page.rerender();
  else route();
});

onUnauthorized(() => navigate('#/login'));

document.querySelector('[data-skip]').textContent = t('nav.skip');
document.querySelector('[data-skip]').addEventListener('click', (event) => {
  // The skip link's own href would be taken for a route; move focus instead.
  event.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', route);
route();

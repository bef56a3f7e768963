// Login: a bearer token, checked with GET /api/v1/me before it is kept for the tab.
import { html, render } from 'lit-html';
import { fetchMe, ApiError } from '../api.js';
import { saveSession, homePage } from '../session.js';
import { t } from '../i18n/index.js';
import { toast, errorMessage } from '../ui.js';

/** Validate a token and keep it; false (with a toast) when the gateway refuses it. */
export async function loginWithToken(token) {
  try {
    const me = await fetchMe(token.trim());
    saveSession(token.trim(), me);
    return true;
  } catch (err) {
    toast(err instanceof ApiError && err.httpStatus === 401 ? t('login.badToken') : errorMessage(err), 'error');
    return false;
  }
}

export function loginPage(root, { navigate }) {
  const state = { token: '', busy: false, error: '' };

  async function submit(event) {
    event.preventDefault();
    if (!state.token.trim()) {
      state.error = t('login.required');
      return rerender();
    }
    state.busy = true;
    state.error = '';
    rerender();
    try {
      const me = await fetchMe(state.token.trim());
      saveSession(state.token.trim(), me);
      navigate(`#/${homePage(me.role) || 'none'}`);
    } catch (err) {
      state.error = err instanceof ApiError && err.httpStatus === 401 ? t('login.badToken') : errorMessage(err);
      state.busy = false;
      rerender();
    }
  }

  function rerender() {
    render(html`
      <section class="login">
        <div class="login-card card">
          <h1>${t('login.title')}</h1>
          <p class="muted">${t('login.intro')}</p>
          <form @submit=${submit} data-testid="login-form" novalidate>
            <div class="field">
              <label for="token">${t('login.token')}</label>
              <input id="token" name="token" type="password" autocomplete="off" spellcheck="false"
                data-testid="login-token" .value=${state.token}
                aria-invalid=${state.error ? 'true' : 'false'} aria-describedby="token-help token-error"
                @input=${(e) => { state.token = e.target.value; }} />
              <p class="help" id="token-help">${t('login.tokenHelp')}</p>
              ${state.error ? html`<p class="field-error" id="token-error" role="alert" data-testid="login-error">${state.error}</p>` : ''}
            </div>
            <button class="btn btn-primary btn-block" type="submit" data-testid="login-submit" ?disabled=${state.busy}>
              ${state.busy ? t('login.checking') : t('login.submit')}</button>
          </form>
        </div>
      </section>`, root);
  }

  rerender();
  root.querySelector('#token')?.focus();
  return { rerender };
}

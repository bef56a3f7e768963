// The bearer token and the principal it belongs to live in sessionStorage: they go away with the
// tab, and a reload keeps the user logged in.
const KEY = 'leadflow.session';

export function session() {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function saveSession(token, me) {
  sessionStorage.setItem(KEY, JSON.stringify({ token, me }));
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

// What each role may open; the navigation shows exactly these.
export const PAGES_BY_ROLE = {
  rep: ['inbox', 'tasks', 'pipeline'],
  manager: ['inbox', 'leads', 'tasks', 'pipeline', 'dashboard'],
  admin: ['inbox', 'leads', 'tasks', 'pipeline', 'dashboard', 'admin'],
  integration: [],
};

export function mayOpen(role, page) {
  if (page === 'lead') return (PAGES_BY_ROLE[role] || []).includes('inbox');
  return (PAGES_BY_ROLE[role] || []).includes(page);
}

export function homePage(role) {
  if (role === 'rep') return 'inbox';
  if (role === 'manager' || role === 'admin') return 'dashboard';
  return null;
}

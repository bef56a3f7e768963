// The JSON gateway: every unary RPC is POST /api/v1/{service}/{Method} with the request message as
// proto3 JSON, answered with the response message or {"error": {...}}.
import { session, clearSession } from './session.js';

export class ApiError extends Error {
  constructor(httpStatus, error) {
    super(error?.message || `HTTP ${httpStatus}`);
    this.name = 'ApiError';
    this.httpStatus = httpStatus;
    this.code = error?.code || 'UNKNOWN';
    this.fieldViolations = error?.field_violations || [];
    this.traceId = error?.trace_id || '';
  }
}

// Listeners told when the gateway stops accepting the token, so the app can send the user to login.
const unauthorizedListeners = new Set();
export function onUnauthorized(listener) {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

async function parse(response) {
  const text = await response.text();
  let body = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      // A proxy in front of the gateway may answer with HTML; keep its status, drop its body.
      body = null;
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, body?.error || { code: statusCode(response.status), message: response.statusText });
  }
  return body ?? {};
}

function statusCode(status) {
  return { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
    409: 'FAILED_PRECONDITION', 429: 'RESOURCE_EXHAUSTED', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED' }[status]
    || 'INTERNAL';
}

async function request(path, init, token) {
  let response;
  try {
    response = await fetch(path, {
      ...init,
      headers: { ...(init.headers || {}), Authorization: `Bearer ${token}` },
    });
  } catch (err) {
    throw new ApiError(0, { code: 'NETWORK', message: err.message });
  }
  return parse(response);
}

/** Who the token belongs to; used to validate a token before keeping it. */
export function fetchMe(token) {
  return request('/api/v1/me', { method: 'GET' }, token);
}

/** Call one unary RPC with the current session's token. */
export async function rpc(service, method, body = {}) {
  const token = session()?.token;
  try {
    return await request(`/api/v1/${service}/${method}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    }, token || '');
  } catch (err) {
    if (err instanceof ApiError && err.httpStatus === 401) {
      clearSession();
      unauthorizedListeners.forEach((listener) => listener(err));
    }
    throw err;
  }
}

/** Like rpc, but a NOT_FOUND answers null: "not scored yet" or "not visible" is an ordinary state. */
export async function rpcOrNull(service, method, body = {}) {
  try {
    return await rpc(service, method, body);
  } catch (err) {
    if (err instanceof ApiError && err.httpStatus === 404) return null;
    throw err;
  }
}

/** Map field violations by path so a form can show each next to its input. */
export function violationsByField(err) {
  const map = new Map();
  for (const v of err?.fieldViolations || []) {
    const list = map.get(v.field) || [];
    list.push(v.description);
    map.set(v.field, list);
  }
  return map;
}

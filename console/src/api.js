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

/** Run a gateway call with the session's token; a refused token ends the session. */
async function withSession(call) {
  try {
    return await call(session()?.token || '');
  } catch (err) {
    if (err instanceof ApiError && err.httpStatus === 401) {
      clearSession();
      unauthorizedListeners.forEach((listener) => listener(err));
    }
    throw err;
  }
}

/** Call one unary RPC with the current session's token. */
export function rpc(service, method, body = {}) {
  return withSession((token) => request(`/api/v1/${service}/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  }, token));
}

/**
 * Call a client-streaming RPC (a header message, then file bytes) as multipart/form-data: the part
 * `header` carries the header message as JSON, then one part per entry of `files` ({name: File}).
 * The browser writes the Content-Type itself, because only it knows the multipart boundary.
 */
export function upload(service, method, header, files) {
  const form = new FormData();
  form.append('header', new Blob([JSON.stringify(header)], { type: 'application/json' }));
  for (const [name, file] of Object.entries(files)) form.append(name, file, file.name);
  return withSession((token) => request(`/api/v1/${service}/${method}`, { method: 'POST', body: form }, token));
}

/** The file name a Content-Disposition header gives, preferring the RFC 5987 (UTF-8) form. */
export function dispositionFilename(header) {
  const text = String(header || '');
  const extended = text.match(/filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i);
  if (extended) {
    try {
      return decodeURIComponent(extended[2].trim().replace(/^"|"$/g, ''));
    } catch {
      // A malformed escape: fall back to the plain parameter.
    }
  }
  const plain = text.match(/filename\s*=\s*("((?:[^"\\]|\\.)*)"|[^;]+)/i);
  if (!plain) return '';
  return (plain[2] !== undefined ? plain[2].replace(/\\(.)/g, '$1') : plain[1]).trim();
}

/**
 * Call a server-streaming RPC that answers with a file: the body is the raw bytes, so it is read as a
 * Blob; an error still answers the usual JSON error body.
 */
export function download(service, method, body = {}) {
  return withSession(async (token) => {
    let response;
    try {
      response = await fetch(`/api/v1/${service}/${method}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, { code: 'NETWORK', message: err.message });
    }
    if (!response.ok) return parse(response);
    const blob = await response.blob();
    return { blob, filename: dispositionFilename(response.headers.get('Content-Disposition')) };
  });
}

/** Hand a downloaded file to the browser as a download with its name. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename || 'download';
  link.rel = 'noopener';
  document.body.appendChild(link);
  link.click();
  link.remove();
  // The click starts the download synchronously in every current browser; the URL can go a bit later.
  setTimeout(() => URL.revokeObjectURL(url), 10000);
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

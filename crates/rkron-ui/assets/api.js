// The /v1 API as the dashboard uses it: every call goes to the server that served the page.

/** An error answer: `status` is the HTTP status (0 when the server could not be reached). */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const enc = encodeURIComponent;

/**
 * Sends a request. `query` is an object or a list of [key, value] pairs (for repeated keys like
 * metadata[k]); empty values are left out. Answers { data, total } where total is X-Total-Count.
 */
export async function request(method, path, { query, body, signal } = {}) {
  const url = new URL(`/v1${path}`, window.location.origin);
  const pairs = Array.isArray(query) ? query : Object.entries(query || {});
  for (const [key, value] of pairs) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.append(key, value);
  }
  const init = { method, headers: { Accept: 'application/json' }, signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, `the server cannot be reached (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    const message = (data && typeof data === 'object' && data.error) || (typeof data === 'string' && data) || response.statusText;
    throw new ApiError(response.status, message);
  }
  const total = response.headers.get('X-Total-Count');
  return { data, total: total === null ? null : Number(total), whom: response.headers.get('X-Whom') };
}

const get = (path, options) => request('GET', path, options).then((r) => r.data);

export const api = {
  status: () => get('/'),
  summary: (options) => get('/summary', options),
  leader: () => get('/leader').catch(() => null),
  members: (options) => get('/members', options),
  busy: (options) => get('/busy', options),
  pause: () => get('/pause'),
  /** Answers { data: jobs, total }. */
  jobs: (query, options) => request('GET', '/jobs', { query, ...options }),
  job: (name, options) => get(`/jobs/${enc(name)}`, options),
  next: (name, n = 5, options) => get(`/jobs/${enc(name)}/next`, { query: { n }, ...options }),
  missed: (name, options) => get(`/jobs/${enc(name)}/missed`, options),
  preview: (body, options) => request('POST', '/schedule/preview', { body, ...options }).then((r) => r.data),
  create: (job) => request('POST', '/jobs', { body: job }).then((r) => r.data),
  update: (name, job) => request('PUT', `/jobs/${enc(name)}`, { body: job }).then((r) => r.data),
  remove: (name) => request('DELETE', `/jobs/${enc(name)}`).then((r) => r.data),
  run: (name) => request('POST', `/jobs/${enc(name)}/run`).then((r) => r.data),
  toggle: (name) => request('POST', `/jobs/${enc(name)}/toggle`).then((r) => r.data),
  /** Answers { data: executions, total }. */
  executions: (name, query, options) => request('GET', `/jobs/${enc(name)}/executions`, { query, ...options }),
  execution: (name, id, options) => get(`/jobs/${enc(name)}/executions/${enc(id)}`, options),
  kill: (name, id) => request('POST', `/jobs/${enc(name)}/executions/${enc(id)}/kill`).then((r) => r.data),
};

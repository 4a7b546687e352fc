// The job editor's model: the executors' keys, which field an API validation message concerns,
// the key-value editor, and conversions between the wire job and the form's values.

import { h } from './dom.js';

/**
 * The keys of each built-in executor, as the executors read them.
 * kind: text (default), textarea, bool ("true" when checked, left out when not), select.
 */
export const EXECUTOR_KEYS = {
  shell: [
    { key: 'command', label: 'Command', required: true, mono: true, hint: 'The program and its arguments (quotes group words). With "Run through a shell", a shell command line.' },
    { key: 'shell', label: 'Run through a shell (/bin/sh -c)', kind: 'bool' },
    { key: 'env', label: 'Environment', mono: true, hint: 'KEY=value pairs separated by commas.' },
    { key: 'cwd', label: 'Working directory', mono: true },
    { key: 'timeout', label: 'Timeout', hint: 'A Go duration such as 30s or 5m; the whole process group is killed after it.' },
    { key: 'mem_limit', label: 'Memory limit', hint: 'Such as 512MiB or 1G; the run is killed above it.' },
    { key: 'payload', label: 'Payload', mono: true, hint: 'Base64; written to the command\'s standard input.' },
    { key: 'su', label: 'Run as user', mono: true },
  ],
  http: [
    { key: 'method', label: 'Method', required: true, kind: 'select', options: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] },
    { key: 'url', label: 'URL', required: true, mono: true, type: 'url' },
    { key: 'headers', label: 'Headers', mono: true, hint: 'A JSON array of "Name: value" strings, e.g. ["Content-Type: application/json"].' },
    { key: 'body', label: 'Body', kind: 'textarea', mono: true },
    { key: 'timeout', label: 'Timeout (seconds)', hint: 'Default 30.' },
    { key: 'expectCode', label: 'Expected status', hint: 'Such as 200, or several separated by commas.' },
    { key: 'expectBody', label: 'Expected body (regular expression)', mono: true },
    { key: 'debug', label: 'Debug: record the request and response', kind: 'bool' },
    { key: 'tlsNoVerifyPeer', label: 'Skip TLS certificate verification', kind: 'bool' },
    { key: 'tlsCertificateFile', label: 'TLS client certificate file', mono: true },
    { key: 'tlsCertificateKeyFile', label: 'TLS client key file', mono: true },
    { key: 'tlsRootCAsFile', label: 'TLS root CAs file', mono: true },
  ],
};

/** Which form field an API error message concerns (null: the form as a whole). */
const ERROR_FIELDS = [
  [/Unable to parse payload: starts_at/, 'starts_at'],
  [/Unable to parse payload: expires_at/, 'expires_at'],
  [/name cannot be empty|name contains illegal character/, 'name'],
  [/can not have itself as parent|specified parent job not found|dependency cycle|parent/, 'parent_job'],
  [/can't parse job schedule|empty spec/, 'schedule'],
  [/concurrency policy/, 'concurrency'],
  [/unknown time zone/, 'timezone'],
  [/job timeout value/, 'exec-timeout'],
  [/memory limit/, 'exec-mem_limit'],
  [/retry_interval/, 'retry_interval'],
  [/starting_deadline/, 'starting_deadline'],
  [/notify_on/, 'notify_on'],
];

export function fieldForError(message) {
  const rule = ERROR_FIELDS.find(([pattern]) => pattern.test(message));
  return rule ? rule[1] : null;
}

/** A key-value editor (tags, metadata, other executor keys). */
export function keyValueEditor({ id, label, keyLabel = 'Key', valueLabel = 'Value', hint }) {
  const rows = h('div', { class: 'kv-rows' });
  let counter = 0;
  const addRow = (key = '', value = '') => {
    counter += 1;
    const n = counter;
    const keyInput = h('input', { type: 'text', class: 'kv-key mono', value: key, 'aria-label': `${label}: ${keyLabel.toLowerCase()} ${n}`, id: `${id}-key-${n}`, autocomplete: 'off' });
    const valueInput = h('input', { type: 'text', class: 'kv-value mono', value, 'aria-label': `${label}: ${valueLabel.toLowerCase()} ${n}`, id: `${id}-value-${n}`, autocomplete: 'off' });
    const row = h('div', { class: 'kv-row' }, keyInput, h('span', { 'aria-hidden': 'true' }, '='), valueInput,
      h('button', { type: 'button', class: 'button small', 'aria-label': `Remove ${label.toLowerCase()} ${n}`, onclick: () => { row.remove(); } }, '✕'));
    rows.append(row);
    return keyInput;
  };
  const el = h('fieldset', { class: 'kv-editor', id },
    h('legend', {}, label),
    hint ? h('p', { class: 'hint' }, hint) : null,
    rows,
    h('button', { type: 'button', class: 'button small', onclick: () => addRow().focus() }, `Add ${label.toLowerCase().replace(/s$/, '')}`));
  return {
    el,
    get() {
      const out = {};
      for (const row of rows.querySelectorAll('.kv-row')) {
        const key = row.querySelector('.kv-key').value.trim();
        if (key) out[key] = row.querySelector('.kv-value').value;
      }
      return out;
    },
    set(map) {
      rows.replaceChildren();
      for (const [k, v] of Object.entries(map || {})) addRow(k, v);
    },
  };
}

/** `YYYY-MM-DDTHH:MM` in the browser's zone for an API time (for datetime-local inputs). */
export function toLocalInput(text) {
  if (!text) return '';
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** An RFC 3339 UTC time for a datetime-local value (read in the browser's zone); null when empty. */
export function fromLocalInput(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString().replace('.000Z', 'Z');
}

/** The defaults of a new job (Dkron's). */
export function newJob() {
  return {
    name: '', displayname: '', schedule: '', timezone: '', owner: '', owner_email: '',
    disabled: false, tags: {}, metadata: {}, retries: 0, parent_job: '', processors: {},
    concurrency: 'allow', executor: 'shell', executor_config: { command: '' },
    ephemeral: false, starts_at: null, expires_at: null,
    retry_interval: '', starting_deadline: '', notify_on: '', notify_email: '', notify_webhook: '',
  };
}

/** Fields the server maintains: never sent back from the editor. */
export const SERVER_FIELDS = ['id', 'next', 'status', 'success_count', 'error_count', 'last_success', 'last_error', 'dependent_jobs'];

/** The job as the editor submits it: the loaded job, less what the server maintains. */
export function submission(job) {
  const out = { ...job };
  for (const key of SERVER_FIELDS) delete out[key];
  return out;
}

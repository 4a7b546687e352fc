// Formatting of times, durations, statuses and counts. Times show in the browser's zone (or the
// job's zone where said), with the UTC instant in the tooltip.

import { h } from './dom.js';

const ZERO = '0001-01-01T00:00:00Z';

/** Tells whether an API time means "never" (missing or Go's zero time). */
export function isZero(text) {
  return !text || text === ZERO || text.startsWith('0001-01-01');
}

const formatters = new Map();

function formatter(zone) {
  const key = zone || '';
  if (!formatters.has(key)) {
    formatters.set(key, new Intl.DateTimeFormat('en-GB', {
      timeZone: zone || undefined,
      year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
      hourCycle: 'h23', timeZoneName: 'short',
    }));
  }
  return formatters.get(key);
}

/**
 * Formats an instant as `YYYY-MM-DD HH:MM:SS ZONE` in `zone` (default: the browser's); `compact`
 * leaves the zone out (lists, where every time is in the browser's zone).
 */
export function formatInstant(date, zone, { compact = false } = {}) {
  const parts = Object.fromEntries(formatter(zone).formatToParts(date).map((p) => [p.type, p.value]));
  const text = `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
  return compact ? text : `${text} ${parts.timeZoneName}`;
}

/** Formats an instant in UTC as `YYYY-MM-DD HH:MM:SS.mmm UTC`. */
export function formatUtc(date) {
  return date.toISOString().replace('T', ' ').replace('Z', ' UTC');
}

/** The browser's IANA zone. */
export const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

/**
 * A <time> element for an API time: local (or `zone`) text, UTC (and the browser's zone) in the
 * title. Never-times show `empty` (default an em dash).
 */
export function time(text, { zone, empty = '—', relative = false, compact = false } = {}) {
  if (isZero(text)) return h('span', { class: 'muted' }, empty);
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return h('span', {}, text);
  const shown = formatInstant(date, zone, { compact });
  const title = `${formatUtc(date)}\n${formatInstant(date)} (your zone, ${browserZone})`;
  return h('time', { datetime: text, title },
    shown,
    relative ? h('span', { class: 'relative' }, ` (${ago(date)})`) : null);
}

/** Says how far `date` is from now: `in 5 s`, `3 min ago`. */
export function ago(date, now = Date.now()) {
  const ms = date.getTime() - now;
  if (Math.abs(ms) < 1000) return 'now';
  const text = duration(Math.abs(ms), { coarse: true });
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

/** Formats milliseconds: `850 ms`, `12.3 s`, `4 min 5 s`, `2 h 10 min`, `3 d 4 h`. */
export function duration(ms, { coarse = false } = {}) {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return coarse ? `${Math.round(ms / 1000)} s` : `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return coarse ? `${Math.round(s)} s` : `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** The duration of an execution, up to now while it runs. */
export function executionDuration(execution, now = Date.now()) {
  const start = new Date(execution.started_at).getTime();
  const end = isZero(execution.finished_at) ? now : new Date(execution.finished_at).getTime();
  return duration(end - start);
}

/** Tells whether an execution is still running. */
export function isRunning(execution) {
  return isZero(execution.finished_at);
}

const STATUS_LABELS = {
  success: 'Success',
  failed: 'Failed',
  partially_failed: 'Partially failed',
  '': 'Never ran',
  untriggered: 'Never ran',
  running: 'Running',
  disabled: 'Disabled',
  enabled: 'Enabled',
  alive: 'Alive',
  leaving: 'Leaving',
  left: 'Left',
  none: 'Unknown',
};

const STATUS_KINDS = {
  success: 'ok', alive: 'ok', enabled: 'ok',
  failed: 'bad', partially_failed: 'warn', leaving: 'warn', left: 'muted',
  running: 'run', disabled: 'muted', '': 'muted', untriggered: 'muted', none: 'muted',
};

/** A status badge (text plus colour; the text alone carries the meaning). */
export function badge(status, label) {
  const kind = STATUS_KINDS[status] || 'muted';
  return h('span', { class: ['badge', kind], 'data-status': status || 'untriggered' },
    label || STATUS_LABELS[status] || status);
}

/** An execution's status: running, success or failed. */
export function executionStatus(execution) {
  if (isRunning(execution)) return 'running';
  return execution.success ? 'success' : 'failed';
}

/** A number with thousands separators. */
export function count(n) {
  return Number(n).toLocaleString('en-US');
}

/** Key-value chips (tags, metadata). */
export function chips(map, { empty = '—' } = {}) {
  const entries = Object.entries(map || {});
  if (!entries.length) return h('span', { class: 'muted' }, empty);
  return h('ul', { class: 'chips' },
    entries.map(([k, v]) => h('li', { class: 'chip' }, h('span', { class: 'chip-key' }, k), v === '' ? null : h('span', { class: 'chip-value' }, v))));
}

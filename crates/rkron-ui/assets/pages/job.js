// Job: every field, the next five fire times in the job's zone, and its executions grouped by
// run, with full output on demand and the live output of running executions (polled from
// /v1/busy, which holds the output accumulated so far). Run now, toggle, edit, delete, kill.

import { api } from '../api.js';
import { h, mount, rerender, toast, confirmDialog, failure } from '../dom.js';
import {
  time, badge, count, chips, isZero, isRunning, executionStatus, executionDuration, formatInstant, formatUtc, browserZone,
} from '../format.js';

/** Executions listed (the server keeps 100 per job by default). */
const EXECUTIONS_SHOWN = 100;
/** Bytes of output shown in the listing before "Show output" loads the rest. */
const PREVIEW_BYTES = 300;

/** The status of a run (an execution group): the latest attempt on each node decides. */
function groupStatus(executions) {
  if (executions.some(isRunning)) return 'running';
  const latest = new Map();
  for (const e of executions) {
    const seen = latest.get(e.node_name);
    if (!seen || e.attempt > seen.attempt) latest.set(e.node_name, e);
  }
  const results = [...latest.values()].map((e) => e.success);
  if (results.every(Boolean)) return 'success';
  if (!results.some(Boolean)) return 'failed';
  return 'partially_failed';
}

/** Groups executions by `group`, keeping the order of the listing (newest first). */
function groupsOf(executions) {
  const groups = new Map();
  for (const e of executions) {
    if (!groups.has(e.group)) groups.set(e.group, []);
    groups.get(e.group).push(e);
  }
  return [...groups.entries()].map(([group, list]) => ({
    group,
    list: list.sort((a, b) => a.node_name.localeCompare(b.node_name) || a.attempt - b.attempt),
  }));
}

function lastLine(text) {
  const lines = (text || '').trimEnd().split('\n');
  return lines[lines.length - 1] || '';
}

function keyValues(map, { empty = '—' } = {}) {
  const entries = Object.entries(map || {});
  if (!entries.length) return h('span', { class: 'muted' }, empty);
  return h('dl', { class: 'kv' }, entries.map(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, v === '' ? h('span', { class: 'muted' }, '(empty)') : v)]));
}

function field(label, value, { id } = {}) {
  return [h('dt', { id }, label), h('dd', {}, value === '' || value === null || value === undefined ? h('span', { class: 'muted' }, '—') : value)];
}

export async function render(main, ctx) {
  const name = ctx.params[0];
  ctx.setTitle(name);
  let job = null;
  let next = null;
  let missed = null;
  let executions = [];
  let executionsTotal = 0;
  const expanded = new Set();
  /** id → { text, full, live } */
  const outputs = new Map();
  let lastFull = 0;
  let lastNext = 0;
  let nextLoadedFor = null;
  const nextKey = (j) => [j.schedule, j.timezone, j.disabled, j.starts_at, j.expires_at].join('|');

  const head = h('div', { class: 'page-head' });
  const details = h('section', { class: 'panel details', 'aria-labelledby': 'details-title' });
  const nextBox = h('section', { class: 'panel next', 'aria-labelledby': 'next-title' });
  const executionsBox = h('section', { class: 'panel executions', 'aria-labelledby': 'executions-title' });

  // --- actions ---------------------------------------------------------------------------
  async function act(label, call, after) {
    try {
      const answer = await call();
      toast(label);
      if (after) await after(answer);
    } catch (error) {
      toast(`${label} failed: ${error.message}`, 'error');
    }
  }
  const runNow = () => act('Run started', () => api.run(name), async () => {
    // The execution appears within moments; look twice.
    setTimeout(() => refresh(true).catch(() => {}), 300);
    setTimeout(() => refresh(true).catch(() => {}), 1200);
  });
  const toggle = () => act(job.disabled ? 'Enabled' : 'Disabled', () => api.toggle(name), async (answer) => {
    job = answer;
    drawHead();
    drawDetails();
    await loadNext();
  });
  const remove = async () => {
    const ok = await confirmDialog({
      title: `Delete job ${name}?`,
      body: h('p', {}, 'Its executions are deleted too. This cannot be undone.'),
      confirm: 'Delete', danger: true,
    });
    if (!ok) return;
    try {
      await api.remove(name);
      toast(`Deleted ${name}`);
      ctx.navigate('/ui/jobs');
    } catch (error) {
      toast(`Delete failed: ${error.message}`, 'error');
    }
  };
  const kill = async (execution) => {
    const ok = await confirmDialog({
      title: 'Kill this execution?',
      body: h('p', {}, `The run on ${execution.node_name} (attempt ${execution.attempt}) is stopped with its whole process group and recorded as failed.`),
      confirm: 'Kill', danger: true,
    });
    if (!ok) return;
    await act('Kill sent', () => api.kill(name, execution.id), () => refresh(true));
  };

  // --- drawing ---------------------------------------------------------------------------
  function drawHead() {
    rerender(head, () => [
      h('div', { class: 'title' },
        h('p', { class: 'crumbs' }, h('a', { href: '/ui/jobs' }, 'Jobs'), ' / '),
        h('h1', {}, job.displayname || job.name),
        job.displayname ? h('p', { class: 'mono muted' }, job.name) : null,
        h('p', { class: 'badges' }, badge(job.status), ' ', job.disabled ? badge('disabled', 'Disabled') : badge('enabled', 'Enabled'))),
      h('div', { class: 'actions', role: 'toolbar', 'aria-label': 'Job actions' },
        h('button', { type: 'button', class: 'button primary', onclick: runNow, 'data-key': 'run', 'data-test': 'run' }, 'Run now'),
        h('button', { type: 'button', class: 'button', onclick: toggle, 'data-key': 'toggle', 'data-test': 'toggle' }, job.disabled ? 'Enable' : 'Disable'),
        h('a', { class: 'button', href: `/ui/jobs/${encodeURIComponent(name)}/edit`, 'data-key': 'edit', 'data-test': 'edit' }, 'Edit'),
        h('button', { type: 'button', class: 'button danger', onclick: remove, 'data-key': 'delete', 'data-test': 'delete' }, 'Delete')),
    ]);
  }

  function drawDetails() {
    const zone = job.timezone || 'UTC';
    const config = job.executor_config || {};
    rerender(details, () => [
      h('h2', { id: 'details-title' }, 'Details'),
      h('dl', { class: 'fields' },
        field('Name', h('span', { class: 'mono' }, job.name)),
        field('Display name', job.displayname),
        field('Schedule', job.schedule ? h('code', {}, job.schedule) : (job.parent_job ? 'runs after its parent succeeds' : '')),
        field('Time zone', job.timezone || h('span', {}, 'UTC ', h('span', { class: 'muted' }, '(none set)'))),
        field('Status', badge(job.status)),
        field('Enabled', job.disabled ? 'no (disabled: scheduled runs are skipped)' : 'yes'),
        field('Next run', isZero(job.next) ? '' : time(job.next, { zone, relative: true })),
        field('Last success', time(job.last_success, { relative: true })),
        field('Last error', time(job.last_error, { relative: true })),
        field('Successes', count(job.success_count)),
        field('Errors', count(job.error_count)),
        field('Missed fires', missed ? (missed.total ? `${count(missed.total)} (latest ${missed.recent.length ? formatInstant(new Date(missed.recent[missed.recent.length - 1])) : '—'})` : 'none') : '…'),
        field('Concurrency', job.concurrency),
        field('Retries', `${job.retries}${job.retry_interval ? `, first after ${job.retry_interval}, doubling` : ''}`),
        field('Starting deadline', job.starting_deadline || h('span', { class: 'muted' }, '1h (default)')),
        field('Starts at', job.starts_at ? time(job.starts_at) : ''),
        field('Expires at', job.expires_at ? time(job.expires_at) : ''),
        field('Ephemeral', job.ephemeral ? 'yes (deleted after its first success)' : 'no'),
        field('Parent job', job.parent_job ? h('a', { href: `/ui/jobs/${encodeURIComponent(job.parent_job)}` }, job.parent_job) : ''),
        field('Dependent jobs', (job.dependent_jobs || []).length
          ? h('ul', { class: 'inline-list' }, job.dependent_jobs.map((d) => h('li', {}, h('a', { href: `/ui/jobs/${encodeURIComponent(d)}` }, d))))
          : ''),
        field('Owner', job.owner_email ? [job.owner || '', ' ', h('a', { href: `mailto:${job.owner_email}` }, `<${job.owner_email}>`)] : job.owner),
        field('Notify on', job.notify_on || h('span', { class: 'muted' }, 'always (default)')),
        field('Notify e-mail', job.notify_email),
        field('Notify webhook', job.notify_webhook ? h('span', { class: 'mono' }, job.notify_webhook) : ''),
        field('Executor', h('code', {}, job.executor || '—')),
        field('Executor config', keyValues(config)),
        field('Tags', chips(job.tags)),
        field('Metadata', chips(job.metadata)),
        field('Processors', Object.keys(job.processors || {}).length
          ? h('div', {}, Object.entries(job.processors).map(([p, conf]) => h('div', { class: 'processor' }, h('code', {}, p), keyValues(conf, { empty: '(no settings)' }))))
          : '')),
      h('details', { class: 'raw' }, h('summary', {}, 'JSON'), h('pre', { class: 'output' }, JSON.stringify(job, null, 2))),
    ]);
  }

  function drawNext() {
    rerender(nextBox, () => {
      const zone = next ? next.timezone : (job.timezone || 'UTC');
      let body;
      if (!next) body = h('p', { class: 'muted' }, 'Loading…');
      else if (!next.next.length) {
        body = h('p', { class: 'muted' }, job.parent_job && !job.schedule ? 'Runs after its parent job succeeds.' : 'No upcoming run (manual, one-shot in the past, or expired).');
      } else {
        body = h('ol', { class: 'fires' }, next.next.map((t) => {
          const date = new Date(t);
          return h('li', {}, h('time', { datetime: t, title: `${formatUtc(date)}\n${formatInstant(date)} (your zone)` }, formatInstant(date, zone)));
        }));
      }
      return [
        h('h2', { id: 'next-title' }, 'Next runs'),
        h('p', { class: 'muted small' }, `In the job's zone, ${zone}${zone !== browserZone ? `; yours is ${browserZone}` : ''}. ${job.disabled ? 'The job is disabled: these fires are skipped until it is enabled.' : ''}`),
        body,
      ];
    });
  }

  function outputPane(execution) {
    const entry = outputs.get(execution.id);
    const running = isRunning(execution);
    let note;
    if (!entry) note = 'Loading…';
    else if (entry.live) note = h('span', { class: 'live' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Live: the output so far, updated every second');
    else if (entry.full) note = `Full output, ${count(new Blob([entry.text]).size)} bytes`;
    return h('div', { class: 'output-pane' },
      h('div', { class: 'output-note muted small' }, note),
      h('pre', {
        class: 'output', tabindex: '0', 'data-key': `out-${execution.id}`, 'data-test': 'output',
        'aria-label': `Output of ${execution.node_name} attempt ${execution.attempt}`,
      }, entry ? (entry.text || (running ? '(no output yet)' : '(no output)')) : ''));
  }

  /** The rows of one execution: its row, and its output below it when expanded. */
  function executionRows(execution, runCell) {
    const status = executionStatus(execution);
    const open = expanded.has(execution.id);
    const preview = lastLine(execution.output);
    const rows = [h('tr', { class: ['execution', status], 'data-execution': execution.id },
      runCell,
      h('td', { 'data-label': 'Status' }, badge(status)),
      h('td', { 'data-label': 'Node', class: 'mono node' }, execution.node_name),
      h('td', { 'data-label': 'Attempt', class: 'num' }, execution.attempt),
      h('td', { 'data-label': 'Started' }, time(execution.started_at)),
      h('td', { 'data-label': 'Duration', class: 'num' }, executionDuration(execution)),
      h('td', { 'data-label': 'Output', class: 'preview mono', title: preview }, preview || h('span', { class: 'muted' }, '—')),
      h('td', { class: 'row-actions' },
        h('button', {
          type: 'button', class: 'button small', 'aria-expanded': open ? 'true' : 'false', 'data-key': `toggle-${execution.id}`,
          'data-test': 'show-output', onclick: () => toggleOutput(execution),
        }, open ? 'Hide output' : (status === 'running' ? 'Live output' : 'Show output')),
        status === 'running'
          ? h('button', { type: 'button', class: 'button small danger', 'data-key': `kill-${execution.id}`, 'data-test': 'kill', onclick: () => kill(execution) }, 'Kill')
          : null))];
    if (open) rows.push(h('tr', { class: 'output-row' }, h('td', { colspan: 7 }, outputPane(execution))));
    return rows;
  }

  /** One run (execution group): a cell spanning its rows says when it started, how, and its status. */
  function runRows({ group, list }) {
    const status = groupStatus(list);
    const started = list.reduce((a, e) => (e.started_at < a ? e.started_at : a), list[0].started_at);
    const scheduled = list.some((e) => e.scheduled_at);
    const span = list.length + list.filter((e) => expanded.has(e.id)).length;
    const runCell = h('th', { scope: 'rowgroup', rowspan: span, class: 'run-cell' },
      h('div', { class: 'run-time' }, time(started)),
      h('div', { class: 'run-meta' },
        badge(status),
        h('span', { class: 'muted small' }, ` ${scheduled ? 'scheduled' : 'manual'}${list.length > 1 ? ` · ${list.length} executions` : ''}`)));
    return h('tbody', { class: 'group', 'data-group': String(group) },
      list.map((e, i) => executionRows(e, i === 0 ? runCell : null)));
  }

  function drawExecutions() {
    rerender(executionsBox, () => {
      const header = [
        h('div', { class: 'section-head' },
          h('h2', { id: 'executions-title' }, 'Executions'),
          h('span', { class: 'muted small' }, executionsTotal > executions.length
            ? `latest ${count(executions.length)} of ${count(executionsTotal)}, grouped by run` : `${count(executionsTotal)} kept, grouped by run`)),
      ];
      if (!executions.length) return [...header, h('p', { class: 'empty' }, 'No executions yet. "Run now" starts one.')];
      const numeric = new Set(['Attempt', 'Duration']);
      return [...header, h('div', { class: 'table-scroll' }, h('table', { class: 'executions-table responsive' },
        h('caption', { class: 'visually-hidden' }, 'Executions grouped by run'),
        h('thead', {}, h('tr', {},
          ['Run', 'Status', 'Node', 'Attempt', 'Started', 'Duration', 'Output', ''].map((label) => h('th', { scope: 'col', class: numeric.has(label) ? 'num' : null }, label ? label : h('span', { class: 'visually-hidden' }, 'Actions'))))),
        groupsOf(executions).map(runRows)))];
    });
  }

  // --- loading ---------------------------------------------------------------------------
  async function toggleOutput(execution) {
    if (expanded.has(execution.id)) {
      expanded.delete(execution.id);
      drawExecutions();
      return;
    }
    expanded.add(execution.id);
    drawExecutions();
    await loadOutput(execution);
  }

  async function loadOutput(execution) {
    try {
      if (isRunning(execution)) {
        const running = (await api.busy({ signal: ctx.signal })).find((e) => e.id === execution.id);
        if (running) {
          outputs.set(execution.id, { text: running.output, full: false, live: true });
          drawExecutions();
          return;
        }
      }
      const full = await api.execution(name, execution.id, { signal: ctx.signal });
      outputs.set(execution.id, { text: full.output, full: true, live: false });
    } catch (error) {
      if (error.name === 'AbortError') return;
      outputs.set(execution.id, { text: `Could not load the output: ${error.message}`, full: false, live: false });
    }
    drawExecutions();
  }

  async function loadNext() {
    lastNext = Date.now();
    nextLoadedFor = nextKey(job);
    next = await api.next(name, 5, { signal: ctx.signal });
    drawNext();
  }

  async function refresh(force = false) {
    const running = executions.some(isRunning);
    // Once a second while something runs (live output), else every three seconds.
    if (!force && !running && Date.now() - lastFull < 3000) return;
    lastFull = Date.now();
    const [fresh, list] = await Promise.all([
      api.job(name, { signal: ctx.signal }),
      api.executions(name, { _start: 0, _end: EXECUTIONS_SHOWN, output_size_limit: PREVIEW_BYTES }, { signal: ctx.signal }),
    ]);
    job = fresh;
    executions = list.data || [];
    executionsTotal = list.total ?? executions.length;
    // Refresh the outputs of expanded executions: live ones from /v1/busy, finished ones once.
    const openRunning = executions.filter((e) => expanded.has(e.id) && isRunning(e));
    if (openRunning.length) {
      const busy = await api.busy({ signal: ctx.signal });
      for (const e of openRunning) {
        const live = busy.find((b) => b.id === e.id);
        if (live) outputs.set(e.id, { text: live.output, full: false, live: true });
      }
    }
    const finishedStale = executions.filter((e) => expanded.has(e.id) && !isRunning(e) && !(outputs.get(e.id) || {}).full);
    for (const e of finishedStale) await loadOutput(e);
    drawHead();
    drawDetails();
    drawExecutions();
    if (nextKey(job) !== nextLoadedFor || Date.now() - lastNext > 30000) await loadNext();
  }

  try {
    job = await api.job(name, { signal: ctx.signal });
  } catch (error) {
    if (error.status === 404) {
      mount(main, h('h1', {}, 'No such job'), h('p', {}, 'There is no job named ', h('code', {}, name), '. ', h('a', { href: '/ui/jobs' }, 'See the jobs.')));
      return;
    }
    throw error;
  }
  mount(main, head, executionsBox, h('div', { class: 'job-grid' }, details, nextBox));
  drawHead();
  drawDetails();
  drawNext();
  drawExecutions();
  await refresh(true);
  api.missed(name, { signal: ctx.signal }).then((m) => { missed = m; drawDetails(); }).catch(() => {});
  ctx.every(1000, () => refresh());
}

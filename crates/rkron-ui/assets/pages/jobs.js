// Jobs: one page of jobs at a time from the server (`_start`/`_end`/`_sort`/`_order` and the
// filters `q`, `status`, `disabled`, `metadata[k]=v`), with bulk run, toggle and delete.
// The page, sort and filters live in the URL, so back, reload and links keep them.

import { api } from '../api.js';
import { h, mount, rerender, debounce, toast, confirmDialog, failure } from '../dom.js';
import { time, badge, count, isZero, browserZone } from '../format.js';

const PAGE_SIZES = [10, 25, 50, 100];
const DEFAULT_SIZE = 25;

const COLUMNS = [
  { key: 'name', label: 'Name', sort: 'name' },
  { key: 'schedule', label: 'Schedule', sort: 'schedule' },
  { key: 'status', label: 'Status' },
  { key: 'enabled', label: 'Enabled' },
  { key: 'success_count', label: 'Successes', sort: 'success_count', numeric: true, wide: true },
  { key: 'error_count', label: 'Errors', sort: 'error_count', numeric: true, wide: true },
  { key: 'last_success', label: 'Last success', sort: 'last_success', wide: true },
  { key: 'last_error', label: 'Last error', sort: 'last_error', wide: true },
  { key: 'next', label: 'Next run', sort: 'next' },
];

const STATUSES = [
  ['', 'Any status'],
  ['success', 'Success'],
  ['failed', 'Failed'],
  ['partially_failed', 'Partially failed'],
  ['untriggered', 'Never ran'],
];

/** Reads the list state from the URL query. */
function readState(query) {
  const size = Number(query.get('size')) || DEFAULT_SIZE;
  return {
    page: Math.max(1, Number(query.get('page')) || 1),
    size: PAGE_SIZES.includes(size) ? size : DEFAULT_SIZE,
    sort: query.get('sort') || 'name',
    order: query.get('order') === 'DESC' ? 'DESC' : 'ASC',
    q: query.get('q') || '',
    status: query.get('status') || '',
    disabled: query.get('disabled') || '',
    meta: query.get('meta') || '',
  };
}

function stateUrl(state) {
  const query = new URLSearchParams();
  if (state.page > 1) query.set('page', state.page);
  if (state.size !== DEFAULT_SIZE) query.set('size', state.size);
  if (state.sort !== 'name') query.set('sort', state.sort);
  if (state.order !== 'ASC') query.set('order', state.order);
  for (const key of ['q', 'status', 'disabled', 'meta']) if (state[key]) query.set(key, state[key]);
  const text = query.toString();
  return text ? `/ui/jobs?${text}` : '/ui/jobs';
}

/** Parses the metadata filter `k=v, k2=v2` into pairs. */
function metadataPairs(text) {
  return text.split(',').map((part) => part.trim()).filter(Boolean).map((part) => {
    const at = part.indexOf('=');
    return at < 0 ? [part, ''] : [part.slice(0, at).trim(), part.slice(at + 1).trim()];
  });
}

function apiQuery(state) {
  const start = (state.page - 1) * state.size;
  const query = [
    ['_start', start], ['_end', start + state.size],
    ['_sort', state.sort], ['_order', state.order],
    ['q', state.q], ['status', state.status], ['disabled', state.disabled],
  ];
  for (const [k, v] of metadataPairs(state.meta)) query.push([`metadata[${k}]`, v]);
  return query;
}

/** Tells whether the listing is the store's fast path (no filter, name order). */
function isFastPath(state) {
  return state.sort === 'name' && !state.q && !state.status && !state.disabled && !state.meta;
}

function nextRun(job) {
  if (job.disabled) return h('span', { class: 'muted', title: 'Disabled: scheduled runs are skipped' }, 'disabled');
  if (isZero(job.next)) return h('span', { class: 'muted', title: job.parent_job ? 'Runs after its parent' : 'Never fires on its own' }, '—');
  return time(job.next, { relative: true, compact: true });
}

export async function render(main, ctx) {
  const state = readState(ctx.query);
  ctx.setTitle('Jobs');
  const selected = new Set();
  let jobs = [];
  let total = 0;
  let busyAction = false;

  // Filter, sort and page changes update the URL and reload the list in place, so the search
  // box keeps focus while typing; back and forward re-render from the URL.
  const go = (changes, { replace = false } = {}) => {
    Object.assign(state, changes);
    const url = stateUrl(state);
    if (replace) window.history.replaceState(null, '', url);
    else window.history.pushState(null, '', url);
    load().catch(showFailure);
  };

  // --- filters ---------------------------------------------------------------------------
  const search = h('input', {
    type: 'search', id: 'job-search', name: 'q', value: state.q, placeholder: 'Name or display name', autocomplete: 'off',
    'aria-describedby': 'search-hint',
  });
  const status = h('select', { id: 'job-status', name: 'status' },
    STATUSES.map(([value, label]) => h('option', { value, selected: value === state.status }, label)));
  const enabled = h('select', { id: 'job-enabled', name: 'disabled' },
    h('option', { value: '', selected: !state.disabled }, 'Enabled or not'),
    h('option', { value: 'false', selected: state.disabled === 'false' }, 'Enabled'),
    h('option', { value: 'true', selected: state.disabled === 'true' }, 'Disabled'));
  const meta = h('input', {
    type: 'text', id: 'job-metadata', name: 'meta', value: state.meta, placeholder: 'key=value, …', autocomplete: 'off',
  });
  const applySearch = debounce(() => go({ q: search.value.trim(), page: 1 }, { replace: true }), 350);
  search.addEventListener('input', applySearch);
  status.addEventListener('change', () => go({ status: status.value, page: 1 }));
  enabled.addEventListener('change', () => go({ disabled: enabled.value, page: 1 }));
  meta.addEventListener('change', () => go({ meta: meta.value.trim(), page: 1 }));
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter jobs', onsubmit: (e) => {
    e.preventDefault();
    go({ q: search.value.trim(), meta: meta.value.trim(), page: 1 });
  } },
    h('div', { class: 'field' }, h('label', { for: 'job-search' }, 'Search'), search,
      h('span', { id: 'search-hint', class: 'hint' }, 'Case-sensitive; press / to focus')),
    h('div', { class: 'field' }, h('label', { for: 'job-status' }, 'Status'), status),
    h('div', { class: 'field' }, h('label', { for: 'job-enabled' }, 'Enabled'), enabled),
    h('div', { class: 'field' }, h('label', { for: 'job-metadata' }, 'Metadata'), meta),
    h('button', { type: 'submit', class: 'visually-hidden' }, 'Apply filters'));

  // --- bulk actions ----------------------------------------------------------------------
  const bulkInfo = h('span', { class: 'bulk-info', 'aria-live': 'polite' });
  const runButton = h('button', { type: 'button', class: 'button', 'data-test': 'bulk-run' }, 'Run now');
  const toggleButton = h('button', { type: 'button', class: 'button', 'data-test': 'bulk-toggle' }, 'Toggle enabled');
  const deleteButton = h('button', { type: 'button', class: 'button danger', 'data-test': 'bulk-delete' }, 'Delete');
  const bulk = h('div', { class: 'bulk', role: 'toolbar', 'aria-label': 'Actions on the selected jobs' },
    bulkInfo, runButton, toggleButton, deleteButton);

  async function bulkAction(verb, call) {
    const names = [...selected];
    if (!names.length || busyAction) return;
    busyAction = true;
    updateBulk();
    const results = await Promise.allSettled(names.map((name) => call(name)));
    busyAction = false;
    const failed = results.map((r, i) => [r, names[i]]).filter(([r]) => r.status === 'rejected');
    if (failed.length) {
      toast(`${verb}: ${failed.length} of ${names.length} failed: ${failed.map(([r, n]) => `${n}: ${r.reason.message}`).join('; ')}`, 'error');
    } else {
      toast(`${verb}: ${names.length} job${names.length === 1 ? '' : 's'}`);
    }
    if (verb === 'Deleted') selected.clear();
    await load();
  }
  runButton.addEventListener('click', () => bulkAction('Started', api.run));
  toggleButton.addEventListener('click', () => bulkAction('Toggled', api.toggle));
  deleteButton.addEventListener('click', async () => {
    const names = [...selected];
    const ok = await confirmDialog({
      title: `Delete ${names.length} job${names.length === 1 ? '' : 's'}?`,
      body: h('div', {}, h('p', {}, 'Their executions are deleted too. This cannot be undone.'),
        h('ul', { class: 'names' }, names.slice(0, 10).map((n) => h('li', { class: 'mono' }, n)),
          names.length > 10 ? h('li', {}, `and ${names.length - 10} more`) : null)),
      confirm: 'Delete', danger: true,
    });
    if (ok) await bulkAction('Deleted', api.remove);
  });

  function updateBulk() {
    const n = selected.size;
    bulkInfo.textContent = n ? `${count(n)} selected` : 'Select jobs to run, toggle or delete them';
    for (const b of [runButton, toggleButton, deleteButton]) b.disabled = n === 0 || busyAction;
  }

  // --- table -----------------------------------------------------------------------------
  const tableBox = h('div', { class: 'table-box' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of jobs' });
  const summary = h('p', { class: 'summary', 'aria-live': 'polite' });

  function sortHeader(column) {
    if (!column.sort) return h('th', { scope: 'col', class: column.wide ? 'col-wide' : null }, column.label);
    const active = state.sort === column.sort;
    const nextOrder = active && state.order === 'ASC' ? 'DESC' : 'ASC';
    const ariaSort = active ? (state.order === 'ASC' ? 'ascending' : 'descending') : 'none';
    return h('th', { scope: 'col', 'aria-sort': ariaSort, class: [column.wide ? 'col-wide' : null, column.numeric ? 'num' : null] },
      h('button', {
        type: 'button', class: 'sort', 'data-key': `sort-${column.sort}`,
        onclick: () => go({ sort: column.sort, order: nextOrder, page: 1 }),
        title: `Sort by ${column.label.toLowerCase()}`,
      }, column.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' }, active ? (state.order === 'ASC' ? '▲' : '▼') : '')));
  }

  function row(job) {
    const checkbox = h('input', {
      type: 'checkbox', checked: selected.has(job.name), 'data-key': `select-${job.name}`,
      'aria-label': `Select ${job.name}`,
      onchange: (e) => {
        if (e.target.checked) selected.add(job.name); else selected.delete(job.name);
        updateBulk();
        syncSelectAll();
      },
    });
    const href = `/ui/jobs/${encodeURIComponent(job.name)}`;
    return h('tr', { 'data-job': job.name },
      h('td', { class: 'select' }, checkbox),
      h('td', { 'data-label': 'Name', class: 'name' },
        h('a', { href, 'data-key': `link-${job.name}` }, job.name),
        job.displayname ? h('div', { class: 'muted small' }, job.displayname) : null),
      h('td', { 'data-label': 'Schedule' }, h('code', {}, job.schedule || (job.parent_job ? `after ${job.parent_job}` : '—')),
        job.timezone ? h('div', { class: 'muted small' }, job.timezone) : null),
      h('td', { 'data-label': 'Status' }, badge(job.status)),
      h('td', { 'data-label': 'Enabled' }, job.disabled ? badge('disabled', 'Disabled') : badge('enabled', 'Enabled')),
      h('td', { 'data-label': 'Successes', class: 'num col-wide' }, count(job.success_count)),
      h('td', { 'data-label': 'Errors', class: ['num', 'col-wide', job.error_count ? 'bad-text' : null] }, count(job.error_count)),
      h('td', { 'data-label': 'Last success', class: 'col-wide' }, time(job.last_success, { compact: true })),
      h('td', { 'data-label': 'Last error', class: 'col-wide' }, time(job.last_error, { compact: true })),
      h('td', { 'data-label': 'Next run' }, nextRun(job)));
  }

  const selectAll = h('input', {
    type: 'checkbox', 'aria-label': 'Select every job on this page', 'data-key': 'select-all',
    onchange: (e) => {
      for (const job of jobs) {
        if (e.target.checked) selected.add(job.name); else selected.delete(job.name);
      }
      updateBulk();
      drawTable();
    },
  });
  function syncSelectAll() {
    const onPage = jobs.filter((j) => selected.has(j.name)).length;
    selectAll.checked = jobs.length > 0 && onPage === jobs.length;
    selectAll.indeterminate = onPage > 0 && onPage < jobs.length;
  }

  function drawTable() {
    rerender(tableBox, () => {
      if (!jobs.length) {
        const filtered = Boolean(state.q || state.status || state.disabled || state.meta);
        return h('div', { class: 'empty' },
          filtered ? 'No job matches these filters.' : (total ? 'This page is past the last job.' : 'No jobs yet. '),
          !total && !filtered ? h('a', { href: '/ui/create' }, 'Create the first one.') : null);
      }
      syncSelectAll();
      return h('table', { class: 'jobs responsive' },
        h('caption', { class: 'visually-hidden' }, `Jobs; times in your zone, ${browserZone}`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'select' }, selectAll), COLUMNS.map(sortHeader))),
        h('tbody', {}, jobs.map(row)));
    });
  }

  function drawPager() {
    const pages = Math.max(1, Math.ceil(total / state.size));
    const first = total ? (state.page - 1) * state.size + 1 : 0;
    const last = Math.min(total, state.page * state.size);
    summary.textContent = total ? `${count(first)}–${count(last)} of ${count(total)} jobs` : '0 jobs';
    const link = (label, page, disabled, key) => disabled
      ? h('span', { class: 'button disabled', 'aria-disabled': 'true' }, label)
      : h('a', {
        class: 'button', href: stateUrl({ ...state, page }), 'data-key': key,
        rel: key === 'next' ? 'next' : key === 'prev' ? 'prev' : null,
        onclick: (e) => {
          if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
          e.preventDefault();
          go({ page });
        },
      }, label);
    const pageInput = h('input', {
      type: 'number', min: 1, max: pages, value: state.page, id: 'page-number', class: 'page-number', 'data-key': 'page-number',
      onchange: (e) => {
        const page = Math.min(pages, Math.max(1, Number(e.target.value) || 1));
        go({ page });
      },
    });
    const sizeSelect = h('select', { id: 'page-size', 'data-key': 'page-size', onchange: (e) => go({ size: Number(e.target.value), page: 1 }) },
      PAGE_SIZES.map((n) => h('option', { value: n, selected: n === state.size }, `${n} per page`)));
    rerender(pager, () => [
      link('« First', 1, state.page <= 1, 'first'),
      link('‹ Previous', state.page - 1, state.page <= 1, 'prev'),
      h('span', { class: 'page-of' }, h('label', { for: 'page-number' }, 'Page '), pageInput, ` of ${count(pages)}`),
      link('Next ›', state.page + 1, state.page >= pages, 'next'),
      link('Last »', pages, state.page >= pages, 'last'),
      h('label', { for: 'page-size', class: 'visually-hidden' }, 'Jobs per page'), sizeSelect,
    ]);
  }

  let sequence = 0;
  let loadedAt = 0;
  async function load() {
    const mine = ++sequence;
    const answer = await api.jobs(apiQuery(state), { signal: ctx.signal });
    // A slower answer to an older query must not overwrite a newer one.
    if (mine !== sequence) return;
    loadedAt = Date.now();
    jobs = answer.data || [];
    total = answer.total ?? jobs.length;
    drawTable();
    drawPager();
    updateBulk();
  }

  mount(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Jobs'),
      h('span', { class: 'muted small' }, `Times in your zone, ${browserZone}; UTC on hover`)),
    filters,
    h('div', { class: 'list-bar' }, summary, bulk),
    tableBox,
    pager);
  updateBulk();
  function showFailure(error) {
    if (error.name === 'AbortError') return;
    mount(tableBox, failure(error, () => load().catch(showFailure)));
  }
  await load().catch(showFailure);
  // Statuses change as jobs run: refresh the page now and then. A filtered or sorted listing
  // reads every job, so it is refreshed less often (and polling slows down as it gets slower).
  ctx.every(5000, () => (isFastPath(state) || Date.now() - loadedAt > 30000 ? load() : null));
}

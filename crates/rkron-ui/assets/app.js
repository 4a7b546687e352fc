// The dashboard's entry point: routes /ui/... paths to pages, runs their polling while they are
// shown, and keeps the header (this node, running count, pause banner) up to date.

import { api } from './api.js';
import { h, mount, failure } from './dom.js';
import { count } from './format.js';
import * as overview from './pages/overview.js';
import * as jobs from './pages/jobs.js';
import * as job from './pages/job.js';
import * as edit from './pages/edit.js';
import * as busy from './pages/busy.js';
import * as members from './pages/members.js';

const ROUTES = [
  { pattern: /^\/ui\/?$/, page: overview, nav: 'overview' },
  { pattern: /^\/ui\/jobs\/?$/, page: jobs, nav: 'jobs' },
  { pattern: /^\/ui\/create\/?$/, page: edit, nav: 'jobs' },
  { pattern: /^\/ui\/jobs\/([^/]+)\/edit\/?$/, page: edit, nav: 'jobs' },
  { pattern: /^\/ui\/jobs\/([^/]+)\/?$/, page: job, nav: 'jobs' },
  { pattern: /^\/ui\/busy\/?$/, page: busy, nav: 'busy' },
  { pattern: /^\/ui\/members\/?$/, page: members, nav: 'members' },
];

const main = document.getElementById('main');
/** A poll waits at least this many times as long as it took. */
const POLL_LOAD_FACTOR = 20;
let current = null;

/** Goes to a dashboard path (`/ui/...`), adding a history entry unless `replace`. */
export function navigate(path, { replace = false } = {}) {
  if (replace) window.history.replaceState(null, '', path);
  else window.history.pushState(null, '', path);
  route({ focus: !replace });
}

/**
 * The per-page context: URL parameters and query, an abort signal for the page's requests,
 * and `every(ms, fn)`, which polls while the page is shown and the tab is visible.
 */
function createContext(params, query) {
  const controller = new AbortController();
  const timers = new Set();
  const ctx = {
    params,
    query,
    signal: controller.signal,
    navigate,
    setTitle(title) {
      document.title = `${title} · rkron`;
    },
    every(ms, fn) {
      const tick = async () => {
        timers.delete(handle);
        if (controller.signal.aborted) return;
        let took = 0;
        if (!document.hidden) {
          const started = performance.now();
          try {
            await fn();
          } catch (error) {
            if (error.name !== 'AbortError') console.warn('poll failed', error);
          }
          took = performance.now() - started;
        }
        if (!controller.signal.aborted) {
          // A poll that keeps the server busy (a filter over 100,000 jobs) comes less often:
          // the dashboard never takes more than about 5% of the server's time.
          handle = setTimeout(tick, Math.max(ms, POLL_LOAD_FACTOR * took));
          timers.add(handle);
        }
      };
      let handle = setTimeout(tick, ms);
      timers.add(handle);
    },
    dispose() {
      controller.abort();
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
  return ctx;
}

async function route({ focus = false } = {}) {
  if (current) current.dispose();
  const path = window.location.pathname;
  const query = new URLSearchParams(window.location.search);
  const match = ROUTES.map((r) => ({ r, m: path.match(r.pattern) })).find((x) => x.m);
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (match && link.dataset.nav === match.r.nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (!match) {
    document.title = 'Not found · rkron';
    mount(main, h('h1', { tabindex: '-1' }, 'Not found'),
      h('p', {}, 'No dashboard page at ', h('code', {}, path), '. ', h('a', { href: '/ui/jobs' }, 'See the jobs.')));
    return;
  }
  const params = match.m.slice(1).map(decodeURIComponent);
  const ctx = createContext(params, query);
  current = ctx;
  try {
    await match.r.page.render(main, ctx);
  } catch (error) {
    if (error.name === 'AbortError' || ctx.signal.aborted) return;
    mount(main, failure(error, () => route()));
  }
  if (focus && !ctx.signal.aborted) {
    const heading = main.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    }
    window.scrollTo(0, 0);
  }
}

// Links inside the dashboard navigate without reloading the page.
document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest('a[href]');
  if (!link || link.target || link.hasAttribute('download')) return;
  const url = new URL(link.href, window.location.href);
  if (url.origin !== window.location.origin || !url.pathname.startsWith('/ui/')) return;
  if (url.pathname.startsWith('/ui/assets/')) return;
  event.preventDefault();
  if (url.pathname === window.location.pathname && url.search === window.location.search && url.hash) return;
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', () => route({ focus: true }));

// "/" focuses the page's search box, as in many dashboards.
document.addEventListener('keydown', (event) => {
  if (event.key !== '/' || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.closest('input, textarea, select, [contenteditable]')) return;
  const search = main.querySelector('input[type="search"]');
  if (search) {
    event.preventDefault();
    search.focus();
  }
});

async function refreshHeader() {
  try {
    const running = await api.busy();
    const badge = document.getElementById('busy-count');
    badge.hidden = running.length === 0;
    badge.textContent = count(running.length);
    badge.title = `${count(running.length)} running`;
  } catch {
    // The page itself reports an unreachable server.
  }
}

async function startHeader() {
  try {
    const status = await api.status();
    const node = document.getElementById('node');
    node.textContent = `${status.agent.name} · ${status.agent.version}`;
    const paused = await api.pause();
    const banner = document.getElementById('banner');
    if (paused.paused) {
      banner.textContent = 'Job submissions are paused on this cluster (POST /v1/unpause resumes them): creating and editing jobs is refused.';
      banner.hidden = false;
    }
  } catch {
    // Shown by the page.
  }
  await refreshHeader();
  setInterval(() => { if (!document.hidden) refreshHeader(); }, 5000);
}

route();
startHeader();

// Overview: the leader, jobs counted by status, the members with their status and tags, and the
// jobs that failed most recently.

import { api } from '../api.js';
import { h, rerender } from '../dom.js';
import { time, badge, count, chips } from '../format.js';

/** Failed jobs listed. */
const RECENT_FAILURES = 10;

function card(label, value, { href, kind, test } = {}) {
  const body = [h('span', { class: 'card-value' }, value), h('span', { class: 'card-label' }, label)];
  return h('li', { class: ['card', kind] }, href ? h('a', { href, 'data-key': `card-${label}`, 'data-test': test }, body) : h('div', { 'data-test': test }, body));
}

export function membersTable(members, leaderName) {
  if (!members.length) return h('p', { class: 'empty' }, 'No members known.');
  return h('table', { class: 'members responsive' },
    h('caption', { class: 'visually-hidden' }, 'Members'),
    h('thead', {}, h('tr', {}, ['Name', 'Role', 'Status', 'Address', 'Tags'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, members.map((m) => {
      const tags = { ...(m.Tags || {}) };
      const role = tags.server === 'true' || tags.dkron_server === 'true' ? 'server' : 'agent';
      return h('tr', { 'data-member': m.Name, class: m.Name === leaderName ? 'leader' : null },
        h('td', { 'data-label': 'Name', class: 'mono' }, m.Name, m.Name === leaderName ? [' ', h('span', { class: 'badge leader-badge', 'data-test': 'leader' }, 'leader')] : null),
        h('td', { 'data-label': 'Role' }, role),
        h('td', { 'data-label': 'Status' }, badge(m.statusText || 'none')),
        h('td', { 'data-label': 'Address', class: 'mono' }, `${m.Addr}:${m.Port}`, tags.rpc_addr ? h('div', { class: 'muted small' }, `RPC ${tags.rpc_addr}`) : null),
        h('td', { 'data-label': 'Tags' }, chips(tags)));
    })));
}

export async function render(main, ctx) {
  ctx.setTitle('Overview');
  const box = h('div', { class: 'overview' });
  main.replaceChildren(h('h1', {}, 'Overview'), box);

  async function load() {
    const [summary, leader, members, failures] = await Promise.all([
      api.summary({ signal: ctx.signal }),
      api.leader(),
      api.members({ signal: ctx.signal }),
      api.jobs({ status: 'failed', _sort: 'last_error', _order: 'DESC', _start: 0, _end: RECENT_FAILURES }, { signal: ctx.signal }),
    ]);
    const jobs = summary.jobs;
    const alive = members.filter((m) => m.statusText === 'alive').length;
    rerender(box, () => [
      h('ul', { class: 'cards', 'aria-label': 'Summary' },
        card('Leader', leader ? leader.Name : 'none', { kind: leader ? 'text' : 'bad', href: '/ui/members', test: 'leader-card' }),
        card('Jobs', count(jobs.total), { href: '/ui/jobs', test: 'total' }),
        card('Succeeded', count(jobs.success), { kind: 'ok', href: '/ui/jobs?status=success' }),
        card('Failed', count(jobs.failed), { kind: jobs.failed ? 'bad' : null, href: '/ui/jobs?status=failed', test: 'failed' }),
        card('Partially failed', count(jobs.partially_failed), { kind: jobs.partially_failed ? 'warn' : null, href: '/ui/jobs?status=partially_failed' }),
        card('Never ran', count(jobs.untriggered), { href: '/ui/jobs?status=untriggered' }),
        card('Disabled', count(jobs.disabled), { href: '/ui/jobs?disabled=true' }),
        card('Running now', count(summary.running), { kind: summary.running ? 'run' : null, href: '/ui/busy' }),
        card('Members alive', `${count(alive)} / ${count(members.length)}`, { kind: alive < members.length ? 'warn' : null, href: '/ui/members' })),
      h('div', { class: 'two-columns' },
        h('section', { class: 'panel', 'aria-labelledby': 'failures-title' },
          h('h2', { id: 'failures-title' }, 'Recent failures'),
          failures.data.length
            ? h('table', { class: 'responsive' },
              h('thead', {}, h('tr', {}, ['Job', 'Last error', 'Errors', 'Last success'].map((c) => h('th', { scope: 'col' }, c)))),
              h('tbody', {}, failures.data.map((j) => h('tr', {},
                h('td', { 'data-label': 'Job' }, h('a', { href: `/ui/jobs/${encodeURIComponent(j.name)}`, 'data-key': `failure-${j.name}` }, j.name)),
                h('td', { 'data-label': 'Last error' }, time(j.last_error, { relative: true })),
                h('td', { 'data-label': 'Errors', class: 'num bad-text' }, count(j.error_count)),
                h('td', { 'data-label': 'Last success' }, time(j.last_success))))))
            : h('p', { class: 'empty' }, 'No job is failing.'),
          failures.total > failures.data.length ? h('p', {}, h('a', { href: '/ui/jobs?status=failed&sort=last_error&order=DESC' }, `All ${count(failures.total)} failed jobs`)) : null),
        h('section', { class: 'panel', 'aria-labelledby': 'members-title' },
          h('h2', { id: 'members-title' }, 'Members'),
          membersTable(members, leader && leader.Name))),
    ]);
  }
  await load();
  ctx.every(5000, load);
}

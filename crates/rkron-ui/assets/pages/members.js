// Members: every member gossip knows, with status, tags and addresses; the leader is marked.

import { api } from '../api.js';
import { h, rerender } from '../dom.js';
import { count } from '../format.js';
import { membersTable } from './overview.js';

export async function render(main, ctx) {
  ctx.setTitle('Members');
  const summary = h('p', { class: 'summary', 'aria-live': 'polite' });
  const box = h('div', { class: 'table-box' });
  main.replaceChildren(h('div', { class: 'page-head' }, h('h1', {}, 'Members')), summary, box);
  async function load() {
    const [members, leader] = await Promise.all([api.members({ signal: ctx.signal }), api.leader()]);
    const alive = members.filter((m) => m.statusText === 'alive').length;
    summary.textContent = `${count(members.length)} members, ${count(alive)} alive; leader: ${leader ? leader.Name : 'none'}`;
    rerender(box, () => membersTable(members, leader && leader.Name));
  }
  await load();
  ctx.every(3000, load);
}

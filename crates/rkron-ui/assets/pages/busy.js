// Busy: the executions running now across the cluster, refreshed every second, with their output
// so far and a kill button.

import { api } from '../api.js';
import { h, rerender, toast, confirmDialog } from '../dom.js';
import { time, count, executionDuration } from '../format.js';

export async function render(main, ctx) {
  ctx.setTitle('Busy');
  const summary = h('p', { class: 'summary', 'aria-live': 'polite' });
  const box = h('div', { class: 'table-box' });
  const expanded = new Set();
  let running = [];
  main.replaceChildren(h('div', { class: 'page-head' }, h('h1', {}, 'Busy')), summary, box);

  async function kill(e) {
    const ok = await confirmDialog({
      title: `Kill ${e.job_name} on ${e.node_name}?`,
      body: h('p', {}, 'The run is stopped with its whole process group and recorded as failed.'),
      confirm: 'Kill', danger: true,
    });
    if (!ok) return;
    try {
      await api.kill(e.job_name, e.id);
      toast(`Kill sent to ${e.job_name}`);
      await load();
    } catch (error) {
      toast(`Kill failed: ${error.message}`, 'error');
    }
  }

  function draw() {
    summary.textContent = running.length ? `${count(running.length)} running` : '';
    rerender(box, () => {
      if (!running.length) return h('p', { class: 'empty' }, 'Nothing is running right now.');
      return h('table', { class: 'responsive busy' },
        h('caption', { class: 'visually-hidden' }, 'Running executions'),
        h('thead', {}, h('tr', {}, ['Job', 'Node', 'Attempt', 'Started', 'Running for', 'Output', ''].map((c) => h('th', { scope: 'col' }, c)))),
        running.map((e) => {
          const open = expanded.has(e.id);
          const lines = (e.output || '').trimEnd().split('\n');
          return h('tbody', { 'data-execution': e.id },
            h('tr', {},
              h('td', { 'data-label': 'Job' }, h('a', { href: `/ui/jobs/${encodeURIComponent(e.job_name)}`, 'data-key': `job-${e.id}` }, e.job_name)),
              h('td', { 'data-label': 'Node', class: 'mono' }, e.node_name),
              h('td', { 'data-label': 'Attempt', class: 'num' }, e.attempt),
              h('td', { 'data-label': 'Started' }, time(e.started_at)),
              h('td', { 'data-label': 'Running for', class: 'num' }, executionDuration(e)),
              h('td', { 'data-label': 'Output', class: 'preview mono' }, lines[lines.length - 1] || h('span', { class: 'muted' }, '—')),
              h('td', { class: 'row-actions' },
                h('button', { type: 'button', class: 'button small', 'aria-expanded': String(open), 'data-key': `toggle-${e.id}`, onclick: () => { if (open) expanded.delete(e.id); else expanded.add(e.id); draw(); } }, open ? 'Hide output' : 'Live output'),
                h('button', { type: 'button', class: 'button small danger', 'data-key': `kill-${e.id}`, onclick: () => kill(e) }, 'Kill'))),
            open ? h('tr', { class: 'output-row' }, h('td', { colspan: 7 },
              h('pre', { class: 'output', tabindex: '0', 'data-key': `out-${e.id}` }, e.output || '(no output yet)'))) : null);
        }));
    });
  }

  async function load() {
    running = await api.busy({ signal: ctx.signal });
    for (const id of [...expanded]) if (!running.some((e) => e.id === id)) expanded.delete(id);
    draw();
  }
  await load();
  ctx.every(1000, load);
}

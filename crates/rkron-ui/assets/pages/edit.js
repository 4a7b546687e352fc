// Create and edit a job: a form for every field (with the executor's own keys), the next five
// fire times while the schedule is typed, the API's validation message next to the field it
// concerns, and a raw JSON mode.

import { api } from '../api.js';
import { h, mount, debounce, toast } from '../dom.js';
import { formatInstant, formatUtc, browserZone } from '../format.js';
import {
  EXECUTOR_KEYS, fieldForError, keyValueEditor, toLocalInput, fromLocalInput, newJob, submission,
} from '../jobform.js';

const NOTIFY_ON = ['success', 'failure', 'recovery'];

let zoneList = null;
function zones() {
  if (!zoneList) {
    try { zoneList = Intl.supportedValuesOf('timeZone'); } catch { zoneList = []; }
  }
  return zoneList;
}

export async function render(main, ctx) {
  const editing = ctx.params.length > 0 ? ctx.params[0] : null;
  const from = ctx.query.get('from');
  ctx.setTitle(editing ? `Edit ${editing}` : 'New job');

  let original;
  if (editing) original = await api.job(editing, { signal: ctx.signal });
  else if (from) original = { ...(await api.job(from, { signal: ctx.signal })), name: '', dependent_jobs: null };
  else original = newJob();
  const base = submission(original);

  // --- inputs ----------------------------------------------------------------------------
  const errorSlots = new Map();
  const inputs = {};
  const errorSlot = (key) => {
    const slot = h('p', { class: 'field-error', id: `err-${key}`, 'data-test': `error-${key}`, hidden: true });
    errorSlots.set(key, slot);
    return slot;
  };
  /** A labelled field: input, hint, error slot; the input is described by both. */
  const field = (key, label, input, { hint, required, wide } = {}) => {
    input.id = input.id || `f-${key}`;
    inputs[key] = input;
    const described = [hint ? `hint-${key}` : null, `err-${key}`].filter(Boolean).join(' ');
    input.setAttribute('aria-describedby', described);
    if (required) input.setAttribute('aria-required', 'true');
    const isCheck = input.type === 'checkbox';
    return h('div', { class: ['field', isCheck ? 'check' : null, wide ? 'wide' : null] },
      isCheck ? [input, h('label', { for: input.id }, label)] : [h('label', { for: input.id }, label, required ? h('span', { class: 'required', 'aria-hidden': 'true' }, ' *') : null), input],
      hint ? h('p', { class: 'hint', id: `hint-${key}` }, hint) : null,
      errorSlot(key));
  };
  const text = (value, props = {}) => h('input', { type: 'text', value: value ?? '', autocomplete: 'off', spellcheck: 'false', ...props });
  const check = (value) => h('input', { type: 'checkbox', checked: Boolean(value) });

  const name = text(base.name, { class: 'mono', readonly: Boolean(editing), required: true });
  const displayname = text(base.displayname);
  const schedule = text(base.schedule, { class: 'mono', placeholder: '@every 10m · 0 30 9 * * 1-5 · @daily' });
  const timezone = text(base.timezone, { list: 'zones', placeholder: 'UTC' });
  const disabled = check(base.disabled);
  const concurrency = h('select', {},
    h('option', { value: 'allow', selected: base.concurrency !== 'forbid' }, 'allow: runs may overlap'),
    h('option', { value: 'forbid', selected: base.concurrency === 'forbid' }, 'forbid: skip a run while one is going'));
  const retries = h('input', { type: 'number', min: 0, max: 100, value: base.retries ?? 0 });
  const retryInterval = text(base.retry_interval, { placeholder: 'Dkron\'s delay' });
  const startingDeadline = text(base.starting_deadline, { placeholder: '1h' });
  const startsAt = h('input', { type: 'datetime-local', value: toLocalInput(base.starts_at) });
  const expiresAt = h('input', { type: 'datetime-local', value: toLocalInput(base.expires_at) });
  const ephemeral = check(base.ephemeral);
  const parentJob = text(base.parent_job, { class: 'mono', list: 'parents' });
  const owner = text(base.owner);
  const ownerEmail = h('input', { type: 'email', value: base.owner_email || '', autocomplete: 'off' });
  const notifyEmail = text(base.notify_email, { placeholder: 'a@example.com, b@example.com' });
  const notifyWebhook = h('input', { type: 'url', value: base.notify_webhook || '', class: 'mono', autocomplete: 'off' });
  const processors = h('textarea', { rows: 3, class: 'mono', spellcheck: 'false' });
  processors.value = Object.keys(base.processors || {}).length ? JSON.stringify(base.processors, null, 2) : '';
  const notifyChecks = NOTIFY_ON.map((word) => h('input', { type: 'checkbox', id: `f-notify-${word}`, value: word }));
  const setNotify = (value) => {
    const words = (value || '').split(',').map((w) => w.trim());
    for (const c of notifyChecks) c.checked = words.includes(c.value) || words.includes('always');
  };
  setNotify(base.notify_on);

  const tags = keyValueEditor({ id: 'f-tags', label: 'Tags', hint: 'Run on the members whose tags match all of these; "value:2" picks two of them. No tags: every member.' });
  const metadata = keyValueEditor({ id: 'f-metadata', label: 'Metadata', hint: 'Free key-value pairs; the jobs list filters on them.' });
  tags.set(base.tags);
  metadata.set(base.metadata);

  // Executor: a select of the built-in executors (any other name can be typed), its keys, and
  // the keys it does not know.
  const executor = text(base.executor, { list: 'executors', class: 'mono' });
  const executorKeysBox = h('div', { class: 'executor-keys' });
  const otherKeys = keyValueEditor({ id: 'f-exec-other', label: 'Other executor keys' });
  let execInputs = {};
  function drawExecutorKeys(config) {
    const known = EXECUTOR_KEYS[executor.value.trim()] || [];
    execInputs = {};
    const rest = { ...config };
    const fields = known.map((spec) => {
      const value = rest[spec.key] ?? '';
      delete rest[spec.key];
      let input;
      if (spec.kind === 'bool') input = h('input', { type: 'checkbox', checked: /^(1|t|true)$/i.test(value) });
      else if (spec.kind === 'select') {
        const options = spec.options.includes(value) || !value ? spec.options : [value, ...spec.options];
        input = h('select', {}, options.map((o) => h('option', { value: o, selected: o === (value || spec.options[0]) }, o)));
      } else if (spec.kind === 'textarea') {
        input = h('textarea', { rows: 3, class: 'mono', spellcheck: 'false' });
        input.value = value;
      } else input = text(value, { class: spec.mono ? 'mono' : null, type: spec.type || 'text' });
      input.id = `f-exec-${spec.key}`;
      execInputs[spec.key] = { spec, input };
      return field(`exec-${spec.key}`, spec.label, input, { hint: spec.hint, required: spec.required, wide: spec.kind === 'textarea' || spec.key === 'command' || spec.key === 'url' });
    });
    otherKeys.set(rest);
    mount(executorKeysBox, fields.length ? fields : h('p', { class: 'hint' }, 'An executor rkron does not know: give its keys below.'));
  }
  function executorConfig() {
    const config = {};
    for (const [key, { spec, input }] of Object.entries(execInputs)) {
      if (spec.kind === 'bool') { if (input.checked) config[key] = 'true'; } else if (input.value !== '') config[key] = input.value;
    }
    return { ...otherKeys.get(), ...config };
  }
  executor.addEventListener('change', () => drawExecutorKeys(executorConfig()));
  drawExecutorKeys(base.executor_config || {});

  // --- reading and filling the form ------------------------------------------------------
  function fromForm() {
    let procs = {};
    const procText = processors.value.trim();
    if (procText) {
      try { procs = JSON.parse(procText); } catch (error) { throw Object.assign(new Error(`processors: not JSON: ${error.message}`), { field: 'processors' }); }
    }
    const notify = notifyChecks.filter((c) => c.checked).map((c) => c.value);
    return {
      ...base,
      name: name.value.trim(),
      displayname: displayname.value,
      schedule: schedule.value.trim(),
      timezone: timezone.value.trim(),
      owner: owner.value,
      owner_email: ownerEmail.value.trim(),
      disabled: disabled.checked,
      tags: tags.get(),
      metadata: metadata.get(),
      retries: Number(retries.value) || 0,
      parent_job: parentJob.value.trim(),
      processors: procs,
      concurrency: concurrency.value,
      executor: executor.value.trim(),
      executor_config: executorConfig(),
      ephemeral: ephemeral.checked,
      starts_at: fromLocalInput(startsAt.value),
      expires_at: fromLocalInput(expiresAt.value),
      retry_interval: retryInterval.value.trim(),
      starting_deadline: startingDeadline.value.trim(),
      notify_on: notify.length === NOTIFY_ON.length ? 'always' : notify.join(','),
      notify_email: notifyEmail.value.trim(),
      notify_webhook: notifyWebhook.value.trim(),
    };
  }

  function fill(job) {
    if (!editing) name.value = job.name || '';
    displayname.value = job.displayname || '';
    schedule.value = job.schedule || '';
    timezone.value = job.timezone || '';
    owner.value = job.owner || '';
    ownerEmail.value = job.owner_email || '';
    disabled.checked = Boolean(job.disabled);
    tags.set(job.tags);
    metadata.set(job.metadata);
    retries.value = job.retries ?? 0;
    parentJob.value = job.parent_job || '';
    processors.value = Object.keys(job.processors || {}).length ? JSON.stringify(job.processors, null, 2) : '';
    concurrency.value = job.concurrency === 'forbid' ? 'forbid' : 'allow';
    executor.value = job.executor || '';
    drawExecutorKeys(job.executor_config || {});
    ephemeral.checked = Boolean(job.ephemeral);
    startsAt.value = toLocalInput(job.starts_at);
    expiresAt.value = toLocalInput(job.expires_at);
    retryInterval.value = job.retry_interval || '';
    startingDeadline.value = job.starting_deadline || '';
    setNotify(job.notify_on);
    notifyEmail.value = job.notify_email || '';
    notifyWebhook.value = job.notify_webhook || '';
  }

  // --- errors ----------------------------------------------------------------------------
  const banner = h('div', { class: 'form-error', role: 'alert', tabindex: '-1', id: 'form-error', hidden: true });
  function clearErrors() {
    banner.hidden = true;
    for (const [key, slot] of errorSlots) {
      slot.hidden = true;
      slot.textContent = '';
      delete slot.dataset.source;
      const input = document.getElementById(`f-${key}`);
      if (input) input.removeAttribute('aria-invalid');
    }
  }
  /** Shows `message` next to its field (and above the form); answers the field's input. */
  function showError(message, key = fieldForError(message)) {
    const slot = key && errorSlots.get(key);
    if (slot && !jsonMode) {
      slot.textContent = message;
      slot.hidden = false;
      const input = document.getElementById(`f-${key}`);
      if (input) input.setAttribute('aria-invalid', 'true');
    }
    mount(banner, h('strong', {}, 'The job was not saved. '), message,
      slot && !jsonMode ? [' ', h('a', { href: `#f-${key}`, onclick: (e) => { e.preventDefault(); document.getElementById(`f-${key}`)?.focus(); } }, 'Go to the field')] : null);
    banner.hidden = false;
    return slot && !jsonMode ? document.getElementById(`f-${key}`) : banner;
  }

  // --- schedule preview ------------------------------------------------------------------
  const preview = h('div', { class: 'preview', id: 'schedule-preview', role: 'status', 'aria-live': 'polite', 'data-test': 'preview' });
  let previewSeq = 0;
  async function updatePreview() {
    const mine = ++previewSeq;
    const scheduleSlot = errorSlots.get('schedule');
    const zoneSlot = errorSlots.get('timezone');
    const spec = schedule.value.trim();
    if (!spec) {
      mount(preview, h('span', { class: 'muted' }, parentJob.value.trim() ? 'No schedule: runs after its parent job succeeds.' : 'Type a schedule to see its next runs.'));
      return;
    }
    try {
      const answer = await api.preview({
        schedule: spec, timezone: timezone.value.trim(), name: name.value.trim(),
        starts_at: fromLocalInput(startsAt.value), expires_at: fromLocalInput(expiresAt.value), n: 5,
      });
      if (mine !== previewSeq) return;
      // The schedule and zone are valid now: whatever was said about them is void.
      for (const slot of [scheduleSlot, zoneSlot]) { slot.hidden = true; slot.textContent = ''; }
      schedule.removeAttribute('aria-invalid');
      timezone.removeAttribute('aria-invalid');
      mount(preview, answer.next.length
        ? [h('span', { class: 'muted small' }, `Next runs (${answer.timezone}):`),
          h('ol', { class: 'fires' }, answer.next.map((t) => {
            const date = new Date(t);
            return h('li', {}, h('time', { datetime: t, title: `${formatUtc(date)}\n${formatInstant(date)} (your zone)` }, formatInstant(date, answer.timezone)));
          }))]
        : h('span', { class: 'muted' }, 'Never fires on its own (manual, past, or expired).'));
    } catch (error) {
      if (mine !== previewSeq) return;
      const key = fieldForError(error.message) || 'schedule';
      const slot = errorSlots.get(key) || scheduleSlot;
      slot.textContent = error.message;
      slot.dataset.source = 'preview';
      slot.hidden = false;
      mount(preview, h('span', { class: 'muted' }, 'No preview: the schedule is not valid.'));
    }
  }
  const schedulePreview = debounce(updatePreview, 300);
  for (const input of [schedule, timezone, name, startsAt, expiresAt, parentJob]) input.addEventListener('input', schedulePreview);

  // --- JSON mode -------------------------------------------------------------------------
  let jsonMode = false;
  const json = h('textarea', { id: 'f-json', class: 'mono json', rows: 28, spellcheck: 'false', 'aria-describedby': 'err-json' });
  const jsonError = errorSlot('json');
  const formButton = h('button', { type: 'button', class: 'button', 'aria-pressed': 'true', 'data-test': 'mode-form' }, 'Form');
  const jsonButton = h('button', { type: 'button', class: 'button', 'aria-pressed': 'false', 'data-test': 'mode-json' }, 'JSON');
  const formBody = h('div', { class: 'form-body' });
  const jsonBody = h('div', { class: 'json-body', hidden: true },
    h('label', { for: 'f-json' }, 'The job as JSON (sent as it is)'), json, jsonError);
  function setMode(toJson) {
    clearErrors();
    if (toJson === jsonMode) return;
    if (toJson) {
      try {
        json.value = JSON.stringify(fromForm(), null, 2);
      } catch (error) {
        showError(error.message, error.field);
        return;
      }
    } else {
      let parsed;
      try { parsed = JSON.parse(json.value); } catch (error) {
        jsonError.textContent = `Not valid JSON: ${error.message}`;
        jsonError.hidden = false;
        return;
      }
      fill(parsed);
      updatePreview();
    }
    jsonMode = toJson;
    formBody.hidden = toJson;
    jsonBody.hidden = !toJson;
    formButton.setAttribute('aria-pressed', String(!toJson));
    jsonButton.setAttribute('aria-pressed', String(toJson));
    (toJson ? json : (editing ? displayname : name)).focus();
  }
  formButton.addEventListener('click', () => setMode(false));
  jsonButton.addEventListener('click', () => setMode(true));

  // --- submit ----------------------------------------------------------------------------
  const save = h('button', { type: 'submit', class: 'button primary', 'data-test': 'save' }, editing ? 'Save changes' : 'Create job');
  async function submit(event) {
    event.preventDefault();
    clearErrors();
    let body;
    try {
      body = jsonMode ? json.value : fromForm();
      if (jsonMode) JSON.parse(body);
    } catch (error) {
      const target = showError(error.message, error.field || (jsonMode ? 'json' : null));
      target.focus();
      return;
    }
    save.disabled = true;
    try {
      const target = jsonMode ? JSON.parse(body).name : body.name;
      const stored = editing ? await api.update(editing, body) : await api.create(body);
      toast(editing ? `Saved ${stored.name}` : `Created ${stored.name}`);
      ctx.navigate(`/ui/jobs/${encodeURIComponent(stored.name || target)}`);
    } catch (error) {
      const focusTarget = showError(error.message);
      focusTarget.focus();
    } finally {
      save.disabled = false;
    }
  }

  const cancelHref = editing ? `/ui/jobs/${encodeURIComponent(editing)}` : '/ui/jobs';
  const zoneOptions = h('datalist', { id: 'zones' }, zones().map((z) => h('option', { value: z })));
  const executorOptions = h('datalist', { id: 'executors' }, Object.keys(EXECUTOR_KEYS).map((e) => h('option', { value: e })));
  const parentOptions = h('datalist', { id: 'parents' });

  mount(formBody,
    h('fieldset', { class: 'group' }, h('legend', {}, 'Job'),
      field('name', 'Name', name, { required: true, hint: editing ? 'The name cannot change; "Duplicate" makes a copy under a new name.' : 'Lower-case letters, digits, "_" and "-".' }),
      field('displayname', 'Display name', displayname),
      field('schedule', 'Schedule', schedule, { hint: '6 fields with seconds (Dkron) or 5 (crontab), @hourly, @daily, @every 10m, @at 2030-01-01T00:00:00Z, @manually. Empty with a parent job: runs after the parent.', wide: true }),
      h('div', { class: 'field wide' }, preview),
      field('timezone', 'Time zone', timezone, { hint: `An IANA zone; empty means UTC. Yours is ${browserZone}.` }),
      field('concurrency', 'Concurrency', concurrency),
      field('disabled', 'Disabled (scheduled runs are skipped; "Run now" still works)', disabled)),
    h('fieldset', { class: 'group' }, h('legend', {}, 'Executor'),
      field('executor', 'Executor', executor, { required: true, hint: 'shell or http, or the name of an external executor.' }),
      executorKeysBox,
      otherKeys.el),
    h('fieldset', { class: 'group' }, h('legend', {}, 'Retries and timing'),
      field('retries', 'Retries', retries, { hint: 'How many times a failed run is tried again on the same node.' }),
      field('retry_interval', 'Retry interval', retryInterval, { hint: 'A Go duration before the first retry, doubling for each later one (at most 1h). Empty: Dkron\'s delay.' }),
      field('starting_deadline', 'Starting deadline', startingDeadline, { hint: 'How late a missed fire may still run, such as 10m. Default 1h.' }),
      field('starts_at', 'Starts at', startsAt, { hint: `No fire before it (your zone, ${browserZone}).` }),
      field('expires_at', 'Expires at', expiresAt, { hint: `No fire after it (your zone, ${browserZone}).` }),
      field('ephemeral', 'Ephemeral: delete the job after its first successful run', ephemeral)),
    h('fieldset', { class: 'group' }, h('legend', {}, 'Dependencies and targeting'),
      field('parent_job', 'Parent job', parentJob, { hint: 'Runs after the parent\'s run succeeds.' }),
      tags.el,
      metadata.el),
    h('fieldset', { class: 'group' }, h('legend', {}, 'Owner and notifications'),
      field('owner', 'Owner', owner),
      field('owner_email', 'Owner e-mail', ownerEmail),
      h('fieldset', { class: 'field notify', id: 'f-notify_on', 'aria-describedby': 'hint-notify_on err-notify_on' },
        h('legend', {}, 'Notify on'),
        notifyChecks.map((c) => h('span', { class: 'check-inline' }, c, h('label', { for: c.id }, c.value))),
        h('p', { class: 'hint', id: 'hint-notify_on' }, 'None checked: always (the default).'),
        errorSlot('notify_on')),
      field('notify_email', 'Notify e-mail', notifyEmail, { hint: 'Extra recipients besides the owner (comma list).' }),
      field('notify_webhook', 'Notify webhook', notifyWebhook, { hint: 'An extra webhook URL for this job.' })),
    h('fieldset', { class: 'group' }, h('legend', {}, 'Processors'),
      field('processors', 'Processors (JSON)', processors, { wide: true, hint: 'Such as {"log": {"forward": "true"}, "files": {"log_dir": "/var/log/rkron"}}.' })));

  mount(main,
    h('div', { class: 'page-head' },
      h('div', { class: 'title' },
        h('p', { class: 'crumbs' }, h('a', { href: '/ui/jobs' }, 'Jobs'), ' / ', editing ? [h('a', { href: cancelHref }, editing), ' / '] : null),
        h('h1', {}, editing ? `Edit ${editing}` : (from ? `New job from ${from}` : 'New job'))),
      h('div', { class: 'actions', role: 'group', 'aria-label': 'Editor mode' }, formButton, jsonButton)),
    h('form', { class: 'job-form', novalidate: true, onsubmit: submit, 'aria-label': editing ? `Edit job ${editing}` : 'New job' },
      banner,
      formBody,
      jsonBody,
      h('div', { class: 'form-actions' },
        save,
        h('a', { class: 'button', href: cancelHref }, 'Cancel'),
        editing ? h('a', { class: 'button', href: `/ui/create?from=${encodeURIComponent(editing)}` }, 'Duplicate') : null)),
    zoneOptions, executorOptions, parentOptions);

  updatePreview();
  // Parent suggestions: the first page of jobs is enough to help typing.
  api.jobs({ _start: 0, _end: 100 }, { signal: ctx.signal })
    .then(({ data }) => mount(parentOptions, (data || []).filter((j) => j.name !== editing).map((j) => h('option', { value: j.name }))))
    .catch(() => {});
}

// DOM building: elements are created with h() and never from HTML strings, so text from the
// API (job names, outputs, tags) is always text.

/**
 * Creates an element.
 * props: class, text, dataset, style (object), on<Event> handlers, and attributes (false and
 * null leave an attribute out, true sets it empty).
 * children: nodes, strings, numbers, arrays (flattened) and null/undefined/false (skipped).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style') Object.assign(el.style, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === 'value' || key === 'checked' || key === 'selected' || key === 'indeterminate') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * Re-renders `container` with `render()` (which returns the new children) while keeping
 * keyboard focus and scroll positions: elements carrying the same data-key are matched.
 */
export function rerender(container, render) {
  const active = document.activeElement;
  const focusKey = active && container.contains(active) ? active.dataset.key : undefined;
  const selection = focusKey && 'selectionStart' in active ? [active.selectionStart, active.selectionEnd] : null;
  const scrolls = new Map();
  for (const el of container.querySelectorAll('[data-key]')) {
    if (el.scrollTop) scrolls.set(el.dataset.key, [el.scrollTop, el.scrollHeight - el.clientHeight - el.scrollTop]);
  }
  mount(container, render());
  for (const [key, [top, fromBottom]] of scrolls) {
    const el = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (!el) continue;
    // A pane scrolled to its end stays at the end as it grows (live output).
    el.scrollTop = fromBottom < 4 ? el.scrollHeight : top;
  }
  if (focusKey) {
    const again = container.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
    if (again) {
      again.focus({ preventScroll: true });
      if (selection && 'setSelectionRange' in again) {
        try { again.setSelectionRange(...selection); } catch { /* not a text field */ }
      }
    }
  }
}

/** Calls `fn` once `ms` have passed without another call. */
export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Shows a short message in the corner; `kind` is 'ok' or 'error'. */
export function toast(message, kind = 'ok') {
  const box = document.getElementById('toasts');
  const item = h('div', { class: ['toast', kind], role: kind === 'error' ? 'alert' : 'status' }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/**
 * Asks for confirmation in a modal dialog; resolves true when confirmed.
 * Escape and "Cancel" resolve false. The confirm button has focus first.
 */
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: ['button', danger ? 'danger' : 'primary'], 'data-test': 'confirm' }, confirm);
    const cancel = h('button', { type: 'button', class: 'button' }, 'Cancel');
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'dialog-title' },
      h('h2', { id: 'dialog-title' }, title),
      h('div', { class: 'dialog-body' }, body),
      h('div', { class: 'dialog-actions' }, cancel, ok));
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    ok.addEventListener('click', () => close(true));
    cancel.addEventListener('click', () => close(false));
    dialog.addEventListener('cancel', (event) => { event.preventDefault(); close(false); });
    document.body.append(dialog);
    dialog.showModal();
    ok.focus();
  });
}

/** A panel saying what failed, with a retry button when `retry` is given. */
export function failure(error, retry) {
  const status = error && error.status ? ` (HTTP ${error.status})` : '';
  return h('div', { class: 'panel failure', role: 'alert' },
    h('p', {}, h('strong', {}, 'Could not load this page'), status),
    h('p', { class: 'mono' }, String((error && error.message) || error)),
    retry ? h('button', { type: 'button', class: 'button', onclick: retry }, 'Retry') : null);
}

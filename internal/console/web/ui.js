// Small DOM helpers. Text always goes in as text (textContent), never as
// HTML: what a model or a tool wrote cannot become markup.

export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  append(e, children);
  return e;
}

export function render(root, ...children) {
  root.replaceChildren();
  append(root, children);
}

export const num = (n) => (n || 0).toLocaleString('en-US');
export const usd = (x) => '$' + (x || 0).toFixed(x >= 1 ? 2 : 6);
export const when = (s) => (s ? new Date(s).toLocaleString() : '');
export const json = (v) => JSON.stringify(v, null, 2);

// confirm asks in the confirmation dialog; Esc or Cancel says no.
export function confirmDialog(text, yes = 'Delete') {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-yes').textContent = yes;
  return new Promise((resolve) => {
    const done = (v) => () => { d.close(); resolve(v); };
    const y = done(true), n = done(false);
    document.getElementById('confirm-yes').onclick = y;
    document.getElementById('confirm-no').onclick = n;
    d.oncancel = (ev) => { ev.preventDefault(); n(); };
    d.showModal();
    document.getElementById('confirm-no').focus();
  });
}

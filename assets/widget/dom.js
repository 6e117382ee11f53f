// ------------------------------------------------------------------ DOM --

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c); // strings become text nodes
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function icon(paths, size = 20) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', String(size));
  svg.setAttribute('height', String(size));
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const d of paths) {
    const p = document.createElementNS(SVG_NS, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}
const ICON_CHAT = ['M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z'];
const ICON_DOWN = ['M6 9l6 6 6-6'];
const ICON_SEND = ['M3 20l18-8L3 4v6l12 2-12 2z'];
const ICON_CLIP = ['M21 11.5l-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l8.6-8.6a3.7 3.7 0 0 1 5.2 5.2l-8.6 8.6a1.8 1.8 0 0 1-2.6-2.6l7.9-7.9'];
const ICON_X = ['M18 6L6 18', 'M6 6l12 12'];
const ICON_FILE = ['M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z', 'M14 3v5h5'];

// Server-rendered operator Markdown is already sanitised by parley. As defence in depth it is
// parsed into an inert <template> (no scripts run, no images load) and filtered again against an
// allow-list before it is inserted into the shadow root.
const ALLOWED_TAGS = new Set(
  'P BR STRONG B EM I U DEL S STRIKE CODE PRE BLOCKQUOTE UL OL LI A H1 H2 H3 H4 H5 H6 HR TABLE THEAD TBODY TR TH TD SPAN IMG SUP SUB'.split(
    ' '
  )
);
const DROPPED_TAGS = new Set(
  'SCRIPT STYLE IFRAME FRAME FRAMESET OBJECT EMBED TEMPLATE NOSCRIPT SVG MATH FORM INPUT BUTTON TEXTAREA SELECT LINK META BASE AUDIO VIDEO SOURCE CANVAS'.split(
    ' '
  )
);
const BASE_ORIGIN = new URL(BASE).origin;

function safeUrl(value, forImage) {
  try {
    const u = new URL(value, BASE + '/');
    if (forImage) return (u.protocol === 'https:' || u.protocol === 'http:') && u.origin === BASE_ORIGIN ? u.href : null;
    return ['http:', 'https:', 'mailto:', 'tel:'].includes(u.protocol) ? u.href : null;
  } catch (_) {
    return null;
  }
}

function cleanTree(parent) {
  for (const node of Array.from(parent.childNodes)) {
    if (node.nodeType === 3) continue; // text
    if (node.nodeType !== 1) {
      node.remove(); // comments, processing instructions
      continue;
    }
    const tag = node.tagName.toUpperCase();
    if (DROPPED_TAGS.has(tag)) {
      node.remove();
      continue;
    }
    if (!ALLOWED_TAGS.has(tag)) {
      cleanTree(node);
      node.replaceWith(...Array.from(node.childNodes));
      continue;
    }
    for (const attr of Array.from(node.attributes)) {
      const name = attr.name.toLowerCase();
      let keep = false;
      if (tag === 'A' && name === 'href') {
        const u = safeUrl(attr.value, false);
        if (u) node.setAttribute('href', u);
        keep = !!u;
      } else if (tag === 'IMG' && name === 'src') {
        const u = safeUrl(attr.value, true);
        if (u) node.setAttribute('src', u);
        keep = !!u;
      } else if (name === 'title' || (tag === 'IMG' && name === 'alt')) keep = true;
      else if ((tag === 'TD' || tag === 'TH') && (name === 'colspan' || name === 'rowspan' || name === 'align')) keep = true;
      else if (tag === 'OL' && name === 'start') keep = true;
      else if (tag === 'CODE' && name === 'class' && /^[\w\s-]*$/.test(attr.value)) keep = true;
      if (!keep) node.removeAttribute(attr.name);
    }
    if (tag === 'IMG' && !node.hasAttribute('src')) {
      node.remove();
      continue;
    }
    if (tag === 'A') {
      node.setAttribute('target', '_blank');
      node.setAttribute('rel', 'noopener noreferrer nofollow');
    }
    cleanTree(node);
  }
}

function safeHtml(html) {
  const tpl = document.createElement('template');
  tpl.innerHTML = String(html); // inert: template content is not rendered, scripts/images do nothing
  cleanTree(tpl.content);
  return tpl.content;
}

function formatTime(iso) {
  try {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    return d.toLocaleTimeString(LANG, { hour: 'numeric', minute: '2-digit' });
  } catch (_) {
    return '';
  }
}

// "12 KB", "1.2 MB" (binary units, as file managers show them), in the widget's language.
function formatSize(bytes) {
  const n = Math.max(0, Number(bytes) || 0);
  const units = ['sizeB', 'sizeKB', 'sizeMB', 'sizeGB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  let text;
  try {
    text = new Intl.NumberFormat(LANG, { maximumFractionDigits: u === 0 || v >= 10 ? 0 : 1 }).format(v);
  } catch (_) {
    text = String(Math.round(v));
  }
  return t(units[u], { n: text });
}

// A file link from the server: only http(s) (it is absolute and signed; no other scheme is used).
function fileUrl(value) {
  try {
    const u = new URL(String(value || ''), BASE + '/');
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
  } catch (_) {
    return null;
  }
}

// File names quoted in the widget's language, for messages: “a.png”, “b.pdf”.
function quoteNames(files) {
  return files.map((f) => t('quoted', { name: String((f && f.name) || '') })).join(', ');
}

/*!
 * parley visitor chat widget.
 *
 * Plain ES2020, no build step, no framework, no requests to anything but the parley
 * server this file was loaded from. Served verbatim by parley at /widget.js.
 *
 * Embed:  <script src="https://parley.example.com/widget.js" async></script>
 * Options (attributes on that script tag):
 *   data-lang="de"       force the language (else navigator.languages, else English)
 *   data-open="true"     start with the panel opened
 *   data-color="#0a7d4f" accent colour (any CSS colour)
 *
 * See docs/widget.md.
 */
(() => {
  'use strict';

  if (window.__parleyWidget) return; // loaded twice: keep the first instance
  window.__parleyWidget = true;

  // ---------------------------------------------------------------- setup --

  const script =
    document.currentScript ||
    Array.from(document.querySelectorAll('script[src]')).find((s) => /\/widget\.js(?:[?#]|$)/.test(s.src));
  if (!script || !script.src) {
    console.warn('parley: cannot find the <script> tag that loaded widget.js');
    return;
  }
  // Base URL = origin + path prefix of the script's URL (query and file name dropped).
  const BASE = new URL('.', script.src).href.replace(/\/+$/, '');
  const WS_BASE = BASE.replace(/^http/i, 'ws'); // http→ws, https→wss
  const OPTS = {
    lang: (script.getAttribute('data-lang') || '').trim(),
    open: script.getAttribute('data-open') === 'true',
    color: (script.getAttribute('data-color') || '').trim(),
  };

  const STORE_CHAT = 'parley.chat'; // localStorage: {id, token}
  const STORE_OPEN = 'parley.open'; // sessionStorage: "true" | "false"
  const STORE_SEEN = 'parley.seen'; // sessionStorage: {chat, id} last message id the visitor has seen
  const STATUS_POLL_MS = 30000;
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const REQUEST_TIMEOUT_MS = 15000;
  const FORGET_CLOSED_AFTER_MS = 30 * 60 * 1000; // a chat that ended long ago is not resumed

  // ----------------------------------------------------------------- i18n --

  const I18N = {
    en: {
      title: 'Chat with us',
      openChat: 'Open chat',
      openChatUnread: 'Open chat ({n} unread)',
      closePanel: 'Close chat window',
      minimise: 'Minimise chat window',
      online: 'Online',
      offline: 'Offline',
      loading: 'Loading…',
      prechatIntro: 'We are online. Write to us and someone from our team will answer here.',
      nameOptional: 'Name (optional)',
      emailOptional: 'E-mail (optional)',
      name: 'Name',
      email: 'E-mail',
      message: 'Message',
      startChat: 'Start chat',
      offlineIntro: 'Nobody is available right now. Leave us a message and we will reply by e-mail.',
      sendMessage: 'Send message',
      offlineThanks: 'Thank you! We have received your message and will reply by e-mail.',
      messagesLabel: 'Chat messages',
      composerLabel: 'Your message',
      composerPlaceholder: 'Type a message…',
      send: 'Send',
      you: 'You',
      operator: 'Operator',
      sending: 'sending…',
      notSent: 'Not sent',
      retry: 'Retry',
      edit: 'Edit',
      waiting: 'Waiting for an operator…',
      chattingWith: 'You are chatting with {name}',
      ended: 'This chat has ended',
      newChat: 'Start a new chat',
      endChat: 'End chat',
      confirmEnd: 'Do you want to end this chat?',
      confirmYes: 'End chat',
      cancel: 'Cancel',
      reconnecting: 'Reconnecting…',
      evAccepted: '{name} joined the chat',
      evClosedByVisitor: 'You ended the chat',
      evClosedByOperator: '{name} ended the chat',
      errRateLimited: 'Too many messages, please wait a moment',
      errChatClosed: 'This chat has already ended',
      errTooLong: 'Your message is too long',
      errValidation: 'Please check your input',
      errNetwork: 'Cannot reach the chat service. Please check your connection and try again.',
      errGeneric: 'Something went wrong. Please try again.',
      errMessageRequired: 'Please enter a message',
      errEmailRequired: 'Please enter your e-mail address',
      errEmailInvalid: 'Please enter a valid e-mail address',
      unread_one: '{n} unread message',
      unread_other: '{n} unread messages',
    },
    de: {
      title: 'Schreiben Sie uns',
      openChat: 'Chat öffnen',
      openChatUnread: 'Chat öffnen ({n} ungelesen)',
      closePanel: 'Chatfenster schließen',
      minimise: 'Chatfenster minimieren',
      online: 'Online',
      offline: 'Offline',
      loading: 'Wird geladen…',
      prechatIntro: 'Wir sind online. Schreiben Sie uns – jemand aus unserem Team antwortet Ihnen gleich hier.',
      nameOptional: 'Name (optional)',
      emailOptional: 'E-Mail (optional)',
      name: 'Name',
      email: 'E-Mail',
      message: 'Nachricht',
      startChat: 'Chat starten',
      offlineIntro:
        'Gerade ist niemand erreichbar. Hinterlassen Sie uns eine Nachricht, wir antworten Ihnen per E-Mail.',
      sendMessage: 'Nachricht senden',
      offlineThanks: 'Vielen Dank! Wir haben Ihre Nachricht erhalten und antworten Ihnen per E-Mail.',
      messagesLabel: 'Chatnachrichten',
      composerLabel: 'Ihre Nachricht',
      composerPlaceholder: 'Nachricht schreiben…',
      send: 'Senden',
      you: 'Sie',
      operator: 'Mitarbeiter',
      sending: 'wird gesendet…',
      notSent: 'Nicht gesendet',
      retry: 'Erneut senden',
      edit: 'Bearbeiten',
      waiting: 'Einen Moment bitte, gleich ist jemand für Sie da…',
      chattingWith: 'Sie chatten mit {name}',
      ended: 'Dieser Chat wurde beendet',
      newChat: 'Neuen Chat starten',
      endChat: 'Chat beenden',
      confirmEnd: 'Möchten Sie diesen Chat beenden?',
      confirmYes: 'Chat beenden',
      cancel: 'Abbrechen',
      reconnecting: 'Verbindung wird wiederhergestellt…',
      evAccepted: '{name} ist dem Chat beigetreten',
      evClosedByVisitor: 'Sie haben den Chat beendet',
      evClosedByOperator: '{name} hat den Chat beendet',
      errRateLimited: 'Zu viele Nachrichten – bitte warten Sie einen Moment',
      errChatClosed: 'Dieser Chat wurde bereits beendet',
      errTooLong: 'Ihre Nachricht ist zu lang',
      errValidation: 'Bitte überprüfen Sie Ihre Eingaben',
      errNetwork:
        'Der Chat-Dienst ist nicht erreichbar. Bitte prüfen Sie Ihre Verbindung und versuchen Sie es erneut.',
      errGeneric: 'Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut.',
      errMessageRequired: 'Bitte geben Sie eine Nachricht ein',
      errEmailRequired: 'Bitte geben Sie Ihre E-Mail-Adresse ein',
      errEmailInvalid: 'Bitte geben Sie eine gültige E-Mail-Adresse ein',
      unread_one: '{n} ungelesene Nachricht',
      unread_other: '{n} ungelesene Nachrichten',
    },
  };

  function pickLang() {
    const primary = (tag) => String(tag || '').toLowerCase().split(/[-_]/)[0];
    if (OPTS.lang && I18N[primary(OPTS.lang)]) return primary(OPTS.lang);
    const prefs = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language]) || [];
    for (const tag of prefs) if (I18N[primary(tag)]) return primary(tag);
    return 'en';
  }
  const LANG = pickLang();

  function t(key, vars) {
    let s = (I18N[LANG] && I18N[LANG][key]) || I18N.en[key] || key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] != null ? String(vars[k]) : m));
    return s;
  }
  function tn(key, n) {
    let rule = 'other';
    try {
      rule = new Intl.PluralRules(LANG).select(n);
    } catch (_) {
      rule = n === 1 ? 'one' : 'other';
    }
    return t(`${key}_${rule === 'one' ? 'one' : 'other'}`, { n });
  }

  // -------------------------------------------------------------- storage --

  function storageGet(kind, key) {
    try {
      const raw = window[kind].getItem(key);
      return raw == null ? null : JSON.parse(raw);
    } catch (_) {
      return null;
    }
  }
  function storageSet(kind, key, value) {
    try {
      if (value == null) window[kind].removeItem(key);
      else window[kind].setItem(key, JSON.stringify(value));
    } catch (_) {
      /* storage blocked (privacy mode, sandboxed iframe): the chat just does not resume */
    }
  }

  // ------------------------------------------------------------------ API --

  class ApiError extends Error {
    constructor(status, code, message, retryAfterMs) {
      super(message || code);
      this.status = status;
      this.code = code;
      this.retryAfterMs = retryAfterMs;
    }
  }

  function parseRetryAfter(value) {
    if (!value) return null;
    const secs = Number(value);
    if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
    const date = Date.parse(value);
    return Number.isFinite(date) ? Math.max(0, date - Date.now()) : null;
  }

  async function api(method, path, { body, token } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    const ctl = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = ctl ? setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS) : 0;
    let res;
    let text = '';
    try {
      res = await fetch(BASE + path, {
        method,
        headers,
        body: body !== undefined ? JSON.stringify(body) : undefined,
        mode: 'cors',
        credentials: 'omit',
        cache: 'no-store',
        signal: ctl ? ctl.signal : undefined,
      });
      text = await res.text();
    } catch (e) {
      throw new ApiError(0, 'network', (e && e.message) || 'network error');
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      const code = err.code || (res.status === 429 ? 'rate_limited' : `http_${res.status}`);
      throw new ApiError(res.status, code, err.message || res.statusText, parseRetryAfter(res.headers.get('Retry-After')));
    }
    return data;
  }

  function errorText(err) {
    if (!err) return t('errGeneric');
    switch (err.code) {
      case 'rate_limited':
        return t('errRateLimited');
      case 'chat_closed':
        return t('errChatClosed');
      case 'message_too_long':
        return t('errTooLong');
      case 'validation_failed':
        return t('errValidation');
      case 'network':
        return t('errNetwork');
      default:
        return (err.status && err.message) || t('errGeneric');
    }
  }

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

  // ------------------------------------------------------------------ CSS --

  const CSS = `
:host { all: initial; }
* , *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
.root {
  --accent: #1f5fd6; --accent-text: #fff; --fg: #1b2230; --muted: #5a6474; --bg: #fff;
  --soft: #f1f4f9; --line: #dde2ea; --danger: #b42318; --ok: #1a7f37; --radius: 14px;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--fg); -webkit-font-smoothing: antialiased;
}
.sr { position: absolute !important; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
button, input, textarea { font: inherit; color: inherit; }
button { cursor: pointer; }
button:disabled { cursor: not-allowed; opacity: .6; }
:focus { outline: none; }
:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }

.launcher {
  position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
  width: 60px; height: 60px; border-radius: 50%; border: 0; padding: 0;
  background: var(--accent); color: var(--accent-text);
  display: flex; align-items: center; justify-content: center;
  box-shadow: 0 6px 20px rgba(0,0,0,.25); transition: transform .15s ease;
}
.launcher:hover { transform: scale(1.06); }
.launcher svg { fill: currentColor; }
.launcher .chev { display: none; fill: none; stroke: currentColor; stroke-width: 2.5; stroke-linecap: round; stroke-linejoin: round; }
.is-open .launcher .bubble-icon { display: none; }
.is-open .launcher .chev { display: block; }
.badge {
  position: fixed; right: 14px; bottom: 62px; z-index: 2147483001; pointer-events: none;
  min-width: 22px; height: 22px; padding: 0 6px; border-radius: 11px;
  background: var(--danger); color: #fff; font-size: 12px; font-weight: 700; line-height: 22px; text-align: center;
  box-shadow: 0 0 0 2px #fff;
}

.panel {
  position: fixed; right: 20px; bottom: 92px; z-index: 2147483000;
  width: 370px; height: 580px; max-height: calc(100vh - 112px);
  display: flex; flex-direction: column; overflow: hidden;
  background: var(--bg); border-radius: var(--radius);
  box-shadow: 0 12px 40px rgba(0,0,0,.22), 0 0 0 1px rgba(0,0,0,.06);
  animation: parley-in .18s ease-out;
}
@keyframes parley-in { from { opacity: 0; transform: translateY(12px); } to { opacity: 1; transform: none; } }

.hd { display: flex; align-items: flex-start; gap: 8px; padding: 14px 12px 12px 16px;
  background: var(--accent); color: var(--accent-text); }
.hd-main { flex: 1; min-width: 0; }
.title { margin: 0; font-size: 16px; font-weight: 650; line-height: 1.3; }
.sub { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 10px; margin-top: 3px; font-size: 13px; opacity: .95; }
.status { display: inline-flex; align-items: center; gap: 6px; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: #9aa4b2; box-shadow: 0 0 0 2px rgba(255,255,255,.6); }
.status[data-online="true"] .dot { background: #3ddc84; }
.op { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 100%; }
.hd-actions { display: flex; gap: 4px; align-items: center; }
.hd button { background: transparent; border: 1px solid transparent; color: inherit; border-radius: 8px; }
.hd .end { font-size: 13px; padding: 4px 8px; border-color: rgba(255,255,255,.55); }
.hd .end:hover, .hd .min:hover { background: rgba(255,255,255,.16); }
.hd .min { width: 32px; height: 32px; display: flex; align-items: center; justify-content: center; padding: 0; }
.hd .min svg { fill: none; stroke: currentColor; stroke-width: 2.5; stroke-linecap: round; stroke-linejoin: round; }
.hd :focus-visible { outline-color: #fff; }

.notices { padding: 0 14px; }
.notice { margin: 8px 0 0; padding: 8px 10px; border-radius: 8px; font-size: 13px; }
.error { background: #fdecea; color: var(--danger); }
.reconnecting { background: #fff7e0; color: #7a5300; }

.body { flex: 1; min-height: 0; display: flex; flex-direction: column; }
.view { flex: 1; min-height: 0; overflow: auto; padding: 14px 16px 16px; }
.view.loading { color: var(--muted); }
form.view { display: flex; flex-direction: column; gap: 10px; }
.intro { margin: 0 0 2px; color: var(--muted); }
.field { display: flex; flex-direction: column; gap: 4px; }
.field label { font-size: 13px; font-weight: 600; }
.field input, .field textarea, .composer textarea {
  width: 100%; border: 1px solid #b9c1cd; border-radius: 8px; padding: 8px 10px; background: #fff;
}
.field textarea { min-height: 96px; resize: vertical; }
.field input:focus-visible, .field textarea:focus-visible, .composer textarea:focus-visible {
  outline: 3px solid #f59e0b; outline-offset: 0; border-color: var(--accent); }
[aria-invalid="true"] { border-color: var(--danger) !important; }
.primary { align-self: flex-start; border: 0; border-radius: 8px; padding: 9px 16px; font-weight: 600;
  background: var(--accent); color: var(--accent-text); }
.secondary { border: 1px solid #b9c1cd; border-radius: 8px; padding: 7px 12px; background: #fff; }
.thanks { font-size: 15px; }

.chat { display: flex; flex-direction: column; padding: 0; overflow: hidden; }
.chat-status { margin: 0; padding: 8px 16px; font-size: 13px; color: var(--muted); background: var(--soft); border-bottom: 1px solid var(--line); }
.chat-status[data-status="active"] { color: var(--ok); }
.msgs { flex: 1; min-height: 0; overflow-y: auto; padding: 12px 14px; display: flex; flex-direction: column; gap: 8px;
  overscroll-behavior: contain; }
.msg { display: flex; flex-direction: column; max-width: 85%; }
.msg.visitor { align-self: flex-end; align-items: flex-end; }
.msg.operator { align-self: flex-start; align-items: flex-start; }
.msg.system { align-self: center; max-width: 95%; text-align: center; font-size: 12px; color: var(--muted); padding: 2px 0; }
.author { font-size: 12px; font-weight: 600; color: var(--muted); margin: 0 0 2px 4px; }
.bubble { padding: 8px 12px; border-radius: 14px; overflow-wrap: anywhere; word-break: break-word; }
.visitor .bubble { background: var(--accent); color: var(--accent-text); border-bottom-right-radius: 4px; white-space: pre-wrap; }
.operator .bubble { background: var(--soft); border-bottom-left-radius: 4px; }
.operator .bubble.plain { white-space: pre-wrap; }
.bubble p { margin: 0 0 .5em; } .bubble p:last-child { margin-bottom: 0; }
.bubble a { color: inherit; text-decoration: underline; }
.bubble pre { white-space: pre-wrap; margin: .4em 0; padding: 6px 8px; background: rgba(0,0,0,.06); border-radius: 6px; font-size: 13px; }
.bubble code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
.bubble ul, .bubble ol { margin: .3em 0; padding-left: 1.3em; }
.bubble blockquote { margin: .3em 0; padding-left: .7em; border-left: 3px solid var(--line); color: var(--muted); }
.bubble img { max-width: 100%; height: auto; border-radius: 6px; }
.bubble table { border-collapse: collapse; } .bubble td, .bubble th { border: 1px solid var(--line); padding: 2px 6px; }
.meta { font-size: 11px; color: var(--muted); margin: 2px 4px 0; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.visitor .meta { justify-content: flex-end; text-align: right; }
.msg.failed .bubble { opacity: .75; }
.failed-text { color: var(--danger); }
.linkbtn { border: 0; background: none; padding: 0; color: var(--accent); text-decoration: underline; font-size: 12px; }

.confirm, .ended { padding: 10px 14px; border-top: 1px solid var(--line); background: var(--soft);
  display: flex; flex-wrap: wrap; align-items: center; gap: 8px; }
.confirm p, .ended p { margin: 0; flex: 1 1 100%; font-size: 14px; }
.danger { background: var(--danger); color: #fff; border: 0; border-radius: 8px; padding: 7px 12px; font-weight: 600; }
.composer { display: flex; gap: 8px; align-items: flex-end; padding: 10px 12px; border-top: 1px solid var(--line); }
.composer textarea { resize: none; min-height: 40px; max-height: 140px; line-height: 1.4; }
.composer textarea:disabled { background: var(--soft); }
.send { flex: none; width: 40px; height: 40px; border: 0; border-radius: 50%; background: var(--accent); color: var(--accent-text);
  display: flex; align-items: center; justify-content: center; }
.send svg { fill: currentColor; }

@media (max-width: 480px) {
  .panel { left: 0; right: 0; top: 0; bottom: 0; width: 100%; height: 100%; max-height: none; border-radius: 0; }
  .is-open .launcher, .is-open .badge { display: none; }
  .field input, .field textarea, .composer textarea { font-size: 16px; }
}
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { animation: none !important; transition: none !important; scroll-behavior: auto !important; }
}
@media (forced-colors: active) {
  .launcher, .send, .primary, .danger, .badge { border: 1px solid ButtonText; }
}
`;

  // ---------------------------------------------------------------- state --

  const S = {
    online: null, // null = not known yet
    view: 'loading', // loading | prechat | offline | offline-thanks | chat
    open: false,
    cred: null, // {id, token}
    chat: null, // Chat JSON
    msgs: new Map(), // id -> Message (stored on the server)
    locals: [], // messages typed here and not yet confirmed: {lid, text, state, error, code, noPost}
    lidSeq: 0,
    seen: 0, // highest message id the visitor has seen with the panel open
    ws: null,
    wsGen: 0,
    wsReady: false,
    wsAttempt: 0,
    wsTimer: 0,
    wsEverFailed: false,
    lastCatchUp: 0,
    pumping: false,
    blockedUntil: 0,
    retryTimer: 0,
  };

  // ------------------------------------------------------------ the view --

  const host = document.createElement('div');
  host.id = 'parley-widget';
  const shadow = host.attachShadow({ mode: 'open' });
  // A constructed stylesheet is not blocked by a Content-Security-Policy without 'unsafe-inline'.
  let styled = false;
  try {
    if ('adoptedStyleSheets' in shadow && typeof CSSStyleSheet === 'function') {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      shadow.adoptedStyleSheets = [sheet];
      styled = true;
    }
  } catch (_) {
    styled = false;
  }
  if (!styled) {
    const style = document.createElement('style');
    style.textContent = CSS;
    shadow.append(style);
  }

  const E = {}; // named elements

  const root = h('div', { class: 'root', lang: LANG });
  if (OPTS.color && window.CSS && CSS_supports('color', OPTS.color)) root.style.setProperty('--accent', OPTS.color);
  function CSS_supports(p, v) {
    try {
      return window.CSS.supports(p, v);
    } catch (_) {
      return false;
    }
  }

  E.launcher = h(
    'button',
    {
      type: 'button',
      class: 'launcher',
      'data-testid': 'launcher',
      'aria-label': t('openChat'),
      'aria-expanded': 'false',
      'aria-controls': 'parley-panel',
      onclick: () => setOpen(!S.open, { focus: true }),
    },
    (() => {
      const i = icon(ICON_CHAT, 28);
      i.classList.add('bubble-icon');
      return i;
    })(),
    (() => {
      const i = icon(ICON_DOWN, 28);
      i.classList.add('chev');
      return i;
    })()
  );
  E.badge = h('span', { class: 'badge', 'data-testid': 'badge', 'aria-live': 'polite', role: 'status', hidden: true });

  // header
  E.status = h(
    'span',
    { class: 'status', 'data-testid': 'status', 'data-online': 'false' },
    h('span', { class: 'dot', 'aria-hidden': 'true' }),
    (E.statusText = h('span', { text: t('offline') }))
  );
  E.opName = h('span', { class: 'op', 'data-testid': 'operator-name', hidden: true });
  E.endBtn = h('button', {
    type: 'button',
    class: 'end',
    'data-testid': 'close-chat',
    text: t('endChat'),
    hidden: true,
    onclick: () => showConfirm(true),
  });
  E.minBtn = h(
    'button',
    {
      type: 'button',
      class: 'min',
      'data-testid': 'minimise',
      'aria-label': t('minimise'),
      title: t('minimise'),
      onclick: () => setOpen(false, { focus: true }),
    },
    (() => icon(ICON_DOWN, 22))()
  );
  const header = h(
    'div',
    { class: 'hd' },
    h('div', { class: 'hd-main' }, h('h2', { class: 'title', id: 'parley-title', text: t('title') }), h('div', { class: 'sub' }, E.status, E.opName)),
    h('div', { class: 'hd-actions' }, E.endBtn, E.minBtn)
  );

  // notices
  E.reconnecting = h('p', {
    class: 'notice reconnecting',
    'data-testid': 'reconnecting',
    role: 'status',
    text: t('reconnecting'),
    hidden: true,
  });
  E.error = h('p', { class: 'notice error', id: 'parley-error', 'data-testid': 'error', role: 'alert', hidden: true });
  const notices = h('div', { class: 'notices' }, E.reconnecting, E.error);

  // views
  E.loadingView = h('div', { class: 'view loading', text: t('loading') });

  function field(id, label, control) {
    control.id = id;
    return h('div', { class: 'field' }, h('label', { for: id, text: label }), control);
  }

  E.preName = h('input', { type: 'text', name: 'name', autocomplete: 'name', maxlength: '200', 'data-testid': 'prechat-name' });
  E.preEmail = h('input', {
    type: 'email',
    name: 'email',
    autocomplete: 'email',
    maxlength: '320',
    'data-testid': 'prechat-email',
  });
  E.preMessage = h('textarea', { name: 'message', required: true, 'aria-required': 'true', rows: '4', 'data-testid': 'prechat-message' });
  E.preSubmit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'prechat-submit', text: t('startChat') });
  E.prechatView = h(
    'form',
    { class: 'view prechat', 'data-testid': 'prechat-form', novalidate: true, 'aria-labelledby': 'parley-title', hidden: true, onsubmit: submitPrechat },
    h('p', { class: 'intro', text: t('prechatIntro') }),
    field('parley-pre-name', t('nameOptional'), E.preName),
    field('parley-pre-email', t('emailOptional'), E.preEmail),
    field('parley-pre-message', t('message'), E.preMessage),
    E.preSubmit
  );

  E.offName = h('input', { type: 'text', name: 'name', autocomplete: 'name', maxlength: '200', 'data-testid': 'offline-name' });
  E.offEmail = h('input', {
    type: 'email',
    name: 'email',
    autocomplete: 'email',
    maxlength: '320',
    required: true,
    'aria-required': 'true',
    'data-testid': 'offline-email',
  });
  E.offMessage = h('textarea', { name: 'message', required: true, 'aria-required': 'true', rows: '4', 'data-testid': 'offline-message' });
  E.offSubmit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'offline-submit', text: t('sendMessage') });
  E.offlineView = h(
    'form',
    { class: 'view offline', 'data-testid': 'offline-form', novalidate: true, 'aria-labelledby': 'parley-title', hidden: true, onsubmit: submitOffline },
    h('p', { class: 'intro', text: t('offlineIntro') }),
    field('parley-off-name', t('nameOptional'), E.offName),
    field('parley-off-email', t('email'), E.offEmail),
    field('parley-off-message', t('message'), E.offMessage),
    E.offSubmit
  );
  E.thanksView = h(
    'div',
    { class: 'view thanks', 'data-testid': 'offline-thanks', tabindex: '-1', hidden: true },
    h('p', { text: t('offlineThanks') })
  );

  E.chatStatus = h('p', { class: 'chat-status', 'data-testid': 'chat-status', 'data-status': 'pending', role: 'status' });
  E.msgs = h('div', {
    class: 'msgs',
    'data-testid': 'messages',
    role: 'log',
    'aria-live': 'polite',
    'aria-label': t('messagesLabel'),
    tabindex: '0',
  });
  E.confirmYes = h('button', { type: 'button', class: 'danger', 'data-testid': 'confirm-close', text: t('confirmYes'), onclick: closeChat });
  E.confirmNo = h('button', { type: 'button', class: 'secondary', text: t('cancel'), onclick: () => showConfirm(false, true) });
  E.confirm = h('div', { class: 'confirm', role: 'group', 'aria-labelledby': 'parley-confirm-q', hidden: true }, h('p', { id: 'parley-confirm-q', text: t('confirmEnd') }), E.confirmYes, E.confirmNo);
  E.newChatBtn = h('button', { type: 'button', class: 'primary', 'data-testid': 'new-chat', text: t('newChat'), onclick: startNewChat });
  E.ended = h('div', { class: 'ended', hidden: true }, h('p', { text: t('ended') }), E.newChatBtn);
  E.composer = h('textarea', {
    id: 'parley-composer',
    rows: '1',
    'data-testid': 'composer',
    placeholder: t('composerPlaceholder'),
    onkeydown: onComposerKey,
    oninput: autosize,
  });
  E.sendBtn = h('button', { type: 'submit', class: 'send', 'data-testid': 'send', 'aria-label': t('send'), title: t('send') }, icon(ICON_SEND, 20));
  E.composerForm = h(
    'form',
    {
      class: 'composer',
      novalidate: true,
      onsubmit: (e) => {
        e.preventDefault();
        sendFromComposer();
      },
    },
    h('label', { class: 'sr', for: 'parley-composer', text: t('composerLabel') }),
    E.composer,
    E.sendBtn
  );
  E.chatView = h('div', { class: 'view chat', hidden: true }, E.chatStatus, E.msgs, E.confirm, E.ended, E.composerForm);

  E.panel = h(
    'div',
    {
      class: 'panel',
      id: 'parley-panel',
      role: 'dialog',
      'aria-labelledby': 'parley-title',
      'data-testid': 'panel',
      lang: LANG,
      hidden: true,
    },
    header,
    notices,
    h('div', { class: 'body' }, E.loadingView, E.prechatView, E.offlineView, E.thanksView, E.chatView)
  );
  E.panel.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !e.isComposing) {
      e.preventDefault();
      if (!E.confirm.hidden) showConfirm(false, true);
      else setOpen(false, { focus: true });
    }
  });

  root.append(E.panel, E.launcher, E.badge);
  shadow.append(root);

  // ------------------------------------------------------- view helpers --

  function showView(view) {
    S.view = view;
    E.loadingView.hidden = view !== 'loading';
    E.prechatView.hidden = view !== 'prechat';
    E.offlineView.hidden = view !== 'offline';
    E.thanksView.hidden = view !== 'offline-thanks';
    E.chatView.hidden = view !== 'chat';
    renderChatState();
  }

  function viewWithoutChat() {
    if (S.view === 'offline-thanks') return 'offline-thanks';
    if (S.online === null) return 'loading';
    return S.online ? 'prechat' : 'offline';
  }

  // Keep what was typed when the form switches between "start chat" and "leave a message".
  function carryOver(from, to) {
    const pairs = from === 'prechat' ? [[E.preName, E.offName], [E.preEmail, E.offEmail], [E.preMessage, E.offMessage]] : [[E.offName, E.preName], [E.offEmail, E.preEmail], [E.offMessage, E.preMessage]];
    if (to !== 'prechat' && to !== 'offline') return;
    for (const [a, b] of pairs) if (a.value && !b.value) b.value = a.value;
  }

  function updateNoChatView() {
    if (S.cred) return;
    const next = viewWithoutChat();
    if (next === S.view) return;
    const hadFocus = S.open && E.panel.contains(shadow.activeElement);
    carryOver(S.view, next);
    showView(next);
    if (hadFocus) focusFirst();
  }

  function showError(errOrText) {
    const text = typeof errOrText === 'string' ? errOrText : errorText(errOrText);
    E.error.textContent = text;
    E.error.hidden = !text;
  }
  function clearError() {
    E.error.textContent = '';
    E.error.hidden = true;
  }

  function fieldError(input, text) {
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', 'parley-error');
    showError(text);
    input.focus();
  }
  function clearFieldErrors(form) {
    for (const el of form.querySelectorAll('[aria-invalid]')) {
      el.removeAttribute('aria-invalid');
      el.removeAttribute('aria-describedby');
    }
  }

  function setOnline(online) {
    S.online = online;
    E.status.setAttribute('data-online', online ? 'true' : 'false');
    E.statusText.textContent = online ? t('online') : t('offline');
    updateNoChatView();
  }

  function updateBadge() {
    let n = 0;
    if (!S.open) for (const m of S.msgs.values()) if (m.sender !== 'visitor' && Number(m.id) > S.seen) n++;
    E.badge.textContent = n ? String(n) : '';
    E.badge.hidden = !n;
    if (n) E.badge.setAttribute('aria-label', tn('unread', n));
    else E.badge.removeAttribute('aria-label');
    E.launcher.setAttribute('aria-label', S.open ? t('closePanel') : n ? t('openChatUnread', { n }) : t('openChat'));
  }

  function lastId() {
    let max = 0;
    for (const id of S.msgs.keys()) if (Number(id) > max) max = Number(id);
    return max;
  }

  function markSeen() {
    S.seen = lastId();
    if (S.cred) storageSet('sessionStorage', STORE_SEEN, { chat: S.cred.id, id: S.seen });
    updateBadge();
  }

  function setOpen(open, { focus = false, persist = true } = {}) {
    S.open = open;
    E.panel.hidden = !open;
    root.classList.toggle('is-open', open);
    E.launcher.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (persist) storageSet('sessionStorage', STORE_OPEN, open);
    if (open) {
      markSeen();
      refreshStatus();
      if (S.view === 'chat') scrollToBottom();
      if (focus) focusFirst();
    } else {
      showConfirm(false);
      updateBadge();
      if (focus) E.launcher.focus();
    }
  }

  function focusFirst() {
    const target =
      S.view === 'prechat'
        ? E.preName
        : S.view === 'offline'
          ? E.offName
          : S.view === 'offline-thanks'
            ? E.thanksView
            : S.view === 'chat'
              ? E.composer.disabled
                ? E.newChatBtn
                : E.composer
              : E.minBtn;
    // after the panel became visible
    requestAnimationFrame(() => {
      try {
        target.focus({ preventScroll: true });
      } catch (_) {
        target.focus();
      }
    });
  }

  function isClosed() {
    return !!(S.chat && S.chat.status === 'closed');
  }

  function operatorName() {
    return (S.chat && S.chat.operator && S.chat.operator.name) || '';
  }

  function renderChatState() {
    const inChat = !!S.cred && S.view === 'chat';
    const status = (S.chat && S.chat.status) || 'pending';
    const name = operatorName();
    E.opName.textContent = name;
    E.opName.hidden = !(inChat && name);
    E.endBtn.hidden = !inChat || status === 'closed';
    E.chatStatus.setAttribute('data-status', status);
    E.chatStatus.textContent =
      status === 'closed' ? t('ended') : status === 'active' ? t('chattingWith', { name: name || t('operator') }) : t('waiting');
    const closed = status === 'closed';
    E.composer.disabled = closed;
    E.sendBtn.disabled = closed;
    E.ended.hidden = !(inChat && closed);
    if (closed) showConfirm(false);
    updateReconnecting();
  }

  function updateReconnecting() {
    E.reconnecting.hidden = !(S.cred && S.view === 'chat' && !isClosed() && !S.wsReady && S.wsEverFailed);
  }

  function showConfirm(show, refocus) {
    if (show && (!S.cred || isClosed())) return;
    E.confirm.hidden = !show;
    if (show) E.confirmYes.focus();
    else if (refocus) E.endBtn.hidden ? focusFirst() : E.endBtn.focus();
  }

  function autosize() {
    E.composer.style.height = 'auto';
    E.composer.style.height = `${Math.min(E.composer.scrollHeight + 2, 140)}px`;
  }

  function nearBottom() {
    return E.msgs.scrollHeight - E.msgs.scrollTop - E.msgs.clientHeight < 80;
  }
  function scrollToBottom() {
    E.msgs.scrollTop = E.msgs.scrollHeight;
  }

  // ------------------------------------------------------------ messages --

  const msgEls = new Map(); // key -> {el, sig}

  function systemText(m) {
    const name = m.author || operatorName() || t('operator');
    switch (m.event) {
      case 'accepted':
        return t('evAccepted', { name });
      case 'closed_by_visitor':
        return t('evClosedByVisitor');
      case 'closed_by_operator':
        return t('evClosedByOperator', { name });
      default:
        return m.text || '';
    }
  }

  function storedEl(m) {
    const sender = m.sender === 'operator' || m.sender === 'system' ? m.sender : 'visitor';
    const attrs = { class: `msg ${sender}`, 'data-testid': 'message', 'data-sender': sender, 'data-id': String(m.id) };
    if (sender === 'system') return h('div', attrs, h('span', { text: systemText(m) }));
    const el = h('div', attrs);
    const time = formatTime(m.created_at);
    if (sender === 'operator') {
      el.append(h('div', { class: 'author', text: m.author || operatorName() || t('operator') }));
      const bubble = h('div', { class: 'bubble' });
      if (typeof m.html === 'string' && m.html) bubble.append(safeHtml(m.html));
      else {
        bubble.classList.add('plain');
        bubble.textContent = m.text || '';
      }
      el.append(bubble);
    } else {
      el.append(h('div', { class: 'bubble' }, h('span', { class: 'sr', text: `${t('you')}: ` }), String(m.text || '')));
    }
    if (time) el.append(h('div', { class: 'meta' }, h('time', { datetime: m.created_at, text: time })));
    return el;
  }

  function localEl(l) {
    const failed = l.state === 'failed';
    const el = h(
      'div',
      {
        class: `msg visitor${failed ? ' failed' : ''}`,
        'data-testid': 'message',
        'data-sender': 'visitor',
        'data-id': '',
        'data-state': failed ? 'failed' : l.noPost ? 'stored' : 'sending',
      },
      h('div', { class: 'bubble' }, h('span', { class: 'sr', text: `${t('you')}: ` }), l.text)
    );
    const meta = h('div', { class: 'meta' });
    if (failed) {
      meta.append(
        h('span', { class: 'failed-text', text: `${t('notSent')}: ${l.error || t('errGeneric')}` }),
        h('button', { type: 'button', class: 'linkbtn', 'data-testid': 'retry', text: t('retry'), onclick: retryFailed })
      );
      if (!l.noPost)
        meta.append(h('button', { type: 'button', class: 'linkbtn', 'data-testid': 'edit', text: t('edit'), onclick: () => editLocal(l) }));
    } else if (!l.noPost) meta.append(h('span', { text: t('sending') }));
    // (the first message was stored with the chat; it only waits for its id from the server)
    if (meta.childNodes.length) el.append(meta);
    return el;
  }

  function renderMessages() {
    const stick = nearBottom();
    const wanted = [];
    const ids = Array.from(S.msgs.keys()).sort((a, b) => Number(a) - Number(b));
    for (const id of ids) {
      const m = S.msgs.get(id);
      const key = `m${id}`;
      const sig = `${m.sender}|${m.author}|${m.text}|${m.html}|${m.event}|${m.created_at}|${operatorName()}`;
      let entry = msgEls.get(key);
      if (!entry || entry.sig !== sig) {
        const el = storedEl(m);
        if (entry) entry.el.replaceWith(el);
        entry = { el, sig };
        msgEls.set(key, entry);
      }
      wanted.push(key);
    }
    for (const l of S.locals) {
      const key = `l${l.lid}`;
      const sig = `${l.state}|${l.error}|${l.text}`;
      let entry = msgEls.get(key);
      if (!entry || entry.sig !== sig) {
        const el = localEl(l);
        if (entry) entry.el.replaceWith(el);
        entry = { el, sig };
        msgEls.set(key, entry);
      }
      wanted.push(key);
    }
    const keep = new Set(wanted);
    for (const [key, entry] of msgEls) {
      if (!keep.has(key)) {
        entry.el.remove();
        msgEls.delete(key);
      }
    }
    wanted.forEach((key, i) => {
      const el = msgEls.get(key).el;
      if (E.msgs.children[i] !== el) E.msgs.insertBefore(el, E.msgs.children[i] || null);
    });
    if (stick) scrollToBottom();
  }

  // Add stored messages (from the POST answer, the history, or the socket), de-duplicated by id.
  function addMessages(list) {
    let changed = false;
    let fromVisitorHere = false;
    for (const m of list || []) {
      if (!m || m.id == null || !Number.isFinite(Number(m.id))) continue;
      const id = Number(m.id);
      const old = S.msgs.get(id);
      if (old) {
        if (JSON.stringify(old) !== JSON.stringify(m)) {
          S.msgs.set(id, m);
          changed = true;
        }
        continue;
      }
      if (m.sender === 'visitor') {
        // A message typed here may come back on the socket before its POST answers.
        const same = (l) => l.text.trim() === String(m.text || '').trim();
        const idx = S.locals.findIndex(
          (l) => l.noPost || (same(l) && (l.state === 'sending' || (l.state === 'failed' && l.code === 'network')))
        );
        if (idx >= 0) {
          S.locals[idx].serverId = id;
          S.locals.splice(idx, 1);
          fromVisitorHere = true;
        }
      }
      S.msgs.set(id, m);
      changed = true;
    }
    if (!changed) return;
    renderMessages();
    if (fromVisitorHere) scrollToBottom();
    if (S.open) markSeen();
    else updateBadge();
  }

  // -------------------------------------------------------------- status --

  let statusInFlight = null;
  function refreshStatus() {
    if (statusInFlight) return statusInFlight;
    statusInFlight = api('GET', '/api/v1/status')
      .then((r) => setOnline(!!(r && r.online)))
      .catch(() => {
        if (S.online === null) setOnline(false);
      })
      .finally(() => {
        statusInFlight = null;
      });
    return statusInFlight;
  }

  // ------------------------------------------------------- start a chat --

  function saveCred() {
    storageSet('localStorage', STORE_CHAT, S.cred ? { id: S.cred.id, token: S.cred.token } : null);
  }

  async function submitPrechat(e) {
    e.preventDefault();
    if (E.preSubmit.disabled) return;
    clearError();
    clearFieldErrors(E.prechatView);
    const name = E.preName.value.trim();
    const email = E.preEmail.value.trim();
    const message = E.preMessage.value.trim();
    if (email && E.preEmail.validity && E.preEmail.validity.typeMismatch) return fieldError(E.preEmail, t('errEmailInvalid'));
    if (!message) return fieldError(E.preMessage, t('errMessageRequired'));
    const body = { message, page_url: location.href, referrer: document.referrer || '' };
    if (name) body.name = name;
    if (email) body.email = email;
    E.preSubmit.disabled = true;
    try {
      const r = await api('POST', '/api/v1/chats', { body });
      if (!r || r.id == null || !r.token) throw new ApiError(500, 'bad_response', '');
      S.cred = { id: r.id, token: r.token };
      saveCred();
      S.chat = { id: r.id, status: r.status || 'pending', operator: null, created_at: new Date().toISOString(), closed_at: null };
      S.msgs.clear();
      S.locals = [{ lid: ++S.lidSeq, text: message, state: 'sending', noPost: true }];
      S.seen = 0;
      storageSet('sessionStorage', STORE_SEEN, { chat: r.id, id: 0 });
      E.prechatView.reset();
      showView('chat');
      renderMessages();
      if (S.open) focusFirst();
      S.wsAttempt = 0;
      S.wsEverFailed = false;
      connect();
    } catch (err) {
      showError(err);
    } finally {
      E.preSubmit.disabled = false;
    }
  }

  async function submitOffline(e) {
    e.preventDefault();
    if (E.offSubmit.disabled) return;
    clearError();
    clearFieldErrors(E.offlineView);
    const name = E.offName.value.trim();
    const email = E.offEmail.value.trim();
    const message = E.offMessage.value.trim();
    if (!email) return fieldError(E.offEmail, t('errEmailRequired'));
    if (E.offEmail.validity && E.offEmail.validity.typeMismatch) return fieldError(E.offEmail, t('errEmailInvalid'));
    if (!message) return fieldError(E.offMessage, t('errMessageRequired'));
    const body = { email, message };
    if (name) body.name = name;
    E.offSubmit.disabled = true;
    try {
      await api('POST', '/api/v1/offline-messages', { body });
      E.offlineView.reset();
      showView('offline-thanks');
      if (S.open) focusFirst();
    } catch (err) {
      showError(err);
    } finally {
      E.offSubmit.disabled = false;
    }
  }

  // -------------------------------------------------------- chat actions --

  function onComposerKey(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendFromComposer();
    }
  }

  function sendFromComposer() {
    if (!S.cred || isClosed()) return;
    const text = E.composer.value.trim();
    if (!text) return;
    clearError();
    S.locals.push({ lid: ++S.lidSeq, text, state: 'queued' });
    E.composer.value = '';
    autosize();
    renderMessages();
    scrollToBottom();
    pump();
  }

  // Sends queued messages one at a time, in order.
  async function pump() {
    if (S.pumping) return;
    S.pumping = true;
    try {
      for (;;) {
        const cred = S.cred;
        const l = S.locals.find((x) => x.state === 'queued' && !x.noPost);
        if (!l || !cred) break;
        const wait = S.blockedUntil - Date.now();
        if (wait > 0) {
          clearTimeout(S.retryTimer);
          S.retryTimer = setTimeout(pump, wait);
          break;
        }
        l.state = 'sending';
        renderMessages();
        try {
          const r = await api('POST', `/api/v1/chats/${encodeURIComponent(cred.id)}/messages`, {
            body: { text: l.text },
            token: cred.token,
          });
          if (S.cred !== cred) break;
          const m = r && r.message ? r.message : r;
          const i = S.locals.indexOf(l);
          if (i >= 0) S.locals.splice(i, 1);
          if (m && m.id != null) addMessages([m]);
          else renderMessages();
        } catch (err) {
          if (S.cred !== cred) break;
          onSendError(l, err);
          break;
        }
      }
    } finally {
      S.pumping = false;
    }
  }

  function onSendError(l, err) {
    if (err.status === 401 || err.status === 404) {
      // The chat is gone: start over, keeping everything not yet sent in the form.
      const unsent = S.locals.filter((x) => !x.noPost && S.locals.indexOf(x) >= S.locals.indexOf(l)).map((x) => x.text);
      forgetChat();
      if (unsent.length) E.preMessage.value = unsent.join('\n\n');
      showError(err);
      return;
    }
    // This one and everything queued after it become "failed" (order is kept on retry).
    const from = S.locals.indexOf(l);
    for (const x of S.locals.slice(from)) {
      if (x.noPost) continue;
      x.state = 'failed';
      x.error = errorText(err);
      x.code = err.code;
    }
    showError(err);
    renderMessages();
    if (err.status === 429 || err.code === 'rate_limited') {
      const wait = err.retryAfterMs != null ? Math.min(err.retryAfterMs, 120000) : 5000;
      S.blockedUntil = Date.now() + wait;
      clearTimeout(S.retryTimer);
      S.retryTimer = setTimeout(retryFailed, wait + 50);
    } else if (err.code === 'chat_closed') {
      catchUp(true);
    }
  }

  function retryFailed() {
    let any = false;
    for (const x of S.locals) {
      if (x.state === 'failed' && !x.noPost) {
        x.state = 'queued';
        x.error = '';
        any = true;
      }
    }
    clearError();
    renderMessages();
    if (any) pump();
  }

  function editLocal(l) {
    const i = S.locals.indexOf(l);
    if (i < 0) return;
    S.locals.splice(i, 1);
    E.composer.value = E.composer.value ? `${l.text}\n${E.composer.value}` : l.text;
    autosize();
    renderMessages();
    E.composer.focus();
  }

  async function closeChat() {
    const cred = S.cred;
    if (!cred || E.confirmYes.disabled) return;
    E.confirmYes.disabled = true;
    clearError();
    try {
      const c = await api('POST', `/api/v1/chats/${encodeURIComponent(cred.id)}/close`, { token: cred.token });
      if (S.cred !== cred) return;
      setChat(c && c.status ? c : { status: 'closed', closed_at: new Date().toISOString() });
      showConfirm(false);
      E.newChatBtn.focus();
    } catch (err) {
      if (err.status === 401 || err.status === 404) forgetChat();
      else if (err.code === 'chat_closed') catchUp(true);
      showError(err);
    } finally {
      E.confirmYes.disabled = false;
    }
  }

  function startNewChat() {
    forgetChat();
    clearError();
    refreshStatus().then(() => {
      if (S.open) focusFirst();
    });
  }

  function setChat(c) {
    if (!c || typeof c !== 'object') return;
    const wasClosed = isClosed();
    S.chat = Object.assign({}, S.chat || {}, c);
    renderChatState();
    renderMessages(); // system texts may use the operator's name
    if (isClosed() && !wasClosed) {
      clearTimeout(S.wsTimer);
      for (const x of S.locals) if (x.state === 'queued') Object.assign(x, { state: 'failed', error: t('errChatClosed'), code: 'chat_closed' });
      renderMessages();
      if (S.open && S.view === 'chat' && E.panel.contains(shadow.activeElement) && shadow.activeElement === E.composer) E.newChatBtn.focus();
    }
  }

  function forgetChat() {
    S.wsGen++; // ignore whatever the old socket still says
    if (S.ws) {
      try {
        S.ws.close(1000);
      } catch (_) {
        /* ignore */
      }
    }
    S.ws = null;
    S.wsReady = false;
    S.wsEverFailed = false;
    S.wsAttempt = 0;
    clearTimeout(S.wsTimer);
    clearTimeout(S.retryTimer);
    S.blockedUntil = 0;
    S.cred = null;
    S.chat = null;
    S.msgs.clear();
    S.locals = [];
    S.seen = 0;
    saveCred();
    storageSet('sessionStorage', STORE_SEEN, null);
    E.composer.value = '';
    renderMessages();
    showConfirm(false);
    showView(S.online === null ? 'loading' : S.online ? 'prechat' : 'offline');
    updateBadge();
  }

  // Fetch the chat and the messages we have not seen (resume, and fallback when the socket fails).
  async function catchUp(force) {
    const cred = S.cred;
    if (!cred) return;
    if (!force && Date.now() - S.lastCatchUp < 5000) return;
    S.lastCatchUp = Date.now();
    const path = `/api/v1/chats/${encodeURIComponent(cred.id)}`;
    try {
      const c = await api('GET', path, { token: cred.token });
      if (S.cred !== cred) return;
      setChat(c);
      const r = await api('GET', `${path}/messages?after=${lastId()}`, { token: cred.token });
      if (S.cred !== cred) return;
      addMessages((r && r.messages) || []);
    } catch (err) {
      if (S.cred === cred && (err.status === 401 || err.status === 404)) forgetChat();
    }
  }

  // ------------------------------------------------------------- socket --

  function connect() {
    const cred = S.cred;
    if (!cred || isClosed()) return;
    clearTimeout(S.wsTimer);
    const gen = ++S.wsGen;
    if (S.ws) {
      try {
        S.ws.close(1000);
      } catch (_) {
        /* ignore */
      }
    }
    S.ws = null;
    S.wsReady = false;
    let ws;
    try {
      ws = new WebSocket(`${WS_BASE}/api/v1/chats/${encodeURIComponent(cred.id)}/live`);
    } catch (_) {
      onSocketLost(gen);
      return;
    }
    S.ws = ws;
    ws.onopen = () => {
      if (gen !== S.wsGen) return;
      ws.send(JSON.stringify({ type: 'auth', token: cred.token, after: lastId() }));
    };
    ws.onmessage = (ev) => {
      if (gen !== S.wsGen) return;
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      if (!f || typeof f !== 'object') return;
      switch (f.type) {
        case 'ready':
          S.wsReady = true;
          S.wsAttempt = 0;
          S.wsEverFailed = false;
          setChat(f.chat);
          updateReconnecting();
          break;
        case 'message':
          if (f.message) addMessages([f.message]);
          break;
        case 'chat':
          setChat(f.chat);
          break;
        case 'error':
          if (f.code === 'unauthorized' || f.code === 'not_found') {
            S.wsGen++;
            try {
              ws.close(1000);
            } catch (_) {
              /* ignore */
            }
            forgetChat();
          } else if (f.code === 'chat_closed') {
            catchUp(true);
          }
          break;
        default:
          break; // unknown frame types are ignored (forward compatible)
      }
    };
    ws.onerror = () => {
      /* a close event follows */
    };
    ws.onclose = () => {
      if (gen !== S.wsGen) return;
      onSocketLost(gen);
    };
  }

  function onSocketLost(gen) {
    if (gen !== S.wsGen) return;
    S.ws = null;
    S.wsReady = false;
    if (!S.cred || isClosed()) {
      updateReconnecting();
      return;
    }
    S.wsEverFailed = true;
    updateReconnecting();
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** S.wsAttempt);
    const delay = Math.max(BACKOFF_MIN_MS, Math.round(ceiling * (0.5 + Math.random() * 0.5)));
    S.wsAttempt = Math.min(S.wsAttempt + 1, 10);
    clearTimeout(S.wsTimer);
    S.wsTimer = setTimeout(connect, delay);
    catchUp(false); // keep the transcript current even if the socket cannot get through
  }

  function reconnectNow() {
    if (!S.cred || isClosed() || S.wsReady) return;
    if (S.ws && S.ws.readyState === WebSocket.CONNECTING) return;
    S.wsAttempt = 0;
    connect();
  }

  window.addEventListener('online', () => {
    reconnectNow();
    refreshStatus();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') {
      reconnectNow();
      refreshStatus();
    }
  });

  // --------------------------------------------------------------- start --

  async function resume(stored) {
    S.cred = { id: stored.id, token: stored.token };
    const seen = storageGet('sessionStorage', STORE_SEEN);
    const knownSeen = seen && String(seen.chat) === String(stored.id) ? Number(seen.id) || 0 : null;
    S.seen = knownSeen == null ? Number.MAX_SAFE_INTEGER : knownSeen; // unknown: count nothing until loaded
    const path = `/api/v1/chats/${encodeURIComponent(stored.id)}`;
    try {
      const c = await api('GET', path, { token: stored.token });
      if (c && c.status === 'closed' && c.closed_at && Date.now() - Date.parse(c.closed_at) > FORGET_CLOSED_AFTER_MS) {
        forgetChat();
        return;
      }
      setChat(c);
      const r = await api('GET', `${path}/messages?after=0`, { token: stored.token });
      addMessages((r && r.messages) || []);
    } catch (err) {
      if (err.status === 401 || err.status === 404) {
        forgetChat();
        return;
      }
      // Network trouble: carry on; the socket (after=0) or the next catch-up fills in the history.
    }
    if (!S.cred) return;
    if (knownSeen == null) {
      S.seen = lastId();
      storageSet('sessionStorage', STORE_SEEN, { chat: S.cred.id, id: S.seen });
    }
    showView('chat');
    renderMessages();
    scrollToBottom();
    updateBadge();
    if (S.open) {
      markSeen();
      if (E.panel.contains(shadow.activeElement)) focusFirst();
    }
    connect();
  }

  function start() {
    document.body.append(host);
    showView('loading');
    const stored = storageGet('localStorage', STORE_CHAT);
    const openPref = storageGet('sessionStorage', STORE_OPEN);
    setOpen(typeof openPref === 'boolean' ? openPref : OPTS.open, { focus: false, persist: typeof openPref === 'boolean' });
    refreshStatus();
    setInterval(() => {
      if (document.visibilityState !== 'hidden') refreshStatus();
    }, STATUS_POLL_MS);
    if (stored && stored.id != null && typeof stored.token === 'string' && stored.token) resume(stored);
    updateBadge();
  }

  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start, { once: true });
})();

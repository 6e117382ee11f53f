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
  const STATUS_POLL_MS = 20000; // online/offline switches live while no chat is running
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const REQUEST_TIMEOUT_MS = 15000;
  const FORGET_CLOSED_AFTER_MS = 30 * 60 * 1000; // a chat that ended long ago is not resumed
  const TYPING_SHOWN_MS = 5000; // "… is typing" disappears after this without a new signal
  const TYPING_SEND_MS = 3000; // the visitor's typing is sent at most this often

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
      phoneOptional: 'Phone (optional)',
      department: 'Department',
      departmentOffline: '{name} (offline)',
      errPhoneInvalid: 'Please enter a valid phone number',
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
      evTransferred: 'You are now talking to {name}',
      typing: '{name} is typing…',
      edited: 'edited',
      editedAt: 'Edited {time}',
      evVisitorLeft: 'The chat ended because you were away for a while',
      evStillWaiting: 'Sorry for the wait: everyone is busy right now. You are still in the queue, or you can leave us a message and we will reply by e-mail.',
      leaveMessage: 'Leave a message instead',
      leaveMessageIntro: 'Leave us a message and we will reply by e-mail.',
      errRateLimited: 'Too many messages, please wait a moment',
      errChatClosed: 'This chat has already ended',
      errTooLong: 'Your message is too long',
      errValidation: 'Please check your input',
      errNetwork: 'Cannot reach the chat service. Please check your connection and try again.',
      errGeneric: 'Something went wrong. Please try again.',
      errMessageRequired: 'Please enter a message',
      errEmailRequired: 'Please enter your e-mail address',
      errNameRequired: 'Please enter your name',
      errEmailInvalid: 'Please enter a valid e-mail address',
      unread_one: '{n} unread message',
      unread_other: '{n} unread messages',
      attach: 'Attach files',
      attachments: 'Files to send',
      removeFile: 'Remove {name}',
      dropHint: 'Drop files here to send them',
      uploading: 'Uploading… {n} %',
      waitingUpload: 'waiting…',
      cancelUpload: 'Cancel upload',
      uploadProgress: 'Upload progress',
      dismiss: 'Dismiss',
      openImage: 'Enlarge image {name}',
      closeImage: 'Close image',
      download: 'Download',
      imageDialog: 'Image {name}',
      quoted: '“{name}”',
      sizeB: '{n} B',
      sizeKB: '{n} KB',
      sizeMB: '{n} MB',
      sizeGB: '{n} GB',
      errFileTooLarge: '{file} is too large (at most {max} per file).',
      errFileType: '{file} cannot be sent: files of this type are not allowed.',
      errFileEmpty: '{file} is empty.',
      errTooManyFiles: 'At most {n} files can be sent at once: {file} was not added.',
      errTooManyFilesSent: '{file} was not sent: at most {n} files can be sent at once.',
      errChatFilesLimit: '{file} was not sent: no more files can be sent in this chat.',
      errNoRoomForFiles: '{file} was not sent: files cannot be received right now. Please try again later.',
      errRequestTooLarge: '{file} was not sent: the files are too large together. Please send them one at a time.',
      errFileRequired: 'Please choose a file to send.',
      errUploadFailed: '{file} was not sent. {reason}',
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
      phoneOptional: 'Telefon (optional)',
      department: 'Abteilung',
      departmentOffline: '{name} (offline)',
      errPhoneInvalid: 'Bitte geben Sie eine gültige Telefonnummer ein',
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
      evTransferred: 'Sie sprechen jetzt mit {name}',
      typing: '{name} schreibt…',
      edited: 'bearbeitet',
      editedAt: 'Bearbeitet {time}',
      evVisitorLeft: 'Der Chat wurde beendet, weil Sie eine Weile nicht da waren',
      evStillWaiting:
        'Entschuldigen Sie die Wartezeit: Gerade sind alle beschäftigt. Sie bleiben in der Warteschlange – oder hinterlassen Sie uns eine Nachricht, wir antworten Ihnen per E-Mail.',
      leaveMessage: 'Stattdessen eine Nachricht hinterlassen',
      leaveMessageIntro: 'Hinterlassen Sie uns eine Nachricht, wir antworten Ihnen per E-Mail.',
      errRateLimited: 'Zu viele Nachrichten – bitte warten Sie einen Moment',
      errChatClosed: 'Dieser Chat wurde bereits beendet',
      errTooLong: 'Ihre Nachricht ist zu lang',
      errValidation: 'Bitte überprüfen Sie Ihre Eingaben',
      errNetwork:
        'Der Chat-Dienst ist nicht erreichbar. Bitte prüfen Sie Ihre Verbindung und versuchen Sie es erneut.',
      errGeneric: 'Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut.',
      errMessageRequired: 'Bitte geben Sie eine Nachricht ein',
      errEmailRequired: 'Bitte geben Sie Ihre E-Mail-Adresse ein',
      errNameRequired: 'Bitte geben Sie Ihren Namen ein',
      errEmailInvalid: 'Bitte geben Sie eine gültige E-Mail-Adresse ein',
      unread_one: '{n} ungelesene Nachricht',
      unread_other: '{n} ungelesene Nachrichten',
      attach: 'Dateien anhängen',
      attachments: 'Zu sendende Dateien',
      removeFile: '{name} entfernen',
      dropHint: 'Dateien hier ablegen, um sie zu senden',
      uploading: 'Wird hochgeladen… {n} %',
      waitingUpload: 'wartet…',
      cancelUpload: 'Hochladen abbrechen',
      uploadProgress: 'Fortschritt beim Hochladen',
      dismiss: 'Ausblenden',
      openImage: 'Bild {name} vergrößern',
      closeImage: 'Bild schließen',
      download: 'Herunterladen',
      imageDialog: 'Bild {name}',
      quoted: '„{name}“',
      sizeB: '{n} B',
      sizeKB: '{n} KB',
      sizeMB: '{n} MB',
      sizeGB: '{n} GB',
      errFileTooLarge: '{file} ist zu groß (höchstens {max} pro Datei).',
      errFileType: '{file} kann nicht gesendet werden: Dateien dieses Typs sind nicht erlaubt.',
      errFileEmpty: '{file} ist leer.',
      errTooManyFiles: 'Höchstens {n} Dateien können auf einmal gesendet werden: {file} wurde nicht hinzugefügt.',
      errTooManyFilesSent: '{file} wurde nicht gesendet: Höchstens {n} Dateien können auf einmal gesendet werden.',
      errChatFilesLimit: '{file} wurde nicht gesendet: In diesem Chat können keine weiteren Dateien gesendet werden.',
      errNoRoomForFiles: '{file} wurde nicht gesendet: Dateien können gerade nicht empfangen werden. Bitte versuchen Sie es später noch einmal.',
      errRequestTooLarge:
        '{file} wurde nicht gesendet: Die Dateien sind zusammen zu groß. Bitte senden Sie sie einzeln.',
      errFileRequired: 'Bitte wählen Sie eine Datei aus.',
      errUploadFailed: '{file} wurde nicht gesendet. {reason}',
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
    constructor(status, code, message, retryAfterMs, field) {
      super(message || code);
      this.status = status;
      this.code = code;
      this.retryAfterMs = retryAfterMs;
      this.field = field || null;
    }
  }

  // The API's JSON error ({"error": {"code", "message", "field"?}}) as an ApiError.
  function responseError(status, text, statusText, retryAfter) {
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    const err = (data && data.error) || {};
    const code = err.code || (status === 429 ? 'rate_limited' : status === 413 ? 'request_too_large' : `http_${status}`);
    return new ApiError(status, code, err.message || statusText, parseRetryAfter(retryAfter), err.field);
  }

  function parseRetryAfter(value) {
    if (!value) return null;
    const secs = Number(value);
    if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
    const date = Date.parse(value);
    return Number.isFinite(date) ? Math.max(0, date - Date.now()) : null;
  }

  // parley refuses this page's origin (PARLEY_ALLOWED_ORIGINS): say so once, for the site's
  // developer, since the visitor only sees the widget stay offline.
  let originReported = false;
  function reportOriginRefused(message) {
    if (originReported) return;
    originReported = true;
    console.error(`parley: ${message}. Add ${location.origin} to PARLEY_ALLOWED_ORIGINS on the parley server (${BASE}).`);
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
    if (!res.ok) {
      const err = responseError(res.status, text, res.statusText, res.headers.get('Retry-After'));
      if (err.code === 'origin_not_allowed') reportOriginRefused(err.message);
      throw err;
    }
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    return data;
  }

  // POSTs a FormData with XMLHttpRequest (fetch cannot report upload progress). No timeout: a
  // large file on a slow line may take long; the visitor can cancel. Returns {promise, abort}.
  function apiUpload(path, form, token, onProgress) {
    const xhr = new XMLHttpRequest();
    const promise = new Promise((resolve, reject) => {
      xhr.open('POST', BASE + path);
      xhr.setRequestHeader('Accept', 'application/json');
      if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
      xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : 0);
      xhr.onload = () => {
        if (xhr.status < 200 || xhr.status >= 300) {
          reject(responseError(xhr.status, xhr.responseText, xhr.statusText, xhr.getResponseHeader('Retry-After')));
          return;
        }
        try {
          resolve(xhr.responseText ? JSON.parse(xhr.responseText) : null);
        } catch (_) {
          resolve(null);
        }
      };
      xhr.onerror = () => reject(new ApiError(0, 'network', 'network error'));
      xhr.onabort = () => reject(new ApiError(0, 'aborted', 'aborted'));
      xhr.send(form);
    });
    return { promise, abort: () => xhr.abort() };
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
button, input, textarea, select { font: inherit; color: inherit; }
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
.field input, .field textarea, .field select, .composer textarea {
  width: 100%; border: 1px solid #b9c1cd; border-radius: 8px; padding: 8px 10px; background: #fff;
}
.field textarea { min-height: 96px; resize: vertical; }
.field input:focus-visible, .field textarea:focus-visible, .field select:focus-visible, .composer textarea:focus-visible {
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
.msg.system .linkbtn { display: block; margin: 6px auto 0; font-size: 13px; }
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
.edited { font-style: italic; }
.typing { margin: 0; padding: 0 16px 6px; min-height: 0; font-size: 12px; color: var(--muted); font-style: italic; }
.typing::after { content: ''; display: inline-block; width: 1.2em; text-align: left; animation: parley-dots 1.2s steps(4, end) infinite; }
@keyframes parley-dots { 0% { content: ''; } 25% { content: '.'; } 50% { content: '..'; } 75% { content: '...'; } }
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


.attach { flex: none; width: 40px; height: 40px; border: 0; border-radius: 50%; padding: 0; background: transparent; color: var(--muted);
  display: flex; align-items: center; justify-content: center; }
.attach:hover:not(:disabled) { background: var(--soft); color: var(--fg); }
.attach svg, .x svg, .file svg, .chip svg, .lb-close svg { fill: none; stroke: currentColor; stroke-width: 2; stroke-linecap: round; stroke-linejoin: round; }
.file-input { display: none; }
.files { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 4px; max-width: 100%; }
.visitor .files { justify-content: flex-end; }
.thumb { padding: 0; border: 0; border-radius: 12px; overflow: hidden; background: var(--soft); cursor: zoom-in; line-height: 0;
  box-shadow: 0 0 0 1px var(--line); max-width: 100%; }
.thumb img { display: block; height: 140px; width: auto; min-width: 48px; max-width: 100%; object-fit: cover; color: var(--muted); font-size: 12px; }
.thumb:hover img { opacity: .92; }
.file { display: inline-flex; align-items: center; gap: 6px; max-width: 100%; padding: 8px 12px; border: 1px solid var(--line);
  border-radius: 12px; background: #fff; color: var(--fg); text-decoration: none; font-size: 13px; }
.file:hover { border-color: var(--accent); }
.file svg { flex: none; color: var(--accent); }
.fname { font-weight: 600; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.fsize { flex: none; color: var(--muted); white-space: nowrap; }
.upload { display: flex; align-items: center; gap: 8px; margin: 4px 4px 0; font-size: 11px; color: var(--muted); }
.progress { width: 120px; height: 6px; border-radius: 3px; background: var(--line); overflow: hidden; }
.progress > span { display: block; height: 100%; width: 0; background: var(--accent); transition: width .2s linear; }
.upload-error { margin: 8px 12px 0; padding: 8px 10px; border-radius: 8px; background: #fdecea; color: var(--danger); font-size: 13px;
  display: flex; gap: 8px; align-items: flex-start; }
.upload-error .lines { flex: 1; min-width: 0; overflow-wrap: anywhere; }
.upload-error p { margin: 0; } .upload-error p + p { margin-top: 4px; }
.x { flex: none; width: 24px; height: 24px; border: 0; border-radius: 50%; padding: 0; background: transparent; color: inherit;
  display: flex; align-items: center; justify-content: center; }
.x:hover { background: rgba(0,0,0,.08); }
.tray { display: flex; flex-wrap: wrap; gap: 6px; padding: 8px 12px 0; margin: 0; list-style: none; }
.chip { display: inline-flex; align-items: center; gap: 6px; max-width: 100%; padding: 3px 3px 3px 4px; border: 1px solid var(--line);
  border-radius: 10px; background: var(--soft); font-size: 13px; }
.chip .fname { max-width: 140px; font-weight: 500; }
.chip img, .chip .ficon { flex: none; width: 30px; height: 30px; border-radius: 6px; object-fit: cover; background: #fff;
  display: flex; align-items: center; justify-content: center; color: var(--accent); }
.drop { position: absolute; inset: 8px; z-index: 5; border: 2px dashed var(--accent); border-radius: 12px; pointer-events: none;
  background: rgba(255,255,255,.94); color: var(--accent); font-weight: 650; display: flex; flex-direction: column;
  align-items: center; justify-content: center; gap: 8px; text-align: center; padding: 16px; }
.drop svg { fill: none; stroke: currentColor; stroke-width: 2; stroke-linecap: round; stroke-linejoin: round; }
.drop p { margin: 0; }
.lightbox { position: fixed; inset: 0; z-index: 2147483002; background: rgba(12,16,24,.86); display: flex; flex-direction: column;
  align-items: center; justify-content: center; gap: 12px; padding: 56px 16px 20px; animation: parley-fade .15s ease-out; }
@keyframes parley-fade { from { opacity: 0; } to { opacity: 1; } }
.lightbox img { display: block; max-width: 100%; max-height: calc(100% - 44px); min-width: 0; min-height: 0; object-fit: contain;
  border-radius: 8px; background: #fff; box-shadow: 0 10px 40px rgba(0,0,0,.5); cursor: zoom-out; }
.lb-bar { display: flex; align-items: center; gap: 14px; max-width: 100%; color: #fff; font-size: 14px; }
.lb-bar .fname { color: #fff; }
.lb-bar a { color: #fff; white-space: nowrap; }
.lb-close { position: absolute; top: 12px; right: 12px; width: 40px; height: 40px; border: 0; border-radius: 50%; padding: 0;
  background: rgba(255,255,255,.16); color: #fff; display: flex; align-items: center; justify-content: center; }
.lb-close:hover { background: rgba(255,255,255,.28); }
.lightbox :focus-visible { outline-color: #fff; }

.left .launcher, .left .panel { left: 20px; right: auto; }
.left .badge { left: 62px; right: auto; }
@media (max-width: 480px) {
  .panel, .left .panel { left: 0; right: 0; top: 0; bottom: 0; width: 100%; height: 100%; max-height: none; border-radius: 0; }
  .is-open .launcher, .is-open .badge { display: none; }
  .field input, .field textarea, .field select, .composer textarea { font-size: 16px; }
}
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { animation: none !important; transition: none !important; scroll-behavior: auto !important; }
}
@media (forced-colors: active) {
  .launcher, .send, .primary, .danger, .badge, .attach, .x, .lb-close { border: 1px solid ButtonText; }
  .progress > span { background: Highlight; }
}
`;

  // ---------------------------------------------------------------- state --

  const S = {
    config: {}, // the back office's widget settings (/widget-config): title, greeting
    fields: { name: 'optional', email: 'optional' }, // pre-chat fields: required | optional | hidden
    online: null, // null = not known yet (for the chosen department, when there are several)
    departments: [], // from /status: [{id, name, online, texts}]; empty = no departments
    dept: null, // the chosen department's id (null = the first)
    askPhone: false, // /status fields.phone
    view: 'loading', // loading | prechat | offline | offline-thanks | chat
    leaveMessage: false, // the visitor chose "leave a message instead": the form stays, online or not
    open: false,
    cred: null, // {id, token}
    chat: null, // Chat JSON
    msgs: new Map(), // id -> Message (stored on the server)
    locals: [], // messages typed here and not yet confirmed: {lid, text, state, error, code, noPost, files?}
    lidSeq: 0,
    seen: 0, // highest message id the visitor has seen with the panel open
    ws: null,
    wsGen: 0,
    wsReady: false,
    wsAttempt: 0,
    wsTimer: 0,
    wsEverFailed: false,
    wsHadReady: false, // a socket of this chat was ready before (a later "ready" is a reconnect)
    wsParked: false, // a newer tab of this chat took the socket; reconnect when this tab is used again
    deleted: new Set(), // ids of messages an operator deleted: never shown again
    typingTimer: 0,
    typingSentAt: 0,
    lastCatchUp: 0,
    pumping: false,
    blockedUntil: 0,
    retryTimer: 0,
    files: null, // the server's file limits from /status ({max_bytes, max_per_message, types}); null = no files
    staged: [], // File objects chosen for the next message
    urlTimer: 0,
    urlRefreshAt: 0, // when the file links shown should be fetched anew (before they expire)
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
    h('div', { class: 'hd-main' }, (E.title = h('h2', { class: 'title', id: 'parley-title', text: t('title') })), h('div', { class: 'sub' }, E.status, E.opName)),
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
  E.prePhone = h('input', { type: 'tel', name: 'phone', autocomplete: 'tel', maxlength: '40', 'data-testid': 'prechat-phone' });
  E.preDept = h('select', { name: 'department', 'data-testid': 'prechat-department', onchange: () => chooseDepartment(E.preDept.value) });
  E.preSubmit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'prechat-submit', text: t('startChat') });
  E.preIntro = h('p', { class: 'intro', text: t('prechatIntro') });
  E.preDeptField = field('parley-pre-dept', t('department'), E.preDept);
  E.prePhoneField = field('parley-pre-phone', t('phoneOptional'), E.prePhone);
  E.preDeptField.hidden = true;
  E.prePhoneField.hidden = true;
  E.prechatView = h(
    'form',
    { class: 'view prechat', 'data-testid': 'prechat-form', novalidate: true, 'aria-labelledby': 'parley-title', hidden: true, onsubmit: submitPrechat },
    E.preIntro,
    E.preDeptField,
    (E.preNameField = field('parley-pre-name', t('nameOptional'), E.preName)),
    (E.preEmailField = field('parley-pre-email', t('emailOptional'), E.preEmail)),
    E.prePhoneField,
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
  E.offPhone = h('input', { type: 'tel', name: 'phone', autocomplete: 'tel', maxlength: '40', 'data-testid': 'offline-phone' });
  E.offDept = h('select', { name: 'department', 'data-testid': 'offline-department', onchange: () => chooseDepartment(E.offDept.value) });
  E.offSubmit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'offline-submit', text: t('sendMessage') });
  E.offIntro = h('p', { class: 'intro', text: t('offlineIntro') });
  E.offDeptField = field('parley-off-dept', t('department'), E.offDept);
  E.offPhoneField = field('parley-off-phone', t('phoneOptional'), E.offPhone);
  E.offDeptField.hidden = true;
  E.offPhoneField.hidden = true;
  E.offlineView = h(
    'form',
    { class: 'view offline', 'data-testid': 'offline-form', novalidate: true, 'aria-labelledby': 'parley-title', hidden: true, onsubmit: submitOffline },
    E.offIntro,
    E.offDeptField,
    field('parley-off-name', t('nameOptional'), E.offName),
    field('parley-off-email', t('email'), E.offEmail),
    E.offPhoneField,
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
  // "Alice is typing…": not a live region, so screen readers are not interrupted by it.
  E.typing = h('p', { class: 'typing', 'data-testid': 'typing', hidden: true });
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
    oninput: onComposerInput,
    onpaste: onComposerPaste,
  });
  E.fileInput = h('input', {
    type: 'file',
    multiple: true,
    class: 'file-input',
    tabindex: '-1',
    'aria-hidden': 'true',
    'data-testid': 'file-input',
    onchange: () => {
      stageFiles(E.fileInput.files);
      E.fileInput.value = ''; // choosing the same file again fires change again
    },
  });
  E.attachBtn = h(
    'button',
    {
      type: 'button',
      class: 'attach',
      'data-testid': 'attach-button',
      'aria-label': t('attach'),
      title: t('attach'),
      hidden: true,
      onclick: () => E.fileInput.click(),
    },
    icon(ICON_CLIP, 22)
  );
  E.tray = h('ul', { class: 'tray', 'aria-label': t('attachments'), 'data-testid': 'attachments', hidden: true });
  E.uploadErrorLines = h('div', { class: 'lines' });
  E.uploadError = h(
    'div',
    { class: 'upload-error', 'data-testid': 'upload-error', role: 'alert', hidden: true },
    E.uploadErrorLines,
    h('button', { type: 'button', class: 'x', 'aria-label': t('dismiss'), title: t('dismiss'), onclick: () => clearUploadError(true) }, icon(ICON_X, 16))
  );
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
    E.attachBtn,
    E.fileInput,
    E.composer,
    E.sendBtn
  );
  E.chatView = h(
    'div',
    { class: 'view chat', hidden: true },
    E.chatStatus,
    E.msgs,
    E.typing,
    E.confirm,
    E.ended,
    E.uploadError,
    E.tray,
    E.composerForm
  );
  E.dropHint = h('div', { class: 'drop', 'data-testid': 'drop-hint', hidden: true }, icon(ICON_CLIP, 32), h('p', { text: t('dropHint') }));

  // The lightbox: an image enlarged over the page, inside the shadow root.
  E.lbImg = h('img', { alt: '' });
  E.lbName = h('span', { class: 'fname' });
  E.lbDownload = h('a', { rel: 'noopener', target: '_blank', text: t('download') });
  E.lbClose = h(
    'button',
    { type: 'button', class: 'lb-close', 'aria-label': t('closeImage'), title: t('closeImage'), onclick: () => closeLightbox() },
    icon(ICON_X, 22)
  );
  E.lightbox = h(
    'div',
    { class: 'lightbox', role: 'dialog', 'aria-modal': 'true', 'data-testid': 'lightbox', lang: LANG, hidden: true },
    E.lbClose,
    E.lbImg,
    h('div', { class: 'lb-bar' }, E.lbName, E.lbDownload)
  );
  E.lightbox.addEventListener('click', (e) => {
    if (e.target === E.lightbox || e.target === E.lbImg) closeLightbox();
  });
  E.lightbox.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      closeLightbox();
    } else if (e.key === 'Tab') {
      // keep focus inside the dialog
      const order = [E.lbClose, E.lbDownload].filter((x) => !x.hidden);
      const i = order.indexOf(shadow.activeElement);
      e.preventDefault();
      order[(i + (e.shiftKey ? order.length - 1 : 1)) % order.length].focus();
    }
  });
  E.lbImg.addEventListener('error', () => {
    if (E.lightbox.dataset.fileId) onFileError(E.lightbox.dataset.fileId);
  });

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
    h('div', { class: 'body' }, E.loadingView, E.prechatView, E.offlineView, E.thanksView, E.chatView),
    E.dropHint
  );
  E.panel.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !e.isComposing) {
      e.preventDefault();
      if (!E.confirm.hidden) showConfirm(false, true);
      else setOpen(false, { focus: true });
    }
  });

  // Files dragged onto the panel: a visible hint, and dropping never navigates the page away.
  let dragDepth = 0;
  const dragsFiles = (e) => !!(e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files'));
  E.panel.addEventListener('dragenter', (e) => {
    if (!dragsFiles(e)) return;
    e.preventDefault();
    dragDepth++;
    E.dropHint.hidden = !canAttach();
  });
  E.panel.addEventListener('dragover', (e) => {
    if (!dragsFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = canAttach() ? 'copy' : 'none';
  });
  E.panel.addEventListener('dragleave', (e) => {
    if (!dragsFiles(e)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) E.dropHint.hidden = true;
  });
  E.panel.addEventListener('drop', (e) => {
    if (!dragsFiles(e)) return;
    e.preventDefault();
    dragDepth = 0;
    E.dropHint.hidden = true;
    if (canAttach()) {
      stageFiles(e.dataTransfer.files);
      E.composer.focus();
    }
  });

  root.append(E.panel, E.launcher, E.badge, E.lightbox);
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
    if (S.leaveMessage) return 'offline';
    if (S.online === null) return 'loading';
    return S.online ? 'prechat' : 'offline';
  }

  // Keep what was typed when the form switches between "start chat" and "leave a message".
  function carryOver(from, to) {
    const pre = [E.preName, E.preEmail, E.prePhone, E.preMessage];
    const off = [E.offName, E.offEmail, E.offPhone, E.offMessage];
    const pairs = from === 'prechat' ? pre.map((a, i) => [a, off[i]]) : off.map((a, i) => [a, pre[i]]);
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

  // The department the visitor chose (else the first online one, else the first); null without
  // departments.
  function currentDepartment() {
    return (
      S.departments.find((d) => String(d.id) === String(S.dept)) ||
      S.departments.find((d) => d.online) ||
      S.departments[0] ||
      null
    );
  }

  // Departments from /status: the select (shown when there are several), the texts of the
  // chosen one, and its online state, which decides between the two forms.
  function setDepartments(list, overallOnline) {
    S.departments = Array.isArray(list) ? list.filter((d) => d && d.id != null) : [];
    if (S.dept != null && !S.departments.some((d) => String(d.id) === String(S.dept))) S.dept = null;
    const several = S.departments.length > 1;
    for (const sel of [E.preDept, E.offDept]) {
      const keep = sel.value;
      sel.replaceChildren(
        ...S.departments.map((d) => h('option', { value: String(d.id), text: d.online ? d.name : t('departmentOffline', { name: d.name }) }))
      );
      const chosen = currentDepartment();
      sel.value = chosen ? String(chosen.id) : keep;
    }
    E.preDeptField.hidden = !several;
    E.offDeptField.hidden = !several;
    applyDepartmentTexts();
    const d = currentDepartment();
    setOnline(d ? !!d.online : !!overallOnline);
  }

  function applyDepartmentTexts() {
    const texts = (currentDepartment() || {}).texts || {};
    E.title.textContent = texts.title || S.config.title || t('title');
    E.preIntro.textContent = texts.greeting || S.config.greeting || t('prechatIntro');
    E.offIntro.textContent = texts.offline || t('offlineIntro');
  }

  function chooseDepartment(id) {
    S.dept = id;
    E.preDept.value = id;
    E.offDept.value = id;
    applyDepartmentTexts();
    const d = currentDepartment();
    if (d) setOnline(!!d.online);
  }

  function setAskPhone(ask) {
    S.askPhone = !!ask;
    E.prePhoneField.hidden = !S.askPhone;
    E.offPhoneField.hidden = !S.askPhone;
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
      // The visitor got there first (clicked or tabbed into a field): never take it away.
      const a = shadow.activeElement;
      if (a && a !== target && E.panel.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName) && a.offsetParent !== null) return;
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
    E.attachBtn.hidden = !filesEnabled();
    E.attachBtn.disabled = closed;
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
      case 'transferred':
        return t('evTransferred', { name });
      case 'visitor_left':
        return t('evVisitorLeft');
      case 'still_waiting':
        return t('evStillWaiting');
      default:
        return m.text || '';
    }
  }

  function storedEl(m) {
    const sender = m.sender === 'operator' || m.sender === 'system' ? m.sender : 'visitor';
    const attrs = { class: `msg ${sender}`, 'data-testid': 'message', 'data-sender': sender, 'data-id': String(m.id) };
    if (sender === 'system') {
      const el = h('div', attrs, h('span', { text: systemText(m) }));
      // Still in the queue: offer the offline form instead (only while nobody has accepted).
      if (m.event === 'still_waiting' && S.chat && S.chat.status === 'pending') {
        el.append(h('button', { type: 'button', class: 'linkbtn', 'data-testid': 'leave-message', text: t('leaveMessage'), onclick: leaveMessageInstead }));
      }
      return el;
    }
    const el = h('div', attrs);
    const time = formatTime(m.created_at);
    const files = filesEl(m);
    if (sender === 'operator') {
      el.append(h('div', { class: 'author', text: m.author || operatorName() || t('operator') }));
      const bubble = h('div', { class: 'bubble' });
      if (typeof m.html === 'string' && m.html.trim()) bubble.append(safeHtml(m.html));
      else {
        bubble.classList.add('plain');
        bubble.textContent = m.text || '';
      }
      if (!files || bubble.textContent.trim() || bubble.querySelector('img')) el.append(bubble); // a file may come without text
    } else if (!files || String(m.text || '').trim()) {
      el.append(h('div', { class: 'bubble' }, h('span', { class: 'sr', text: `${t('you')}: ` }), String(m.text || '')));
    } else files.prepend(h('span', { class: 'sr', text: `${t('you')}: ` }));
    if (files) el.append(files);
    const meta = h('div', { class: 'meta' });
    if (time) meta.append(h('time', { datetime: m.created_at, text: time }));
    if (sender === 'operator' && m.edited_at) {
      const at = formatTime(m.edited_at);
      meta.append(h('span', { class: 'edited', 'data-testid': 'edited', text: t('edited'), title: at ? t('editedAt', { time: at }) : null }));
    }
    if (meta.childNodes.length) el.append(meta);
    return el;
  }

  function pendingFilesEl(l) {
    return h(
      'div',
      { class: 'files' },
      ...l.files.map((f) =>
        h('span', { class: 'chip' }, fileIcon(f), h('span', { class: 'fname', text: String(f.name || '') }), h('span', { class: 'fsize', text: formatSize(f.size) }))
      )
    );
  }

  function localEl(l) {
    l.progress = null;
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
      l.text || !l.files ? h('div', { class: 'bubble' }, h('span', { class: 'sr', text: `${t('you')}: ` }), l.text) : null
    );
    if (l.files) el.append(pendingFilesEl(l));
    const meta = h('div', { class: 'meta' });
    if (failed) {
      meta.append(
        h('span', { class: 'failed-text', text: `${t('notSent')}: ${l.error || t('errGeneric')}` }),
        h('button', { type: 'button', class: 'linkbtn', 'data-testid': 'retry', text: t('retry'), onclick: retryFailed })
      );
      if (!l.noPost)
        meta.append(h('button', { type: 'button', class: 'linkbtn', 'data-testid': 'edit', text: t('edit'), onclick: () => editLocal(l) }));
    } else if (l.files) {
      // an upload: its progress bar and a cancel button, updated in place by updateProgress
      const fill = h('span');
      const bar = h(
        'div',
        {
          class: 'progress',
          role: 'progressbar',
          'aria-valuemin': '0',
          'aria-valuemax': '100',
          'aria-valuenow': '0',
          'aria-label': t('uploadProgress'),
          'data-testid': 'upload-progress',
        },
        fill
      );
      const label = h('span');
      const cancel = h('button', { type: 'button', class: 'linkbtn', 'data-testid': 'cancel-upload', text: t('cancel'), 'aria-label': t('cancelUpload'), onclick: () => cancelUpload(l) });
      el.append(h('div', { class: 'upload' }, bar, label, cancel));
      l.progress = { bar, fill, label, cancel };
      updateProgress(l);
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
      const files = Array.isArray(m.files) ? m.files : [];
      // Links change every few minutes; a new link alone is set in place (see patchFileUrls).
      const fileSig = files.map((f) => f && `${f.id}/${f.name}/${f.size}/${f.image}`).join(',');
      const urlSig = files.map((f) => f && f.url).join(' ');
      const status = m.sender === 'system' && S.chat ? S.chat.status : ''; // e.g. the "leave a message" button
      const sig = `${m.sender}|${m.author}|${m.text}|${m.html}|${m.event}|${m.created_at}|${m.edited_at}|${operatorName()}|${status}|${fileSig}`;
      let entry = msgEls.get(key);
      if (!entry || entry.sig !== sig) {
        const el = storedEl(m);
        if (entry) entry.el.replaceWith(el);
        entry = { el, sig, urlSig };
        msgEls.set(key, entry);
      } else if (entry.urlSig !== urlSig) {
        entry.urlSig = urlSig;
        patchFileUrls(entry.el);
      }
      wanted.push(key);
    }
    for (const l of S.locals) {
      const key = `l${l.lid}`;
      const sig = `${l.state}|${l.error}|${l.text}|${l.files ? l.files.length : 0}`;
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
      if (S.deleted.has(id)) continue;
      const old = S.msgs.get(id);
      for (const f of Array.isArray(m.files) ? m.files : []) if (f && f.id != null) fileViews.set(String(f.id), f);
      if (old) {
        if (JSON.stringify(old) !== JSON.stringify(m)) {
          S.msgs.set(id, m);
          changed = true;
        }
        continue;
      }
      if (m.sender === 'visitor') {
        // A message typed here may come back on the socket before its POST answers.
        const withFiles = Array.isArray(m.files) && m.files.length > 0;
        const same = (l) => !!l.files === withFiles && l.text.trim() === String(m.text || '').trim();
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
    scheduleUrlRefresh();
    if (fromVisitorHere) scrollToBottom();
    if (S.open) markSeen();
    else updateBadge();
  }

  // An operator deleted a message: it leaves the list (and never comes back).
  function removeMessage(id) {
    id = Number(id);
    if (!Number.isFinite(id)) return;
    S.deleted.add(id);
    if (!S.msgs.delete(id)) return;
    renderMessages();
    updateBadge();
  }

  // A complete list from the server (`after=0`): what it no longer has was deleted meanwhile.
  function reconcile(list) {
    if (list.length < 500) {
      let max = 0;
      const ids = new Set();
      for (const m of list) {
        if (m && Number.isFinite(Number(m.id))) {
          ids.add(Number(m.id));
          max = Math.max(max, Number(m.id));
        }
      }
      // (newer ids may have arrived on the socket after the list was made)
      for (const id of Array.from(S.msgs.keys())) if (id <= max && !ids.has(id)) removeMessage(id);
    }
    addMessages(list);
  }

  // "… is typing" for a few seconds, or until their message arrives.
  function showTyping(name) {
    if (!name || isClosed()) return;
    const stick = nearBottom();
    E.typing.textContent = t('typing', { name });
    E.typing.hidden = false;
    if (stick) scrollToBottom();
    clearTimeout(S.typingTimer);
    S.typingTimer = setTimeout(hideTyping, TYPING_SHOWN_MS);
  }
  function hideTyping() {
    clearTimeout(S.typingTimer);
    E.typing.hidden = true;
    E.typing.textContent = '';
  }

  function onComposerInput() {
    autosize();
    sendTyping();
  }

  // Tells the operator the visitor is typing (at most every few seconds, only on a live socket).
  function sendTyping() {
    if (!S.ws || !S.wsReady || !S.chat || S.chat.status !== 'active' || !E.composer.value.trim()) return;
    const now = Date.now();
    if (now - S.typingSentAt < TYPING_SEND_MS) return;
    S.typingSentAt = now;
    try {
      S.ws.send(JSON.stringify({ type: 'typing' }));
    } catch (_) {
      /* the socket is closing; typing is not worth a retry */
    }
  }

  // --------------------------------------------------------------- files --

  function filesEnabled() {
    return !!(S.files && S.files.max_per_message > 0 && S.files.max_bytes > 0);
  }
  function canAttach() {
    return filesEnabled() && !!S.cred && S.view === 'chat' && !isClosed();
  }

  // The limits from /status. The server decides a file's type from its content, so the list of
  // types only guides the file chooser (`accept`); nothing is refused here by declared type.
  function setFiles(f) {
    const ok = f && typeof f === 'object' && Number(f.max_per_message) > 0 && Number(f.max_bytes) > 0;
    S.files = ok
      ? {
          max_bytes: Number(f.max_bytes),
          max_per_message: Math.floor(Number(f.max_per_message)),
          types: Array.isArray(f.types) ? f.types.filter((x) => typeof x === 'string' && /^[\w.+-]+\/[\w.+*-]+$/.test(x)) : [],
        }
      : null;
    if (S.files && S.files.types.length) E.fileInput.setAttribute('accept', S.files.types.join(','));
    else E.fileInput.removeAttribute('accept');
    renderChatState();
  }

  // Adds chosen, dropped or pasted files to the next message, refusing (with a message naming
  // the file) what the server would certainly refuse: empty, too large, too many.
  function stageFiles(list) {
    const files = Array.from(list || []);
    if (!files.length || !canAttach()) return;
    clearUploadError();
    const problems = [];
    const tooMany = [];
    for (const f of files) {
      if (!f.size) problems.push(t('errFileEmpty', { file: quoteNames([f]) }));
      else if (f.size > S.files.max_bytes) problems.push(t('errFileTooLarge', { file: quoteNames([f]), max: formatSize(S.files.max_bytes) }));
      else if (S.staged.length >= S.files.max_per_message) tooMany.push(f);
      else S.staged.push(f);
    }
    if (tooMany.length) problems.push(t('errTooManyFiles', { n: S.files.max_per_message, file: quoteNames(tooMany) }));
    if (problems.length) showUploadError(problems);
    renderStaged();
  }

  const thumbs = new Map(); // File -> object URL of its preview
  function thumbUrl(file) {
    if (!/^image\/(png|jpeg|gif|webp)$/.test(file.type) || typeof URL.createObjectURL !== 'function') return null;
    if (!thumbs.has(file)) thumbs.set(file, URL.createObjectURL(file));
    return thumbs.get(file);
  }
  function releaseFiles(files) {
    for (const f of files || []) {
      const u = thumbs.get(f);
      if (u) URL.revokeObjectURL(u);
      thumbs.delete(f);
    }
  }

  // A small picture of a chosen file: its preview if it is an image (and the page allows blob:
  // images), else a file icon.
  function fileIcon(file) {
    const fallback = h('span', { class: 'ficon', 'aria-hidden': 'true' }, icon(ICON_FILE, 18));
    const u = thumbUrl(file);
    if (!u) return fallback;
    const img = h('img', { src: u, alt: '', 'aria-hidden': 'true' });
    img.addEventListener('error', () => img.replaceWith(fallback));
    return img;
  }

  function renderStaged() {
    E.tray.replaceChildren(
      ...S.staged.map((f) => {
        const name = String(f.name || '');
        return h(
          'li',
          { class: 'chip', 'data-testid': 'attachment' },
          fileIcon(f),
          h('span', { class: 'fname', title: name, text: name }),
          h('span', { class: 'fsize', text: formatSize(f.size) }),
          h(
            'button',
            {
              type: 'button',
              class: 'x',
              'data-testid': 'attachment-remove',
              'aria-label': t('removeFile', { name }),
              title: t('removeFile', { name }),
              onclick: () => {
                S.staged = S.staged.filter((x) => x !== f);
                releaseFiles([f]);
                renderStaged();
                E.composer.focus();
              },
            },
            icon(ICON_X, 16)
          )
        );
      })
    );
    E.tray.hidden = !S.staged.length;
  }

  function showUploadError(lines) {
    E.uploadErrorLines.replaceChildren(...lines.map((line) => h('p', { text: line })));
    E.uploadError.hidden = !lines.length;
  }
  function clearUploadError(refocus) {
    E.uploadErrorLines.replaceChildren();
    E.uploadError.hidden = true;
    if (refocus) E.composer.focus();
  }

  // A pasted image (a screenshot, "copy image") is attached; pasted text stays text.
  function onComposerPaste(e) {
    const data = e.clipboardData;
    if (!data || !data.files || !data.files.length || !canAttach()) return;
    if (data.getData('text/plain')) return;
    e.preventDefault();
    stageFiles(data.files);
  }

  // Which of the files a refusal is about: the only one, else the one its message names.
  function refusedFiles(err, files) {
    if (files.length === 1) return files.slice();
    const msg = String(err.message || '');
    const named = files
      .slice()
      .sort((a, b) => String(b.name).length - String(a.name).length)
      .find((f) => f.name && msg.includes(f.name));
    return named ? [named] : [];
  }

  function uploadErrorText(err, files, refused) {
    const file = quoteNames(refused.length ? refused : files);
    const max = S.files ? S.files.max_per_message : '';
    switch (err.code) {
      case 'file_too_large':
        return S.files ? t('errFileTooLarge', { file, max: formatSize(S.files.max_bytes) }) : t('errUploadFailed', { file, reason: err.message || '' });
      case 'file_type_not_allowed':
        return t('errFileType', { file });
      case 'file_empty':
        return t('errFileEmpty', { file });
      case 'too_many_files':
        return t('errTooManyFilesSent', { file, n: max });
      case 'chat_files_limit':
        return t('errChatFilesLimit', { file });
      case 'storage_full':
      case 'daily_upload_limit':
        return t('errNoRoomForFiles', { file });
      case 'request_too_large':
        return t('errRequestTooLarge', { file });
      case 'file_required':
        return t('errFileRequired');
      case 'rate_limited':
      case 'chat_closed':
      case 'message_too_long':
      case 'validation_failed':
      case 'network':
        return t('errUploadFailed', { file, reason: errorText(err) });
      default:
        return t('errUploadFailed', { file, reason: t('errGeneric') }); // the server's text is English only
    }
  }

  // Sends a message with files; the progress goes to the message's bar.
  async function uploadLocal(l, cred) {
    const form = new FormData();
    if (l.text) form.append('text', l.text);
    for (const f of l.files) form.append('file', f, f.name);
    const up = apiUpload(`/api/v1/chats/${encodeURIComponent(cred.id)}/files`, form, cred.token, (loaded, total) => {
      l.loaded = loaded;
      l.total = total;
      updateProgress(l);
    });
    l.abort = up.abort;
    try {
      return await up.promise;
    } finally {
      l.abort = null;
    }
  }

  function updateProgress(l) {
    const p = l.progress;
    if (!p) return;
    const pct = l.total ? Math.min(100, Math.round((l.loaded / l.total) * 100)) : 0;
    const sent = !!l.total && l.loaded >= l.total; // all bytes out: the server is storing them
    p.fill.style.width = `${pct}%`;
    p.bar.setAttribute('aria-valuenow', String(pct));
    p.label.textContent = l.state === 'queued' ? t('waitingUpload') : sent ? t('sending') : t('uploading', { n: pct });
    p.cancel.hidden = sent; // too late to take it back
  }

  function cancelUpload(l) {
    if (l.state === 'sending' && l.abort) l.abort(); // onUploadError puts everything back
    else if (l.state !== 'sending') onUploadError(l, new ApiError(0, 'aborted', 'aborted'));
    E.composer.focus();
  }

  // An upload that did not make it leaves the list; its text and files go back into the
  // composer (minus a file the server refused), with a message saying what happened.
  function onUploadError(l, err) {
    const i = S.locals.indexOf(l);
    if (i >= 0) S.locals.splice(i, 1);
    if (l.serverId != null) {
      renderMessages(); // it was stored after all (the live socket said so)
      return;
    }
    const refused = ['file_too_large', 'file_type_not_allowed', 'file_empty'].includes(err.code) ? refusedFiles(err, l.files) : [];
    if (err.code !== 'aborted') showUploadError([uploadErrorText(err, l.files, refused)]);
    releaseFiles(refused);
    S.staged = l.files.filter((f) => !refused.includes(f)).concat(S.staged);
    if (l.text) E.composer.value = E.composer.value ? `${l.text}\n${E.composer.value}` : l.text;
    autosize();
    renderStaged();
    renderMessages();
    if (err.code === 'chat_closed') catchUp(true);
  }

  // --- files in messages ---

  const fileViews = new Map(); // file id -> FileView last received (with the freshest link)

  function filesEl(m) {
    const files = Array.isArray(m.files) ? m.files.filter((f) => f && f.id != null) : [];
    if (!files.length) return null;
    const box = h('div', { class: 'files' });
    for (const f of files) {
      const id = String(f.id);
      const name = String(f.name || '');
      const url = fileUrl(f.url);
      if (f.image === true && url) {
        const img = h('img', { src: url, alt: name, loading: 'lazy', decoding: 'async', 'data-testid': 'message-image', 'data-file-id': id });
        img.addEventListener('error', () => onFileError(id));
        box.append(
          h('button', { type: 'button', class: 'thumb', title: name, 'aria-label': t('openImage', { name }), onclick: (e) => openLightbox(id, e.currentTarget) }, img)
        );
      } else {
        box.append(
          h(
            'a',
            { class: 'file', href: url, download: name || true, rel: 'noopener', target: '_blank', 'data-testid': 'message-file', 'data-file-id': id },
            icon(ICON_FILE, 18),
            h('span', { class: 'fname', text: name }),
            ' · ',
            h('span', { class: 'fsize', text: formatSize(f.size) })
          )
        );
      }
    }
    return box;
  }

  // New links for files already shown: set in place, so nothing is rebuilt and focus stays.
  function patchFileUrls(el) {
    for (const node of el.querySelectorAll('[data-file-id]')) {
      const f = fileViews.get(node.getAttribute('data-file-id'));
      const url = f && fileUrl(f.url);
      if (!url) continue;
      if (node.tagName === 'IMG' && node.getAttribute('src') !== url) node.setAttribute('src', url);
      if (node.tagName === 'A' && node.getAttribute('href') !== url) node.setAttribute('href', url);
    }
    const open = E.lightbox.dataset.fileId;
    if (!E.lightbox.hidden && open) {
      const f = fileViews.get(open);
      const url = f && fileUrl(f.url);
      if (url && E.lbImg.getAttribute('src') !== url) {
        E.lbImg.setAttribute('src', url);
        E.lbDownload.setAttribute('href', url);
      }
    }
  }

  let lightboxOpener = null;
  function openLightbox(id, opener) {
    const f = fileViews.get(id);
    const url = f && fileUrl(f.url);
    if (!url) return;
    const name = String(f.name || '');
    lightboxOpener = opener || null;
    E.lightbox.dataset.fileId = id;
    E.lightbox.setAttribute('aria-label', t('imageDialog', { name }));
    E.lbImg.setAttribute('src', url);
    E.lbImg.setAttribute('alt', name);
    E.lbName.textContent = `${name} · ${formatSize(f.size)}`;
    E.lbDownload.setAttribute('href', url);
    E.lbDownload.setAttribute('download', name);
    E.lightbox.hidden = false;
    E.lbClose.focus();
  }

  function closeLightbox() {
    if (E.lightbox.hidden) return;
    E.lightbox.hidden = true;
    delete E.lightbox.dataset.fileId;
    E.lbImg.removeAttribute('src');
    const back = lightboxOpener;
    lightboxOpener = null;
    if (back && back.isConnected) back.focus();
    else if (S.open) focusFirst();
  }

  // Links are signed and expire (about an hour). An image that does not load gets its links
  // renewed by listing the messages again, at most once per file every few minutes.
  const renewedFor = new Map(); // file id -> when its links were last renewed because of it
  function onFileError(id) {
    const last = renewedFor.get(id) || 0;
    if (Date.now() - last < 5 * 60 * 1000) return;
    renewedFor.set(id, Date.now());
    refreshFileUrls().then(() => {
      // A new link was set in place by now; if the link is still the same (the failure was a
      // hiccup, not an expiry), load it once more.
      const f = fileViews.get(id);
      const url = f && fileUrl(f.url);
      if (!url) return;
      const imgs = Array.from(E.msgs.querySelectorAll('img[data-file-id]')).filter((img) => img.getAttribute('data-file-id') === id);
      if (!E.lightbox.hidden && E.lightbox.dataset.fileId === id) imgs.push(E.lbImg);
      for (const img of imgs) if (img.complete && !img.naturalWidth && img.getAttribute('src') === url) img.src = url;
    });
  }

  let urlRefresh = null;
  function refreshFileUrls() {
    const cred = S.cred;
    if (!cred) return Promise.resolve();
    if (urlRefresh) return urlRefresh;
    urlRefresh = api('GET', `/api/v1/chats/${encodeURIComponent(cred.id)}/messages?after=0`, { token: cred.token })
      .then((r) => {
        if (S.cred === cred) reconcile((r && r.messages) || []);
      })
      .catch(() => {
        /* the next error or the timer tries again */
      })
      .finally(() => {
        urlRefresh = null;
        if (S.cred === cred) scheduleUrlRefresh(true);
      });
    return urlRefresh;
  }

  // Renew the links shortly before the first of them expires (their `expires` is Unix seconds).
  function scheduleUrlRefresh(justRenewed) {
    clearTimeout(S.urlTimer);
    S.urlRefreshAt = 0;
    if (!S.cred) return;
    let soonest = Infinity;
    for (const m of S.msgs.values()) {
      for (const f of Array.isArray(m.files) ? m.files : []) {
        let exp = 0;
        try {
          exp = Number(new URL(String(f.url)).searchParams.get('expires')) * 1000;
        } catch (_) {
          exp = 0;
        }
        soonest = Math.min(soonest, exp > 0 ? exp : Date.now() + 45 * 60 * 1000);
      }
    }
    if (soonest === Infinity) return;
    // Never more often than every 5 minutes (a clock far ahead of the server's would loop).
    const delay = Math.max(soonest - 2 * 60 * 1000 - Date.now(), justRenewed ? 5 * 60 * 1000 : 30 * 1000);
    S.urlRefreshAt = Date.now() + delay;
    S.urlTimer = setTimeout(refreshFileUrls, delay);
  }

  // -------------------------------------------------------------- status --

  // The back office's widget settings, read once at start. Its built-in defaults are left to
  // the widget's own translated texts; a department's texts (from /status) win over these.
  const CONFIG_DEFAULTS = { title: 'Chat with us', greeting: 'Hello! How can we help you today?' };
  function loadConfig() {
    return api('GET', '/api/v1/widget-config')
      .then((c) => {
        if (!c || typeof c !== 'object') return;
        const own = (v, d) => (typeof v === 'string' && v.trim() && v !== d ? v : '');
        S.config = { title: own(c.title, CONFIG_DEFAULTS.title), greeting: own(c.greeting, CONFIG_DEFAULTS.greeting) };
        if (!OPTS.color && typeof c.color === 'string' && window.CSS && CSS_supports('color', c.color)) root.style.setProperty('--accent', c.color);
        root.classList.toggle('left', c.position === 'left');
        const f = c.fields || {};
        const mode = (v) => (v === 'required' || v === 'hidden' ? v : 'optional');
        S.fields = { name: mode(f.name), email: mode(f.email) };
        for (const [key, input, wrap] of [['name', E.preName, E.preNameField], ['email', E.preEmail, E.preEmailField]]) {
          const m = S.fields[key];
          wrap.hidden = m === 'hidden';
          wrap.querySelector('label').textContent = m === 'required' ? t(key) : t(key + 'Optional');
          input.required = m === 'required';
          if (m === 'required') input.setAttribute('aria-required', 'true');
          else input.removeAttribute('aria-required');
        }
        applyDepartmentTexts();
      })
      .catch(() => {});
  }

  let statusInFlight = null;
  function refreshStatus() {
    if (statusInFlight) return statusInFlight;
    statusInFlight = api('GET', '/api/v1/status')
      .then((r) => {
        setFiles(r && r.files);
        setAskPhone(r && r.fields && r.fields.phone);
        setDepartments(r && r.departments, !!(r && r.online));
      })
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
    const name = S.fields.name === 'hidden' ? '' : E.preName.value.trim();
    const email = S.fields.email === 'hidden' ? '' : E.preEmail.value.trim();
    const message = E.preMessage.value.trim();
    if (!name && S.fields.name === 'required') return fieldError(E.preName, t('errNameRequired'));
    if (!email && S.fields.email === 'required') return fieldError(E.preEmail, t('errEmailRequired'));
    if (email && E.preEmail.validity && E.preEmail.validity.typeMismatch) return fieldError(E.preEmail, t('errEmailInvalid'));
    if (!message) return fieldError(E.preMessage, t('errMessageRequired'));
    const phone = S.askPhone ? E.prePhone.value.trim() : '';
    const body = { message, page_url: location.href, referrer: document.referrer || '' };
    if (name) body.name = name;
    if (email) body.email = email;
    if (phone) body.phone = phone;
    const dept = currentDepartment();
    if (dept) body.department = dept.id;
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
      if (err.code === 'phone_invalid') fieldError(E.prePhone, t('errPhoneInvalid'));
      else showError(err);
      // Offline meanwhile (nobody there any more, or outside the hours): the offline form
      // takes over with what was typed.
      if (err.code === 'offline' || err.code === 'department_invalid') refreshStatus();
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
    const phone = S.askPhone ? E.offPhone.value.trim() : '';
    const body = { email, message, page_url: location.href };
    if (name) body.name = name;
    if (phone) body.phone = phone;
    const dept = currentDepartment();
    if (dept) body.department = dept.id;
    E.offSubmit.disabled = true;
    try {
      await api('POST', '/api/v1/offline-messages', { body });
      E.offlineView.reset();
      showView('offline-thanks');
      if (S.open) focusFirst();
    } catch (err) {
      if (err.code === 'phone_invalid') fieldError(E.offPhone, t('errPhoneInvalid'));
      else showError(err);
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
    const files = S.staged.slice();
    if (!text && !files.length) return;
    if (files.length && S.files && files.length > S.files.max_per_message) {
      // (files put back after a failed upload may add up to more than one message takes)
      showUploadError([t('errTooManyFilesSent', { file: quoteNames(files.slice(S.files.max_per_message)), n: S.files.max_per_message })]);
      return;
    }
    clearError();
    clearUploadError();
    S.locals.push(files.length ? { lid: ++S.lidSeq, text, state: 'queued', files, loaded: 0, total: 0 } : { lid: ++S.lidSeq, text, state: 'queued' });
    S.staged = [];
    renderStaged();
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
          const r = l.files
            ? await uploadLocal(l, cred)
            : await api('POST', `/api/v1/chats/${encodeURIComponent(cred.id)}/messages`, {
                body: { text: l.text },
                token: cred.token,
              });
          if (S.cred !== cred) break;
          const m = r && r.message ? r.message : r;
          const i = S.locals.indexOf(l);
          if (i >= 0) S.locals.splice(i, 1);
          if (l.files) releaseFiles(l.files);
          if (m && m.id != null) addMessages([m]);
          else renderMessages();
        } catch (err) {
          if (S.cred !== cred) break;
          // A refused or failed upload goes back into the composer; the queue goes on.
          // (The chat gone and "too many requests" are handled as for text.)
          if (l.files && err.status !== 401 && err.status !== 404 && err.code !== 'rate_limited') {
            onUploadError(l, err);
            continue;
          }
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
    if (l.files) {
      S.staged = l.files.concat(S.staged);
      renderStaged();
    }
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

  // Nobody has answered yet: end the chat and move what the visitor wrote into the offline
  // form, with their name and e-mail, so that nothing is typed twice.
  async function leaveMessageInstead() {
    const cred = S.cred;
    if (!cred || isClosed()) return;
    const visitor = (S.chat && S.chat.visitor) || {};
    const texts = Array.from(S.msgs.values())
      .filter((m) => m.sender === 'visitor')
      .sort((a, b) => Number(a.id) - Number(b.id))
      .map((m) => String(m.text || '').trim())
      .concat(S.locals.filter((l) => !l.noPost).map((l) => String(l.text || '').trim()))
      .concat([E.composer.value.trim()])
      .filter(Boolean);
    clearError();
    try {
      await api('POST', `/api/v1/chats/${encodeURIComponent(cred.id)}/close`, { token: cred.token });
    } catch (err) {
      if (err.status !== 401 && err.status !== 404) {
        showError(err);
        return;
      }
    }
    if (S.cred !== cred) return;
    S.leaveMessage = true;
    forgetChat(); // shows the offline form (S.leaveMessage)
    E.offIntro.textContent = t('leaveMessageIntro');
    E.offName.value = visitor.name || E.offName.value;
    E.offEmail.value = visitor.email || E.offEmail.value;
    E.offMessage.value = texts.join('\n\n');
    if (S.open) focusFirst();
  }

  function startNewChat() {
    forgetChat();
    clearError();
    refreshStatus().then(() => {
      // Only if the visitor has not started typing meanwhile: never steal their focus.
      const typing = E.panel.contains(shadow.activeElement) && /^(INPUT|TEXTAREA|SELECT)$/.test(shadow.activeElement.tagName);
      if (S.open && !typing) focusFirst();
    });
  }

  function setChat(c) {
    if (!c || typeof c !== 'object') return;
    const wasClosed = isClosed();
    S.chat = Object.assign({}, S.chat || {}, c);
    renderChatState();
    renderMessages(); // system texts may use the operator's name
    if (isClosed() && !wasClosed) {
      hideTyping();
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
    S.wsHadReady = false;
    S.wsParked = false;
    S.wsAttempt = 0;
    S.deleted.clear();
    hideTyping();
    clearTimeout(S.wsTimer);
    clearTimeout(S.retryTimer);
    S.blockedUntil = 0;
    for (const l of S.locals) if (l.abort) l.abort();
    S.cred = null;
    S.chat = null;
    S.msgs.clear();
    S.locals = [];
    S.seen = 0;
    releaseFiles(S.staged);
    S.staged = [];
    renderStaged();
    clearUploadError();
    closeLightbox();
    clearTimeout(S.urlTimer);
    saveCred();
    storageSet('sessionStorage', STORE_SEEN, null);
    E.composer.value = '';
    renderMessages();
    showConfirm(false);
    showView(viewWithoutChat());
    updateBadge();
    refreshStatus();
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
    S.wsParked = false;
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
          // After a reconnect, list everything again: edits and deletes made meanwhile are
          // not replayed by id.
          if (S.wsHadReady) refreshFileUrls();
          S.wsHadReady = true;
          break;
        case 'message':
          if (f.message) {
            if (f.message.sender !== 'visitor') hideTyping();
            addMessages([f.message]);
          }
          break;
        case 'message_updated':
          if (f.message) addMessages([f.message]);
          break;
        case 'message_deleted':
          removeMessage(f.id);
          break;
        case 'typing':
          showTyping(String(f.name || ''));
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
          } else if (f.code === 'replaced') {
            // The chat is open in more tabs than parley keeps sockets for, and a newer tab took
            // this one's place. Stay off (no reconnect loop: tabs would take turns forever)
            // until the visitor comes back to this tab; sending still works meanwhile.
            S.wsGen++;
            S.ws = null;
            S.wsReady = false;
            S.wsParked = true;
            try {
              ws.close(1000);
            } catch (_) {
              /* ignore */
            }
            updateReconnecting();
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
  // A tab whose socket a newer tab took over takes it back when the visitor uses it again.
  window.addEventListener('focus', () => {
    if (S.wsParked) reconnectNow();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') {
      reconnectNow();
      refreshStatus();
      if (S.urlRefreshAt && Date.now() > S.urlRefreshAt) refreshFileUrls(); // timers sleep in hidden tabs
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
    loadConfig();
    refreshStatus();
    setInterval(() => {
      if (document.visibilityState !== 'hidden' && !S.cred) refreshStatus();
    }, STATUS_POLL_MS);
    if (stored && stored.id != null && typeof stored.token === 'string' && stored.token) resume(stored);
    updateBadge();
  }

  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start, { once: true });
})();

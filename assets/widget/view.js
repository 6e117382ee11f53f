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

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

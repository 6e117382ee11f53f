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

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

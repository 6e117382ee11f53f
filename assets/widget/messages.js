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

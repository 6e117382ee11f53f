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

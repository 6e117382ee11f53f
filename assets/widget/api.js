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

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

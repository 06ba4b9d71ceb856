// Berth live view: noVNC's RFB client on the session's screen, scaled to the window,
// reconnecting with backoff after a drop. Served by the browser session's agent at /live/;
// every URL here is relative to this module, so the page also works under a path prefix.
// View-only is enforced by the agent (it drops input on /vnc); the page only mirrors it.
import RFB from './novnc/core/rfb.js';

const configURL = new URL('config.json', import.meta.url);
const vncURL = new URL('../vnc', import.meta.url);
vncURL.protocol = vncURL.protocol === 'https:' ? 'wss:' : 'ws:';

const screen = document.getElementById('screen');
const bar = document.getElementById('bar');
const stateText = document.getElementById('state');
const retryButton = document.getElementById('retry');

const FIRST_DELAY_MS = 500; // a blip: try again almost at once
const MAX_DELAY_MS = 30000;
const STABLE_MS = 10000; // a connection that lasted this long resets the backoff

let rfb = null;
let viewOnly = false;
let failures = 0; // consecutive attempts that did not connect, or did not last
let connectedAt = 0;
let timer = null;
let ticker = null;
let finished = false;

// The state is also exposed on <body data-state> for tests and styling.
function show(state, text) {
  bar.className = `bar ${state}${viewOnly ? ' view-only' : ''}`;
  stateText.textContent = text;
  retryButton.hidden = state !== 'waiting';
  document.body.dataset.state = state;
}

// Asks the agent (through the gateway) for the session's view settings. The gateway answers
// 401 once the session has ended or the cookie is no longer valid: then there is nothing to
// reconnect to. Any other failure is worth another try.
async function sessionConfig() {
  try {
    const res = await fetch(configURL, { cache: 'no-store', credentials: 'same-origin' });
    if (res.status === 401) return { ended: true };
    if (!res.ok) return { problem: `HTTP ${res.status}` };
    return { config: await res.json() };
  } catch (err) {
    return { problem: 'network error' };
  }
}

async function connect() {
  clearTimers();
  if (finished) return;
  show('connecting', 'Connecting…');
  const { ended, problem, config } = await sessionConfig();
  if (ended) return finish('ended', 'This session has ended.');
  if (!config) return retryLater(problem);

  viewOnly = config.view_only === true;
  let client;
  try {
    client = new RFB(screen, vncURL.href, { shared: true, wsProtocols: ['binary'] });
  } catch (err) {
    return retryLater(err.message);
  }
  rfb = client;
  client.viewOnly = viewOnly;
  client.scaleViewport = true; // fit the window, follow its resizes
  client.resizeSession = false; // the screen size belongs to the session, not to a viewer
  client.clipViewport = false;
  client.focusOnClick = !viewOnly;
  client.background = '#1b1c1f';

  client.addEventListener('connect', () => {
    if (rfb !== client) return;
    connectedAt = Date.now();
    show('connected', viewOnly ? 'View only' : 'Connected');
    if (!viewOnly) client.focus({ preventScroll: true });
  });
  client.addEventListener('disconnect', (ev) => {
    if (rfb !== client) return;
    rfb = null;
    // Only a connection that held resets the backoff: one dropped right after connecting
    // again and again must not turn into a reconnect loop.
    if (connectedAt && Date.now() - connectedAt >= STABLE_MS) failures = 0;
    connectedAt = 0;
    retryLater(ev.detail && ev.detail.clean ? 'Disconnected' : 'Connection lost');
  });
  client.addEventListener('securityfailure', (ev) => {
    console.warn('live view: security failure', ev.detail);
  });
}

function retryLater(reason) {
  if (finished) return;
  failures += 1;
  const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.min(failures - 1, 10));
  const delay = Math.round(base * (0.8 + Math.random() * 0.4)); // jitter: viewers spread out
  const due = Date.now() + delay;
  const tick = () => {
    const s = Math.max(0, Math.ceil((due - Date.now()) / 1000));
    show('waiting', `${reason}. Reconnecting${s > 0 ? ` in ${s} s` : '…'}`);
  };
  tick();
  ticker = setInterval(tick, 1000);
  timer = setTimeout(connect, delay);
}

function finish(state, text) {
  finished = true;
  clearTimers();
  if (rfb) {
    const client = rfb;
    rfb = null;
    client.disconnect();
  }
  show(state, text);
}

function clearTimers() {
  clearTimeout(timer);
  clearInterval(ticker);
  timer = ticker = null;
}

retryButton.addEventListener('click', () => {
  failures = 0;
  connect();
});
// Back online: no need to wait for the backoff.
window.addEventListener('online', () => {
  if (!rfb && !finished && timer) connect();
});

connect();

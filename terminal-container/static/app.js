// Berth terminal page: xterm.js attached to the server's /ws endpoint.
// Protocol (session-agent/internal/terminal): we send JSON text frames {"type":"input"|"resize"} or binary
// input; the server sends binary PTY output, replaying its scrollback on every connect.
(function () {
  'use strict';

  var SHELL_EXITED = 4000; // server closes with this when the shell ends
  var term = new Terminal({
    cursorBlink: true,
    scrollback: 5000,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, monospace',
    fontSize: 14,
    theme: { background: '#1e1e1e' }
  });
  var fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById('terminal'));
  fit.fit();
  term.focus();

  // Relative to the page, so the terminal also works behind a path-prefixing proxy.
  var wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
    location.pathname.replace(/[^/]*$/, '') + 'ws';
  var ws = null;
  var delay = 500;
  var waitingForKey = false;

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }
  function sendResize() {
    send({ type: 'resize', cols: term.cols, rows: term.rows });
  }

  function connect() {
    ws = new WebSocket(wsUrl);
    ws.binaryType = 'arraybuffer';
    ws.onopen = function () {
      delay = 500;
      term.reset(); // the server replays its scrollback: start from a clean screen
      sendResize();
    };
    ws.onmessage = function (ev) {
      term.write(typeof ev.data === 'string' ? ev.data : new Uint8Array(ev.data));
    };
    ws.onclose = function (ev) {
      ws = null;
      if (ev.code === SHELL_EXITED) {
        // Do not start a new shell behind the user's back: wait for a key press.
        waitingForKey = true;
        term.write('\r\n[press any key to start a new shell]\r\n');
        return;
      }
      term.write('\r\n\x1b[2m[disconnected; reconnecting in ' +
        Math.round(delay / 1000 * 10) / 10 + ' s]\x1b[0m\r\n');
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  term.onData(function (data) {
    if (waitingForKey) {
      waitingForKey = false;
      connect();
      return;
    }
    send({ type: 'input', data: data });
  });
  // Non-UTF-8 bytes (some mouse reports) go as a binary frame.
  term.onBinary(function (data) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    var bytes = new Uint8Array(data.length);
    for (var i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
    ws.send(bytes);
  });
  term.onResize(sendResize);

  var pending = null;
  window.addEventListener('resize', function () {
    clearTimeout(pending);
    pending = setTimeout(function () { fit.fit(); }, 50); // fit once per drag burst
  });

  connect();
})();

package cdp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// MaxClientMessageBytes bounds one frame a client may send (scripts, fulfilled bodies).
const MaxClientMessageBytes = 64 << 20

// Handler serves Chromium's DevTools HTTP surface over a Mux: the discovery endpoints
// (/json/...) and the browser and page WebSockets (/devtools/...). Authentication is the
// caller's job; this handler trusts every request it gets.
type Handler struct {
	Mux       *Mux
	BrowserID string  // id in /devtools/browser/<id> URLs (any id is accepted)
	Version   Version // from GetVersion at start-up
	Log       func(level, msg string, fields map[string]any)

	// Closing makes WebSocket closes say 1001 (going away) instead of 1000.
	Closing func() bool
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  32 << 10,
	WriteBufferSize: 32 << 10,
	// Authentication is the X-Berth-Secret header, which a web page cannot set on a
	// WebSocket, so a cross-origin page cannot open these; CDP clients send no Origin anyway.
	CheckOrigin: func(*http.Request) bool { return true },
}

// ServeHTTP routes the DevTools paths; anything else is 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/json/version":
		h.serveVersion(w, r)
	case path == "/json" || path == "/json/list":
		h.serveList(w, r)
	case path == "/json/new":
		if r.Method != http.MethodPut && r.Method != http.MethodGet {
			writeText(w, http.StatusMethodNotAllowed, "Use PUT to invoke /json/new")
			return
		}
		h.serveNew(w, r)
	case strings.HasPrefix(path, "/json/activate/"):
		h.serveTargetCommand(w, r, "Target.activateTarget", strings.TrimPrefix(path, "/json/activate/"), "Target activated")
	case strings.HasPrefix(path, "/json/close/"):
		h.serveTargetCommand(w, r, "Target.closeTarget", strings.TrimPrefix(path, "/json/close/"), "Target is closing")
	case path == "/json/protocol":
		// Chromium serves this from its resource bundle, which the pipe cannot reach.
		writeText(w, http.StatusNotFound, "/json/protocol is not available; see https://chromedevtools.github.io/devtools-protocol/")
	case path == "/devtools/browser" || strings.HasPrefix(path, "/devtools/browser/"):
		h.serveWS(w, r, "")
	case strings.HasPrefix(path, "/devtools/page/") && len(path) > len("/devtools/page/"):
		h.serveWS(w, r, strings.TrimPrefix(path, "/devtools/page/"))
	default:
		http.NotFound(w, r)
	}
}

// serveWS attaches a session for the client before upgrading, so an unknown page id is a
// plain 404 (as with Chromium), then pumps frames both ways until either side leaves.
func (h *Handler) serveWS(w http.ResponseWriter, r *http.Request, targetID string) {
	if !websocket.IsWebSocketUpgrade(r) {
		writeText(w, http.StatusBadRequest, "WebSocket upgrade expected")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	c, err := h.Mux.Connect(ctx, targetID)
	cancel()
	if err != nil {
		var ce *CallError
		if errors.As(err, &ce) {
			writeText(w, http.StatusNotFound, "No such target id: "+targetID)
		} else {
			writeText(w, http.StatusServiceUnavailable, "browser not available")
		}
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		c.Close()
		return
	}
	conn.SetReadLimit(MaxClientMessageBytes)
	c.SetOnKill(func() { conn.Close() })
	h.log("info", "cdp client connected", map[string]any{"target": targetOrBrowser(targetID), "clients": h.Mux.Clients()})

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for {
			frame, ok := c.Next()
			if !ok {
				break
			}
			if err := conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				c.Close()
				return
			}
		}
		code := websocket.CloseNormalClosure
		if h.Closing != nil && h.Closing() {
			code = websocket.CloseGoingAway
		}
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, c.Reason()),
			time.Now().Add(time.Second))
		conn.Close()
	}()
	for {
		_, frame, err := conn.ReadMessage()
		if err != nil {
			break
		}
		c.Send(frame)
	}
	c.Close()
	<-writerDone
	conn.Close()
	h.log("info", "cdp client disconnected", map[string]any{"reason": c.Reason(), "clients": h.Mux.Clients()})
}

func targetOrBrowser(id string) string {
	if id == "" {
		return "browser"
	}
	return id
}

func (h *Handler) log(level, msg string, fields map[string]any) {
	if h.Log != nil {
		h.Log(level, msg, fields)
	}
}

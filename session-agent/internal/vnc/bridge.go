package vnc

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Handler upgrades to a WebSocket and relays binary frames to and from x11vnc's unix socket.
// Every request it sees is already authenticated by the agent.
type Handler struct {
	SocketPath string
	// ViewOnly is asked once per connection: true drops all input (see InputFilter).
	ViewOnly func() bool
	Log      func(level, msg string, fields map[string]any)
	// Closing makes the close frame say 1001 (going away) during agent shutdown.
	Closing func() bool

	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  32 << 10,
	WriteBufferSize: 64 << 10,
	// noVNC asks for "binary" (older websockify clients for "base64", which we do not speak).
	Subprotocols: []string{"binary"},
	// The agent's X-Berth-Secret header is the authentication, and a web page cannot set it
	// on a WebSocket: Origin adds nothing here, and the gateway's origin differs anyway.
	CheckOrigin: func(*http.Request) bool { return true },
}

// maxClientFrame bounds one frame from the viewer; RFB client messages are tiny except
// clipboard text.
const maxClientFrame = 1 << 20

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "WebSocket upgrade expected", http.StatusBadRequest)
		return
	}
	vnc, err := net.DialTimeout("unix", h.SocketPath, 2*time.Second)
	if err != nil {
		h.log("warn", "vnc server not reachable", map[string]any{"error": err.Error()})
		http.Error(w, "VNC server not available", http.StatusServiceUnavailable)
		return
	}
	defer vnc.Close()
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	ws.SetReadLimit(maxClientFrame)
	h.track(ws, true)
	defer h.track(ws, false)

	var filter *InputFilter
	if h.ViewOnly != nil && h.ViewOnly() {
		filter = &InputFilter{}
	}
	h.log("info", "vnc viewer connected", map[string]any{"view_only": filter != nil})

	// Server to viewer: each read becomes one binary frame (RFB needs no framing).
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := vnc.Read(buf)
			if n > 0 {
				if werr := ws.WriteMessage(websocket.BinaryMessage, buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		h.closeWS(ws, websocket.CloseNormalClosure, "vnc server closed the connection")
	}()

	// Viewer to server, through the filter in view-only mode.
	reason := "viewer left"
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			break
		}
		if mt != websocket.BinaryMessage {
			continue
		}
		if filter != nil {
			if data, err = filter.Write(data); err != nil {
				reason = err.Error()
				h.closeWS(ws, websocket.ClosePolicyViolation, "view-only session")
				break
			}
		}
		if len(data) > 0 {
			if _, err := vnc.Write(data); err != nil {
				break
			}
		}
	}
	vnc.Close()
	<-done
	h.log("info", "vnc viewer disconnected", map[string]any{"reason": reason})
}

// CloseAll ends every viewer connection (agent shutdown).
func (h *Handler) CloseAll() {
	h.mu.Lock()
	conns := make([]*websocket.Conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		h.closeWS(c, websocket.CloseGoingAway, "session ending")
		c.Close()
	}
}

func (h *Handler) track(c *websocket.Conn, add bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns == nil {
		h.conns = map[*websocket.Conn]struct{}{}
	}
	if add {
		h.conns[c] = struct{}{}
	} else {
		delete(h.conns, c)
	}
}

func (h *Handler) closeWS(c *websocket.Conn, code int, text string) {
	if code == websocket.CloseNormalClosure && h.Closing != nil && h.Closing() {
		code = websocket.CloseGoingAway
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
}

func (h *Handler) log(level, msg string, fields map[string]any) {
	if h.Log != nil {
		h.Log(level, msg, fields)
	}
}

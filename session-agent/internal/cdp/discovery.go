package cdp

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Version is what /json/version reports, from Browser.getVersion.
type Version struct {
	Browser         string `json:"Browser"`
	ProtocolVersion string `json:"Protocol-Version"`
	UserAgent       string `json:"User-Agent"`
	V8Version       string `json:"V8-Version"`
	WebKitVersion   string `json:"WebKit-Version"`
	Revision        string `json:"-"`
}

// GetVersion asks Chromium for its version over the pipe.
func GetVersion(ctx context.Context, m *Mux) (Version, error) {
	raw, err := m.Call(ctx, "", "Browser.getVersion", nil)
	if err != nil {
		return Version{}, err
	}
	var v struct {
		ProtocolVersion string `json:"protocolVersion"`
		Product         string `json:"product"`
		Revision        string `json:"revision"`
		UserAgent       string `json:"userAgent"`
		JSVersion       string `json:"jsVersion"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return Version{}, err
	}
	// Chromium's own /json/version says "537.36 (@<revision>)", the WebKit number taken from
	// its user agent.
	webkit := "537.36"
	if i := strings.Index(v.UserAgent, "AppleWebKit/"); i >= 0 {
		rest := v.UserAgent[i+len("AppleWebKit/"):]
		if j := strings.IndexByte(rest, ' '); j > 0 {
			webkit = rest[:j]
		}
	}
	return Version{
		Browser: v.Product, ProtocolVersion: v.ProtocolVersion, UserAgent: v.UserAgent,
		V8Version: v.JSVersion, WebKitVersion: webkit + " (" + v.Revision + ")", Revision: v.Revision,
	}, nil
}

// TargetInfo is the part of CDP's Target.TargetInfo the discovery endpoints use.
type TargetInfo struct {
	TargetID string `json:"targetId"`
	Type     string `json:"type"`
	Title    string `json:"title"`
	URL      string `json:"url"`
}

// GetTargets lists the targets a client could attach to (Chromium's /json/list set).
func GetTargets(ctx context.Context, m *Mux) ([]TargetInfo, error) {
	raw, err := m.Call(ctx, "", "Target.getTargets", nil)
	if err != nil {
		return nil, err
	}
	var res struct {
		TargetInfos []TargetInfo `json:"targetInfos"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, err
	}
	out := res.TargetInfos[:0]
	for _, t := range res.TargetInfos {
		if t.Type != "browser" && t.Type != "tab" {
			out = append(out, t)
		}
	}
	return out, nil
}

// targetJSON is one entry of /json/list, field for field what Chromium serves.
type targetJSON struct {
	Description          string `json:"description"`
	DevtoolsFrontendURL  string `json:"devtoolsFrontendUrl"`
	ID                   string `json:"id"`
	Title                string `json:"title"`
	Type                 string `json:"type"`
	URL                  string `json:"url"`
	WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
}

// wsHost is the host clients should connect back to. Only the request's Host header is
// used, never an address of this container: Berth's gateway rewrites these URLs to its own.
func wsHost(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	return "localhost"
}

func (h *Handler) targetEntry(r *http.Request, t TargetInfo) targetJSON {
	page := wsHost(r) + "/devtools/page/" + t.TargetID
	return targetJSON{
		ID: t.TargetID, Title: t.Title, Type: t.Type, URL: t.URL,
		WebSocketDebuggerURL: "ws://" + page,
		// The same hosted frontend Chromium links to, pointed at our page endpoint.
		DevtoolsFrontendURL: "https://chrome-devtools-frontend.appspot.com/serve_rev/" +
			h.Version.Revision + "/inspector.html?ws=" + page,
	}
}

func (h *Handler) serveVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Version
		FilePathStyle        string `json:"File-Path-Style"`
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}{h.Version, "posix", "ws://" + wsHost(r) + "/devtools/browser/" + h.BrowserID})
}

func (h *Handler) serveList(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	targets, err := GetTargets(ctx, h.Mux)
	if err != nil {
		writeText(w, http.StatusServiceUnavailable, "browser not available")
		return
	}
	list := make([]targetJSON, 0, len(targets))
	for _, t := range targets {
		list = append(list, h.targetEntry(r, t))
	}
	writeJSON(w, http.StatusOK, list)
}

func (h *Handler) serveNew(w http.ResponseWriter, r *http.Request) {
	url := r.URL.RawQuery // Chromium takes the whole query string as the URL
	if url == "" {
		url = "about:blank"
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	raw, err := h.Mux.Call(ctx, "", "Target.createTarget", map[string]string{"url": url})
	if err != nil {
		writeText(w, http.StatusInternalServerError, "Could not create new page")
		return
	}
	var res struct {
		TargetID string `json:"targetId"`
	}
	_ = json.Unmarshal(raw, &res)
	info := TargetInfo{TargetID: res.TargetID, Type: "page", URL: url}
	if raw, err := h.Mux.Call(ctx, "", "Target.getTargetInfo", map[string]string{"targetId": res.TargetID}); err == nil {
		var ti struct {
			TargetInfo TargetInfo `json:"targetInfo"`
		}
		if json.Unmarshal(raw, &ti) == nil {
			info = ti.TargetInfo
		}
	}
	writeJSON(w, http.StatusOK, h.targetEntry(r, info))
}

// serveTargetCommand runs /json/activate/<id> and /json/close/<id>.
func (h *Handler) serveTargetCommand(w http.ResponseWriter, r *http.Request, method, id, done string) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if _, err := h.Mux.Call(ctx, "", method, map[string]string{"targetId": id}); err != nil {
		writeText(w, http.StatusNotFound, "No such target id: "+id)
		return
	}
	writeText(w, http.StatusOK, done)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "   ")
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeText(w http.ResponseWriter, status int, msg string) {
	// Chromium answers these with plain text under a JSON content type; clients only show it.
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg))
}

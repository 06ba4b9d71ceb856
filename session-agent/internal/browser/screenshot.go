package browser

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"berth/session-agent/internal/agent"
	"berth/session-agent/internal/cdp"
)

// maxProbedPages bounds how many tabs a screenshot request inspects.
const maxProbedPages = 16

// serveScreenshot answers GET /.berth/screenshot[?target=<id>] with a PNG of the page the
// user is looking at: the given target, else the first tab whose document is visible (the
// selected tab of its window; Target.getTargets has no stable order), else the first tab.
// A hidden tab of a headful browser produces no frames, so choosing the visible one matters.
func (s *Service) serveScreenshot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		agent.WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	mux := s.chrome.mux
	session, err := s.attachScreenshotTarget(ctx, mux, r.URL.Query().Get("target"))
	if err != nil {
		agent.WriteError(w, http.StatusNotFound, err.Error())
		return
	}
	defer func() { _ = mux.Notify("", "Target.detachFromTarget", map[string]string{"sessionId": session}) }()
	raw, err := mux.Call(ctx, session, "Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		agent.Log("warn", "screenshot failed", map[string]any{"error": err})
		agent.WriteError(w, http.StatusBadGateway, "screenshot failed")
		return
	}
	var res struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		agent.WriteError(w, http.StatusBadGateway, "screenshot failed")
		return
	}
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		agent.WriteError(w, http.StatusBadGateway, "screenshot failed")
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(png)
}

// attachScreenshotTarget attaches the agent to the page to capture and returns the session.
func (s *Service) attachScreenshotTarget(ctx context.Context, mux *cdp.Mux, want string) (string, error) {
	targets, err := cdp.GetTargets(ctx, mux)
	if err != nil {
		return "", err
	}
	var pages []string
	for _, t := range targets {
		if t.Type == "page" && (want == "" || t.TargetID == want) && !strings.HasPrefix(t.URL, "devtools://") {
			pages = append(pages, t.TargetID)
		}
	}
	if len(pages) == 0 {
		return "", errors.New("no page to capture")
	}
	if len(pages) > maxProbedPages {
		pages = pages[:maxProbedPages]
	}
	first := ""
	for _, id := range pages {
		session, err := attach(ctx, mux, id)
		if err != nil {
			continue // closed meanwhile
		}
		if len(pages) == 1 || pageVisible(ctx, mux, session) {
			return session, nil
		}
		if first == "" {
			first = session
			continue
		}
		_ = mux.Notify("", "Target.detachFromTarget", map[string]string{"sessionId": session})
	}
	if first == "" {
		return "", errors.New("no page to capture")
	}
	return first, nil
}

func attach(ctx context.Context, mux *cdp.Mux, targetID string) (string, error) {
	raw, err := mux.Call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": targetID, "flatten": true})
	if err != nil {
		return "", err
	}
	var res struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || res.SessionID == "" {
		return "", errors.New("attach answered without a session")
	}
	return res.SessionID, nil
}

func pageVisible(ctx context.Context, mux *cdp.Mux, session string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	raw, err := mux.Call(ctx, session, "Runtime.evaluate", map[string]any{
		"expression": "document.visibilityState", "returnByValue": true})
	if err != nil {
		return false
	}
	var res struct {
		Result struct {
			Value string `json:"value"`
		} `json:"result"`
	}
	return json.Unmarshal(raw, &res) == nil && res.Result.Value == "visible"
}

package browser

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"berth/session-agent/internal/agent"
	"berth/session-agent/internal/cdp"
)

// startNavTimeout bounds how long the start navigation is watched (and its document
// requests checked) before the agent lets go of the tab.
const startNavTimeout = 30 * time.Second

// navigateStart loads the session's start_url in the first tab, checking every document
// request of that navigation (the URL itself, each redirect, meta refreshes and frames
// before the load event) against the URL policy. Chromium resolves names itself after our
// check, so a host that answers DNS differently a moment later is not caught: the policy
// stops redirects and plain mistakes, not a DNS-rebinding attacker.
//
// The caller has checked rawURL itself against the policy. It returns once the navigation
// has started; the rest runs in the background.
func (s *Service) navigateStart(ctx context.Context, rawURL string) error {
	mux := s.chrome.mux
	targets, err := cdp.GetTargets(ctx, mux)
	if err != nil {
		return err
	}
	var tab string
	for _, t := range targets {
		if t.Type == "page" {
			tab = t.TargetID
			break
		}
	}
	if tab == "" {
		raw, err := mux.Call(ctx, "", "Target.createTarget", map[string]string{"url": "about:blank"})
		if err != nil {
			return err
		}
		var res struct {
			TargetID string `json:"targetId"`
		}
		_ = json.Unmarshal(raw, &res)
		tab = res.TargetID
	}
	session, err := attach(ctx, mux, tab)
	if err != nil {
		return err
	}
	loaded := make(chan struct{}, 1)
	unsubscribe := mux.Subscribe(func(ev cdp.Message) {
		if ev.SessionID != session {
			return
		}
		switch ev.Method {
		case "Fetch.requestPaused":
			go s.checkStartRequest(mux, session, ev.Params)
		case "Page.loadEventFired":
			select {
			case loaded <- struct{}{}:
			default:
			}
		}
	})
	release := func() {
		unsubscribe()
		_ = mux.Notify(session, "Fetch.disable", nil)
		_ = mux.Notify("", "Target.detachFromTarget", map[string]string{"sessionId": session})
	}
	pattern := []map[string]string{{"urlPattern": "*", "resourceType": "Document", "requestStage": "Request"}}
	for _, step := range []struct {
		method string
		params any
	}{
		{"Fetch.enable", map[string]any{"patterns": pattern}},
		{"Page.enable", nil},
	} {
		if _, err := mux.Call(ctx, session, step.method, step.params); err != nil {
			release()
			return err
		}
	}
	// Page.navigate answers once the first response commits (or fails), which can take as
	// long as the site does: the session is usable meanwhile, so do not hold up the bind.
	go func() {
		defer release()
		navCtx, cancel := context.WithTimeout(context.Background(), startNavTimeout)
		defer cancel()
		raw, err := mux.Call(navCtx, session, "Page.navigate", map[string]string{"url": rawURL})
		if err != nil {
			agent.Log("warn", "start navigation failed", map[string]any{"error": err})
			return
		}
		var res struct {
			ErrorText string `json:"errorText"`
		}
		if json.Unmarshal(raw, &res) == nil && res.ErrorText != "" {
			agent.Log("warn", "start navigation failed", map[string]any{"error": res.ErrorText})
			return
		}
		select {
		case <-loaded:
		case <-navCtx.Done():
		case <-mux.Dead():
		}
	}()
	return nil
}

// checkStartRequest lets a paused document request continue if the policy allows its URL.
func (s *Service) checkStartRequest(mux *cdp.Mux, session string, params json.RawMessage) {
	var p struct {
		RequestID string `json:"requestId"`
		Request   struct {
			URL string `json:"url"`
		} `json:"request"`
	}
	if err := json.Unmarshal(params, &p); err != nil || p.RequestID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.cfg.Policy.Check(ctx, netResolver, p.Request.URL); err != nil {
		agent.Log("warn", "start navigation blocked by the URL policy", map[string]any{"reason": err.Error()})
		_ = mux.Notify(session, "Fetch.failRequest", map[string]string{"requestId": p.RequestID, "errorReason": "BlockedByClient"})
		return
	}
	if err := mux.Notify(session, "Fetch.continueRequest", map[string]string{"requestId": p.RequestID}); err != nil && !errors.Is(err, cdp.ErrBrowserGone) {
		agent.Log("warn", "could not continue a start request", map[string]any{"error": err})
	}
}

// Package browser is the browser kind of session agent: Chromium (headful on Xvfb with
// x11vnc, or headless) controlled only through its DevTools pipe, shared by any number of
// CDP clients, with a live view, screenshots, downloads, uploads and persistent profiles.
package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"berth/session-agent/internal/agent"
	"berth/session-agent/internal/cdp"
	"berth/session-agent/internal/vnc"
)

// Shutdown budget: the platform's stop grace for a browser is about 8 s.
const (
	shutdownGrace    = 7 * time.Second
	chromiumCloseMax = 6 * time.Second
	bindTimeout      = 15 * time.Second
)

// The agent relies on these optional interfaces; a rename must not silently drop them.
var (
	_ agent.FatalNotifier = (*Service)(nil)
	_ agent.GraceProvider = (*Service)(nil)
	_ agent.StatusError   = (*OptionsError)(nil)
)

// Service is the browser kind of agent.Service.
type Service struct {
	getenv func(string) string
	cfg    Config

	display   *display // nil when headless
	chrome    *chromium
	userData  string
	downloads *downloads
	devtools  *cdp.Handler
	vnc       *vnc.Handler
	live      *liveView // nil when headless

	mu      sync.Mutex
	session Options // options of the bound session

	closing atomic.Bool
	died    chan error // agent.FatalNotifier
}

// New returns the browser service; the environment is read and checked in Prepare, so a
// bad value is reported to the API like any start-up failure.
func New(getenv func(string) string) *Service {
	return &Service{getenv: getenv, died: make(chan error, 1)}
}

// ShutdownGrace asks the agent for time to save the profile (agent.GraceProvider).
func (s *Service) ShutdownGrace() time.Duration { return shutdownGrace }

// Fatal reports Chromium exiting on its own (agent.FatalNotifier): the session cannot
// continue, and the agent ends the run through its normal shutdown.
func (s *Service) Fatal() <-chan error { return s.died }

// Prepare starts Xvfb and x11vnc (headful) and Chromium, and returns once CDP answers, the
// saved session cookies are back and the live view's socket exists.
func (s *Service) Prepare(ctx context.Context) error {
	started := time.Now()
	cfg, err := ConfigFromEnv(s.getenv)
	if err != nil {
		return err
	}
	s.cfg = cfg
	o := cfg.Launch
	for _, dir := range []string{cfg.DownloadDir, cfg.UploadDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfg.RuntimeDir, 0o700); err != nil {
		return err
	}
	if s.userData, err = prepareProfile(cfg, o); err != nil {
		return err
	}

	displayName := ""
	if !o.Headless {
		if s.live, err = loadLiveView(cfg.LiveDir); err != nil {
			return err
		}
		if s.display, err = startXvfb(ctx, o.Viewport); err != nil {
			return err
		}
		displayName = s.display.name
		// x11vnc and Chromium start together; both only need the X server.
		if err := s.display.startVNC(filepath.Join(cfg.RuntimeDir, "vnc.sock")); err != nil {
			return err
		}
	}
	s.downloads = newDownloads(cfg.DownloadDir, nil, cfg.MaxDownloadBytes)
	s.chrome, err = launchChromium(cfg, o, s.userData, displayName, cdp.Config{
		DownloadDir:  cfg.DownloadDir,
		OnClientGone: s.restoreDownloadBehavior,
		Log:          agent.Log,
	})
	if err != nil {
		return err
	}
	mux := s.chrome.mux
	s.downloads.mux = mux
	mux.Subscribe(s.downloads.onEvent)

	version, err := cdp.GetVersion(ctx, mux)
	if err != nil {
		return fmt.Errorf("chromium did not answer: %w", err)
	}
	agent.Log("info", "chromium answers", map[string]any{"ms": time.Since(started).Milliseconds(),
		"browser": version.Browser, "headless": o.Headless})
	browserID, err := browserTargetID(ctx, mux)
	if err != nil {
		return err
	}
	if _, err := mux.Call(ctx, "", "Browser.setDownloadBehavior", s.downloads.behavior()); err != nil {
		return err
	}
	if o.Profile != "" {
		n, err := restoreSessionCookies(ctx, mux, s.userData)
		if err != nil {
			return fmt.Errorf("restore session cookies: %w", err)
		}
		agent.Log("info", "profile opened", map[string]any{"session_cookies_restored": n})
	}
	if s.display != nil {
		if err := s.display.waitVNC(ctx); err != nil {
			return err
		}
	}
	s.devtools = &cdp.Handler{Mux: mux, BrowserID: browserID, Version: version, Log: agent.Log, Closing: s.closing.Load}
	if s.display != nil {
		s.vnc = &vnc.Handler{SocketPath: s.display.socket, ViewOnly: s.viewOnly, Log: agent.Log, Closing: s.closing.Load}
	}
	go s.watchChromium()
	agent.Log("info", "browser prepared", map[string]any{"ms": time.Since(started).Milliseconds()})
	return nil
}

// Bind applies a session's options: launch-time ones must match this container's, the rest
// (viewport of a headless window, caps, view-only, start_url) take effect now.
func (s *Service) Bind(ctx context.Context, b agent.Binding) error {
	o, err := ParseOptions(b.Options)
	if err != nil {
		return err
	}
	if err := o.CheckLaunch(s.cfg.Launch); err != nil {
		return err
	}
	// The agent's context has no deadline; a bind must not hang on DNS or a stuck browser.
	ctx, cancel := context.WithTimeout(ctx, bindTimeout)
	defer cancel()
	if o.StartURL != "" {
		// Before anything changes: a refused start_url leaves the container as it was.
		if err := s.cfg.Policy.Check(ctx, netResolver, o.StartURL); err != nil {
			return optionsErrorf("start_url refused: %v", err)
		}
	}
	s.mu.Lock()
	s.session = o
	s.mu.Unlock()
	_, maxDownload := s.cfg.limits(o)
	s.downloads.setMax(maxDownload)
	if o.Headless && o.Viewport != s.cfg.Launch.Viewport {
		if err := s.resizeWindows(ctx, o.Viewport); err != nil {
			return err
		}
	}
	if o.StartURL != "" {
		return s.navigateStart(ctx, o.StartURL)
	}
	return nil
}

// Handler serves the kind's routes; the agent has checked the secret already.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/.berth/screenshot":
			s.serveScreenshot(w, r)
		case p == "/.berth/downloads" || p == "/.berth/downloads/":
			s.downloads.serveList(w, r)
		case strings.HasPrefix(p, "/.berth/downloads/"):
			s.downloads.serveFile(w, r, strings.TrimPrefix(p, "/.berth/downloads/"))
		case strings.HasPrefix(p, "/.berth/uploads/"):
			s.serveUpload(w, r, strings.TrimPrefix(p, "/.berth/uploads/"))
		case p == "/" || strings.HasPrefix(p, "/live/"):
			s.serveLive(w, r)
		case p == "/vnc":
			if s.vnc == nil {
				agent.WriteError(w, http.StatusNotFound, "headless session: no live view")
				return
			}
			s.vnc.ServeHTTP(w, r)
		case strings.HasPrefix(p, "/json") || strings.HasPrefix(p, "/devtools/"):
			s.devtools.ServeHTTP(w, r)
		default:
			agent.WriteError(w, http.StatusNotFound, "not found")
		}
	})
}

// Shutdown closes every client, saves the session cookies of a persistent profile and
// closes Chromium cleanly so the profile on disk is consistent; a Chromium that does not
// exit in time is killed.
func (s *Service) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	var errs []error
	if s.vnc != nil {
		s.vnc.CloseAll()
	}
	if s.chrome != nil {
		errs = append(errs, s.closeChromium(ctx))
	}
	if s.display != nil {
		s.display.stop(300 * time.Millisecond)
	}
	return firstError(errs...)
}

func (s *Service) closeChromium(ctx context.Context) error {
	mux, child := s.chrome.mux, s.chrome.child
	mux.CloseClients("session ending")
	select {
	case <-child.Done():
		return nil // it died on its own (Fatal): nothing left to save or close
	default:
	}
	var saveErr error
	if s.cfg.Launch.Profile != "" {
		saveCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		n, err := saveSessionCookies(saveCtx, mux, s.userData)
		cancel()
		if err != nil {
			saveErr = fmt.Errorf("save session cookies: %w", err)
		} else {
			agent.Log("info", "session cookies saved", map[string]any{"count": n})
		}
	}
	// Browser.close runs Chromium's normal shutdown (profile written, locks removed); its
	// answer may never come because the pipe closes, so wait for the process instead.
	_ = mux.Notify("", "Browser.close", nil)
	deadline := time.NewTimer(chromiumCloseMax)
	defer deadline.Stop()
	select {
	case <-child.Done():
		return saveErr
	case <-deadline.C:
	case <-ctx.Done():
	}
	agent.Log("warn", "chromium did not exit in time; killing it", nil)
	_ = child.SignalGroup(syscall.SIGKILL)
	<-child.Done()
	return firstError(saveErr, errors.New("chromium killed after the close timeout"))
}

// watchChromium reports a Chromium that exits outside Shutdown.
func (s *Service) watchChromium() {
	<-s.chrome.child.Done()
	if s.closing.Load() {
		return
	}
	s.died <- fmt.Errorf("chromium exited unexpectedly (code %d)", s.chrome.child.ExitCode())
}

// restoreDownloadBehavior re-applies the agent's download setting after a client left:
// Chromium resets the behaviour a detaching session had set to the browser default.
func (s *Service) restoreDownloadBehavior() {
	if s.closing.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.chrome.mux.Call(ctx, "", "Browser.setDownloadBehavior", s.downloads.behavior()); err != nil &&
		!errors.Is(err, cdp.ErrBrowserGone) {
		agent.Log("warn", "could not restore the download behaviour", map[string]any{"error": err})
	}
}

func (s *Service) viewOnly() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.session.ViewOnly
}

func (s *Service) limits() (upload, download int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.limits(s.session)
}

// resizeWindows sets every browser window of a headless session to the viewport.
func (s *Service) resizeWindows(ctx context.Context, vp Viewport) error {
	mux := s.chrome.mux
	targets, err := cdp.GetTargets(ctx, mux)
	if err != nil {
		return err
	}
	for _, t := range targets {
		if t.Type != "page" {
			continue
		}
		raw, err := mux.Call(ctx, "", "Browser.getWindowForTarget", map[string]string{"targetId": t.TargetID})
		if err != nil {
			continue
		}
		var win struct {
			WindowID int `json:"windowId"`
		}
		if err := json.Unmarshal(raw, &win); err != nil {
			continue
		}
		if _, err := mux.Call(ctx, "", "Browser.setWindowBounds", map[string]any{"windowId": win.WindowID,
			"bounds": map[string]int{"width": vp.Width, "height": vp.Height}}); err != nil {
			return fmt.Errorf("resize window: %w", err)
		}
	}
	return nil
}

// browserTargetID is the id Chromium's own /json/version would put in its browser URL.
func browserTargetID(ctx context.Context, mux *cdp.Mux) (string, error) {
	raw, err := mux.Call(ctx, "", "Target.getTargetInfo", nil)
	if err != nil {
		return "", err
	}
	var res struct {
		TargetInfo cdp.TargetInfo `json:"targetInfo"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || res.TargetInfo.TargetID == "" {
		return "", errors.New("no browser target id")
	}
	return res.TargetInfo.TargetID, nil
}

// firstError returns the first non-nil error (Go 1.19 has no errors.Join).
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

package browser

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"berth/session-agent/internal/agent"
)

// The live view page: GET / serves the page, /live/* its script, style sheet and noVNC's ES
// modules (copied into the image from npm's @novnc/novnc), /live/config.json what the page
// must know about the session, and /vnc (internal/vnc) the screen. Everything sits behind
// the agent's secret check like every other route; Berth's gateway serves it on the
// session's own origin.

// livePageCSP: only this origin's scripts and styles, no inline code. connect-src 'self'
// covers the WebSocket to /vnc on the same host and port. img-src: noVNC paints JPEG
// rectangles through data: images and sets the remote cursor as a data: URL. The page is
// not to be framed: a hidden interactive live view would be a clickjacking target.
const livePageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; " +
	"frame-ancestors 'none'"

// liveTypes are the files under the live directory that are served, by extension: ES modules
// need a JavaScript MIME type or the browser refuses to run them.
var liveTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
}

// liveRequired must exist in the live directory; the page is useless without them.
var liveRequired = []string{"index.html", "viewer.js", "viewer.css", "novnc/core/rfb.js"}

// headlessPage answers GET / of a headless session: there is no screen to show.
const headlessPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>No live view · Berth</title></head>
<body><h1>No live view</h1>
<p>This browser session runs headless: there is no screen to show. Drive it over CDP
(the session's <code>cdp_url</code>) or take screenshots.</p></body></html>
`

// liveView holds the page (small, kept in memory) and the allow-list of asset paths. The
// assets themselves are read from disk per request: a viewer loads them once per visit,
// and ~700 KB held by every idle container would cost more.
type liveView struct {
	dir   string
	page  []byte
	files map[string]string // path relative to dir ("novnc/core/rfb.js") -> content type
}

// loadLiveView reads the page and lists the servable files under dir. Only regular files
// with a known extension are listed, so nothing else in the directory (licences, READMEs)
// and nothing outside it can be reached.
func loadLiveView(dir string) (*liveView, error) {
	lv := &liveView{dir: dir, files: map[string]string{}}
	for _, name := range liveRequired {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || !st.Mode().IsRegular() {
			return nil, fmt.Errorf("live view assets missing: %s", filepath.Join(dir, name))
		}
	}
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		return nil, fmt.Errorf("live view assets: %w", err)
	}
	lv.page = page
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ctype, ok := liveTypes[path.Ext(p)]
		if !ok || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		lv.files[filepath.ToSlash(rel)] = ctype
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("live view assets: %w", err)
	}
	return lv, nil
}

// readOnly answers anything but GET and HEAD with 405.
func readOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	agent.WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
	return false
}

func pageHeaders(h http.Header, csp string, n int) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", csp)
	h.Set("Content-Length", strconv.Itoa(n))
}

// servePage answers GET / with the live view page (nil lv: the headless page, 404).
func (lv *liveView) servePage(w http.ResponseWriter, r *http.Request) {
	if !readOnly(w, r) {
		return
	}
	if lv == nil {
		pageHeaders(w.Header(), "default-src 'none'; base-uri 'none'; form-action 'none'", len(headlessPage))
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(headlessPage))
		return
	}
	pageHeaders(w.Header(), livePageCSP, len(lv.page))
	_, _ = w.Write(lv.page)
}

// serveConfig answers GET /live/config.json: what the page shows depends on it, so it is
// asked on every (re)connection. A 401 from the gateway there means the session ended.
func (lv *liveView) serveConfig(w http.ResponseWriter, r *http.Request, viewOnly bool) {
	if !readOnly(w, r) {
		return
	}
	w.Header().Set("Referrer-Policy", "no-referrer")
	agent.WriteJSON(w, http.StatusOK, map[string]bool{"view_only": viewOnly})
}

// serveAsset answers GET /live/<name> for an allow-listed file.
func (lv *liveView) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	ctype, ok := lv.files[name]
	if !ok {
		agent.WriteError(w, http.StatusNotFound, "not found")
		return
	}
	if !readOnly(w, r) {
		return
	}
	f, err := os.Open(filepath.Join(lv.dir, filepath.FromSlash(name)))
	if err != nil {
		agent.WriteError(w, http.StatusNotFound, "not found")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		agent.WriteError(w, http.StatusInternalServerError, "cannot read asset")
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	// Each session has its own origin, so nothing is shared between sessions anyway; an
	// hour covers reconnections and reloads within one.
	h.Set("Cache-Control", "private, max-age=3600")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// serveLive routes GET / and /live/*; lv is nil for a headless session.
func (s *Service) serveLive(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/" {
		s.live.servePage(w, r)
		return
	}
	if s.live == nil {
		agent.WriteError(w, http.StatusNotFound, "headless session: no live view")
		return
	}
	name := strings.TrimPrefix(p, "/live/")
	if name == "config.json" {
		s.live.serveConfig(w, r, s.viewOnly())
		return
	}
	s.live.serveAsset(w, r, name)
}

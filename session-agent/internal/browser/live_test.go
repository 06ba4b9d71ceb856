package browser

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// liveDir lays out a live directory as the image does.
func liveDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"index.html":                            "<!doctype html><title>live</title>",
		"viewer.js":                             "import RFB from './novnc/core/rfb.js';",
		"viewer.css":                            "body{}",
		"novnc/core/rfb.js":                     "export default class RFB {}",
		"novnc/core/util/logging.js":            "export const x = 1;",
		"novnc/vendor/pako/lib/zlib/inflate.js": "export const y = 2;",
		"novnc/LICENSE.txt":                     "MPL",
		"novnc/vendor/pako/README.md":           "pako",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadLiveViewListsOnlyScriptsAndStyles(t *testing.T) {
	lv, err := loadLiveView(liveDir(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"viewer.js": "text/javascript; charset=utf-8", "viewer.css": "text/css; charset=utf-8",
		"novnc/core/rfb.js": "text/javascript; charset=utf-8", "novnc/core/util/logging.js": "text/javascript; charset=utf-8",
		"novnc/vendor/pako/lib/zlib/inflate.js": "text/javascript; charset=utf-8",
	}
	if len(lv.files) != len(want) {
		t.Fatalf("files %v", lv.files)
	}
	for k, v := range want {
		if lv.files[k] != v {
			t.Errorf("%s: %q", k, lv.files[k])
		}
	}
	if string(lv.page) != "<!doctype html><title>live</title>" {
		t.Fatalf("page %q", lv.page)
	}
}

func TestLoadLiveViewNeedsItsAssets(t *testing.T) {
	for _, missing := range liveRequired {
		dir := liveDir(t)
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(missing))); err != nil {
			t.Fatal(err)
		}
		if _, err := loadLiveView(dir); err == nil || !strings.Contains(err.Error(), "live view assets missing") {
			t.Errorf("without %s: %v", missing, err)
		}
	}
}

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, "http://s.example"+path, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestLiveViewRoutes(t *testing.T) {
	lv, err := loadLiveView(liveDir(t))
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{live: lv, session: Options{ViewOnly: true}}
	h := s.Handler()

	page := get(t, h, http.MethodGet, "/")
	body, _ := io.ReadAll(page.Body)
	ph := page.Header
	if page.StatusCode != 200 || string(body) != string(lv.page) || ph.Get("Content-Type") != "text/html; charset=utf-8" ||
		ph.Get("Cache-Control") != "no-store" || ph.Get("Referrer-Policy") != "no-referrer" ||
		ph.Get("Content-Security-Policy") != livePageCSP || ph.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("page: %d %v", page.StatusCode, ph)
	}
	for _, must := range []string{"default-src 'self'", "connect-src 'self'", "img-src 'self' data: blob:", "frame-ancestors 'none'"} {
		if !strings.Contains(livePageCSP, must) {
			t.Errorf("CSP lacks %q", must)
		}
	}
	if strings.Contains(livePageCSP, "unsafe") {
		t.Error("CSP allows unsafe-*")
	}

	for path, want := range map[string]int{
		"/live/viewer.js": 200, "/live/viewer.css": 200, "/live/novnc/core/rfb.js": 200,
		"/live/novnc/vendor/pako/lib/zlib/inflate.js": 200,
		"/live/index.html":                            404, "/live/novnc/LICENSE.txt": 404, "/live/novnc/vendor/pako/README.md": 404,
		"/live/": 404, "/live/../index.html": 404, "/live/novnc/core/../core/rfb.js": 404, "/live//viewer.js": 404,
		"/index.html": 404, "/live": 404,
	} {
		res := get(t, h, http.MethodGet, path)
		if res.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, res.StatusCode, want)
			continue
		}
		if want == 200 {
			ct := res.Header.Get("Content-Type")
			if (strings.HasSuffix(path, ".js") && ct != "text/javascript; charset=utf-8") ||
				(strings.HasSuffix(path, ".css") && ct != "text/css; charset=utf-8") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: %v", path, res.Header)
			}
		}
	}

	cfg := get(t, h, http.MethodGet, "/live/config.json")
	var c map[string]any
	if err := json.NewDecoder(cfg.Body).Decode(&c); err != nil || cfg.StatusCode != 200 || c["view_only"] != true ||
		cfg.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("config: %d %v %v", cfg.StatusCode, c, err)
	}
	s.session.ViewOnly = false
	cfg = get(t, h, http.MethodGet, "/live/config.json")
	if err := json.NewDecoder(cfg.Body).Decode(&c); err != nil || c["view_only"] != false {
		t.Fatalf("interactive config: %v %v", c, err)
	}

	for _, path := range []string{"/", "/live/viewer.js", "/live/config.json"} {
		if res := get(t, h, http.MethodPost, path); res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("POST %s: %d", path, res.StatusCode)
		}
	}
	if res := get(t, h, http.MethodHead, "/live/viewer.js"); res.StatusCode != 200 {
		t.Errorf("HEAD: %d", res.StatusCode)
	}
}

func TestHeadlessHasNoLiveView(t *testing.T) {
	h := (&Service{}).Handler()
	page := get(t, h, http.MethodGet, "/")
	body, _ := io.ReadAll(page.Body)
	if page.StatusCode != 404 || page.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(string(body), "headless") || !strings.HasPrefix(page.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("headless page: %d %v %s", page.StatusCode, page.Header, body)
	}
	for _, path := range []string{"/live/viewer.js", "/live/config.json", "/vnc"} {
		if res := get(t, h, http.MethodGet, path); res.StatusCode != 404 {
			t.Errorf("%s: %d", path, res.StatusCode)
		}
	}
}

// Names with ".." reach the kind as sent (the agent does not clean paths) and are refused
// with 400, never resolved.
func TestTraversalNamesAre400(t *testing.T) {
	dir := t.TempDir()
	s := &Service{downloads: newDownloads(dir, nil, 1<<20)}
	s.cfg.UploadDir, s.cfg.MaxUploadBytes = dir, 1<<20
	h := s.Handler()
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/.berth/downloads/../x"}, {http.MethodGet, "/.berth/downloads/.."},
		{http.MethodGet, "/.berth/downloads/../../etc/passwd"}, {http.MethodGet, "/.berth/downloads/a/../b"},
		{http.MethodPut, "/.berth/uploads/../evil"}, {http.MethodPut, "/.berth/uploads/.."},
		{http.MethodPut, "/.berth/uploads/../../home/berth/.bashrc"},
	} {
		if res := get(t, h, c.method, c.path); res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s: %d, want 400", c.method, c.path, res.StatusCode)
		}
	}
}

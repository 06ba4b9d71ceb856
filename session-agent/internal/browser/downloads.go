package browser

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"berth/session-agent/internal/agent"
	"berth/session-agent/internal/cdp"
)

// downloads keeps the downloads directory readable by name. Chromium saves a download
// either under its suggested name (default behaviour) or, with "allowAndName" (ours, and
// what Playwright asks for), under its GUID; the CDP download events give the suggested
// name, and a finished GUID file is renamed to it. Files still being written are hidden.
type downloads struct {
	dir string
	mux notifier

	mu       sync.Mutex
	max      int64             // per-file cap in bytes
	names    map[string]string // guid -> suggested name, while in progress
	canceled map[string]bool   // guids we cancelled for size
}

// notifier sends a CDP command without waiting (a *cdp.Mux).
type notifier interface {
	Notify(sessionID, method string, params any) error
}

func newDownloads(dir string, mux notifier, max int64) *downloads {
	return &downloads{dir: dir, mux: mux, max: max, names: map[string]string{}, canceled: map[string]bool{}}
}

func (d *downloads) setMax(max int64) {
	d.mu.Lock()
	d.max = max
	d.mu.Unlock()
}

// behavior is the agent's own setting on the pipe's root session: downloads land in the
// directory, with events (that session never detaches, so the events keep coming).
func (d *downloads) behavior() map[string]any {
	return map[string]any{"behavior": "allowAndName", "downloadPath": d.dir, "eventsEnabled": true}
}

// onEvent runs on the multiplexer's event goroutine: no waiting on CDP calls here.
func (d *downloads) onEvent(ev cdp.Message) {
	switch ev.Method {
	case "Browser.downloadWillBegin":
		var p struct {
			GUID              string `json:"guid"`
			SuggestedFilename string `json:"suggestedFilename"`
		}
		if json.Unmarshal(ev.Params, &p) == nil && p.GUID != "" {
			d.mu.Lock()
			d.names[p.GUID] = p.SuggestedFilename
			d.mu.Unlock()
		}
	case "Browser.downloadProgress":
		var p struct {
			GUID          string  `json:"guid"`
			ReceivedBytes float64 `json:"receivedBytes"`
			State         string  `json:"state"`
		}
		if json.Unmarshal(ev.Params, &p) != nil || p.GUID == "" {
			return
		}
		d.progress(p.GUID, int64(p.ReceivedBytes), p.State)
	}
}

func (d *downloads) progress(guid string, received int64, state string) {
	d.mu.Lock()
	name, known := d.names[guid]
	max := d.max
	if state != "inProgress" {
		delete(d.names, guid)
		delete(d.canceled, guid)
	}
	tooBig := received > max && !d.canceled[guid]
	if state == "inProgress" && tooBig {
		d.canceled[guid] = true
	}
	d.mu.Unlock()

	guidPath := filepath.Join(d.dir, guid)
	switch state {
	case "inProgress":
		if tooBig {
			agent.Log("warn", "download over the size cap cancelled", map[string]any{"bytes": received, "max_bytes": max})
			_ = d.mux.Notify("", "Browser.cancelDownload", map[string]string{"guid": guid})
		}
	case "canceled":
		_ = os.Remove(guidPath)
	case "completed":
		if received > max {
			_ = os.Remove(guidPath)
			return
		}
		if !known {
			name = "download"
		}
		final, err := linkUnique(guidPath, d.dir, sanitizeName(name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			// Saved under its own name already (default behaviour): nothing to do.
		case err != nil:
			agent.Log("warn", "could not name a finished download", map[string]any{"error": err})
		default:
			_ = os.Remove(guidPath)
			agent.Log("info", "download finished", map[string]any{"name": final, "bytes": received})
		}
	}
}

// linkUnique gives src the name base in dir, or "base (n)" if taken. A hard link fails
// instead of replacing an existing file, so no earlier download is overwritten.
func linkUnique(src, dir, base string) (string, error) {
	for n := 1; n < 10000; n++ {
		name := base
		if n > 1 {
			name = numberedName(base, n)
		}
		err := os.Link(src, filepath.Join(dir, name))
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("no free name for %q", base)
}

// inProgress reports whether name is a download still being written.
func (d *downloads) inProgress(name string) bool {
	if strings.HasSuffix(name, ".crdownload") {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, busy := d.names[name]
	return busy
}

type downloadEntry struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

// serveList answers GET /.berth/downloads: finished downloads, newest first.
func (d *downloads) serveList(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		agent.WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		agent.WriteError(w, http.StatusInternalServerError, "cannot read the downloads directory")
		return
	}
	list := []downloadEntry{}
	for _, e := range entries {
		if !e.Type().IsRegular() || validName(e.Name()) != nil || d.inProgress(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		list = append(list, downloadEntry{Name: e.Name(), Size: info.Size(), Modified: info.ModTime().UTC()})
	}
	sort.Slice(list, func(i, j int) bool {
		if !list[i].Modified.Equal(list[j].Modified) {
			return list[i].Modified.After(list[j].Modified)
		}
		return list[i].Name < list[j].Name
	})
	agent.WriteJSON(w, http.StatusOK, list)
}

// serveFile answers GET /.berth/downloads/<name>, streamed (ranges supported).
func (d *downloads) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		agent.WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if err := validName(name); err != nil {
		agent.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if d.inProgress(name) {
		agent.WriteError(w, http.StatusNotFound, "no such download")
		return
	}
	// O_NOFOLLOW: the directory is the browser's to write; never follow a link out of it.
	f, err := os.OpenFile(filepath.Join(d.dir, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		agent.WriteError(w, http.StatusNotFound, "no such download")
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		agent.WriteError(w, http.StatusNotFound, "no such download")
		return
	}
	d.mu.Lock()
	max := d.max
	d.mu.Unlock()
	if info.Size() > max {
		agent.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("download is larger than the %d byte cap", max))
		return
	}
	ctype := mime.TypeByExtension(filepath.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", contentDisposition(name))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	http.ServeContent(w, r, name, info.ModTime(), f)
}

// contentDisposition makes an attachment header with an ASCII fallback and the exact
// UTF-8 name (RFC 6266 / RFC 5987).
func contentDisposition(name string) string {
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			return '_'
		}
		return r
	}, name)
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, ascii, encodeRFC5987(name))
}

// encodeRFC5987 percent-encodes every byte that is not an RFC 5987 attr-char.
func encodeRFC5987(s string) string {
	const attrChars = "!#$&+-.^_`|~"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(attrChars, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

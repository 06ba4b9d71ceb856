package browser

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"berth/session-agent/internal/cdp"
)

type recordedCall struct {
	method string
	params any
}

type fakeNotifier struct{ calls []recordedCall }

func (f *fakeNotifier) Notify(_, method string, params any) error {
	f.calls = append(f.calls, recordedCall{method, params})
	return nil
}

func event(t *testing.T, method string, params any) cdp.Message {
	t.Helper()
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return cdp.Message{Method: method, Params: raw}
}

func listNames(t *testing.T, d *downloads) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	d.serveList(rec, httptest.NewRequest("GET", "/.berth/downloads", nil))
	var entries []downloadEntry
	if err := json.Unmarshal(rec.Body.Bytes(), &entries); err != nil {
		t.Fatalf("%s: %v", rec.Body, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	return names
}

func TestFinishedDownloadsGetTheirSuggestedNames(t *testing.T) {
	dir := t.TempDir()
	d := newDownloads(dir, &fakeNotifier{}, 1<<20)
	for i, guid := range []string{"0b9c0d38-1111-4c8e-9d1e-000000000001", "0b9c0d38-1111-4c8e-9d1e-000000000002"} {
		d.onEvent(event(t, "Browser.downloadWillBegin", map[string]any{"guid": guid, "suggestedFilename": "../report.pdf"}))
		if err := os.WriteFile(filepath.Join(dir, guid), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		if names := listNames(t, d); len(names) != i {
			t.Fatalf("a download in progress must not be listed: %v", names)
		}
		d.onEvent(event(t, "Browser.downloadProgress", map[string]any{"guid": guid, "receivedBytes": 1, "state": "completed"}))
	}
	names := listNames(t, d)
	if len(names) != 2 || !contains(names, "_report.pdf") || !contains(names, "_report (2).pdf") {
		t.Fatalf("want both downloads under their (sanitised, numbered) names: %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "_report.pdf")); len(b) != 1 || b[0] != 0 {
		t.Fatalf("the second download must not overwrite the first: %v", b)
	}
}

func TestOversizeDownloadsAreCancelledAndRemoved(t *testing.T) {
	dir := t.TempDir()
	n := &fakeNotifier{}
	d := newDownloads(dir, n, 100)
	guid := "0b9c0d38-1111-4c8e-9d1e-00000000000f"
	d.onEvent(event(t, "Browser.downloadWillBegin", map[string]any{"guid": guid, "suggestedFilename": "big.iso"}))
	d.onEvent(event(t, "Browser.downloadProgress", map[string]any{"guid": guid, "receivedBytes": 50, "state": "inProgress"}))
	d.onEvent(event(t, "Browser.downloadProgress", map[string]any{"guid": guid, "receivedBytes": 150, "state": "inProgress"}))
	d.onEvent(event(t, "Browser.downloadProgress", map[string]any{"guid": guid, "receivedBytes": 250, "state": "inProgress"}))
	if len(n.calls) != 1 || n.calls[0].method != "Browser.cancelDownload" {
		t.Fatalf("want exactly one cancel: %+v", n.calls)
	}
	// A download Chromium finished anyway (another browser context) is removed, not offered.
	if err := os.WriteFile(filepath.Join(dir, guid), make([]byte, 250), 0o644); err != nil {
		t.Fatal(err)
	}
	d.onEvent(event(t, "Browser.downloadProgress", map[string]any{"guid": guid, "receivedBytes": 250, "state": "completed"}))
	if names := listNames(t, d); len(names) != 0 {
		t.Fatalf("oversize download listed: %v", names)
	}
}

func TestContentDisposition(t *testing.T) {
	got := contentDisposition(`résumé "final"'s.pdf`)
	want := `attachment; filename="r_sum_ _final_'s.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%27s.pdf`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

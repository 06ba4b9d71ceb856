package browser

import (
	"errors"
	"testing"
)

func TestParseOptions(t *testing.T) {
	o, err := ParseOptions(nil)
	if err != nil || o.Viewport != DefaultViewport || o.Headless || o.Profile != "" {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	o, err = ParseOptions([]byte(`{"headless":true,"profile":"alice","viewport":{"width":800,"height":600},
		"start_url":"https://example.com/","view_only":true,"max_upload_bytes":10,"unknown":1}`))
	if err != nil || !o.Headless || o.Profile != "alice" || o.Viewport != (Viewport{800, 600}) ||
		o.StartURL != "https://example.com/" || !o.ViewOnly || o.MaxUploadBytes != 10 {
		t.Fatalf("parsed: %+v %v", o, err)
	}
	for raw, want := range map[string]string{`{"profile":true}`: "default", `{"profile":false}`: "", `{"profile":null}`: ""} {
		if o, err := ParseOptions([]byte(raw)); err != nil || o.Profile != want {
			t.Errorf("%s: profile %q, %v", raw, o.Profile, err)
		}
	}
	for _, bad := range []string{`{"viewport":{"width":100,"height":600}}`, `{"viewport":{"width":800,"height":9000}}`,
		`{"profile":3}`, `{"headless":"yes"}`, `{"max_download_bytes":-1}`, `[1]`} {
		_, err := ParseOptions([]byte(bad))
		var oe *OptionsError
		if !errors.As(err, &oe) || oe.StatusCode() != 400 {
			t.Errorf("%s: want an OptionsError (400), got %v", bad, err)
		}
	}
}

func TestCheckLaunch(t *testing.T) {
	headful := Options{Viewport: DefaultViewport}
	headless := Options{Headless: true, Viewport: DefaultViewport}
	small := Viewport{800, 600}
	for _, tc := range []struct {
		bind, launched Options
		ok             bool
	}{
		{headful, headful, true},
		{Options{Viewport: DefaultViewport, ViewOnly: true, StartURL: "https://x/"}, headful, true},
		{headless, headful, false},
		{headful, headless, false},
		{Options{Viewport: DefaultViewport, Profile: "a"}, headful, false},
		{Options{Viewport: small}, headful, false},                 // a headful screen cannot change size
		{Options{Headless: true, Viewport: small}, headless, true}, // a headless window can
	} {
		if err := tc.bind.CheckLaunch(tc.launched); (err == nil) != tc.ok {
			t.Errorf("bind %+v on %+v: %v", tc.bind, tc.launched, err)
		}
	}
}

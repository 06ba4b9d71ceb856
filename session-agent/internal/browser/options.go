package browser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
)

// Options are the browser kind's session options: BERTH_OPTIONS on a cold start, "options"
// in POST /.berth/bind for a pooled container.
type Options struct {
	// Headless runs Chromium without a display (no /vnc). Launch-time only.
	Headless bool `json:"headless"`
	// Profile names a persistent profile: Berth mounts its volume at /home/berth/profile
	// and Chromium uses it as --user-data-dir. Empty: a throwaway profile. Launch-time only.
	Profile string `json:"-"`
	// Viewport is the window size, and for a headful session the screen size.
	Viewport Viewport `json:"viewport"`
	// StartURL is loaded in the first tab at bind, under the URL policy.
	StartURL string `json:"start_url"`
	// ViewOnly makes every /vnc viewer read-only (input dropped by the agent).
	ViewOnly bool `json:"view_only"`
	// Per-session caps; they can only lower the container's BERTH_MAX_*_BYTES.
	MaxUploadBytes   int64 `json:"max_upload_bytes"`
	MaxDownloadBytes int64 `json:"max_download_bytes"`
}

// Viewport is a size in CSS pixels.
type Viewport struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// DefaultViewport is used when the options name none.
var DefaultViewport = Viewport{Width: 1280, Height: 720}

// OptionsError is a request mistake in the options. StatusCode lets the agent answer a bind
// with 400 instead of treating the error as a broken container.
type OptionsError struct{ msg string }

func (e *OptionsError) Error() string   { return e.msg }
func (e *OptionsError) StatusCode() int { return http.StatusBadRequest }

func optionsErrorf(format string, args ...any) error {
	return &OptionsError{msg: fmt.Sprintf(format, args...)}
}

// ParseOptions validates a JSON options object; empty input gives the defaults.
func ParseOptions(raw []byte) (Options, error) {
	o := Options{Viewport: DefaultViewport}
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return o, nil
	}
	var wire struct {
		Options
		Profile  json.RawMessage `json:"profile"`
		Viewport *Viewport       `json:"viewport"`
	}
	wire.Options = o
	if err := json.Unmarshal(raw, &wire); err != nil {
		return o, optionsErrorf("options: %v", err)
	}
	o = wire.Options
	o.Viewport = DefaultViewport
	if wire.Viewport != nil {
		o.Viewport = *wire.Viewport
	}
	// profile: a name (what Berth names the volume after) or true; false/null/"" mean none.
	switch p := bytes.TrimSpace(wire.Profile); {
	case len(p) == 0, string(p) == "null", string(p) == "false":
	case string(p) == "true":
		o.Profile = "default"
	default:
		if err := json.Unmarshal(p, &o.Profile); err != nil {
			return o, optionsErrorf("options.profile must be a string or a boolean")
		}
	}
	if w, h := o.Viewport.Width, o.Viewport.Height; w < 320 || w > 3840 || h < 240 || h > 2160 {
		return o, optionsErrorf("options.viewport must be within 320x240 and 3840x2160, got %dx%d", w, h)
	}
	if o.MaxUploadBytes < 0 || o.MaxDownloadBytes < 0 {
		return o, optionsErrorf("options.max_upload_bytes and max_download_bytes must not be negative")
	}
	return o, nil
}

// CheckLaunch refuses a bind whose launch-time options differ from those the container was
// started with; Berth then starts a fresh container (the cold path) for that session.
func (o Options) CheckLaunch(launched Options) error {
	if o.Headless != launched.Headless {
		return optionsErrorf("this container runs headless=%v; headless is a launch-time option", launched.Headless)
	}
	if o.Profile != launched.Profile {
		return optionsErrorf("this container was started with another profile; profile is a launch-time option")
	}
	// A headful screen has the size Xvfb started with; a headless window can be resized.
	if !o.Headless && o.Viewport != launched.Viewport {
		return optionsErrorf("this container's screen is %dx%d; the viewport of a headful session is launch-time only",
			launched.Viewport.Width, launched.Viewport.Height)
	}
	return nil
}

package browser

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Config is the browser kind's environment, read once in Prepare.
type Config struct {
	// Launch holds the launch-time options: BERTH_OPTIONS on a bound (cold) start,
	// BERTH_LAUNCH_OPTIONS for an unbound pool container (the agent allows no BERTH_OPTIONS
	// without a session; a pool still needs to know whether to start headless and how big).
	Launch Options
	Policy *URLPolicy

	MaxUploadBytes   int64 // BERTH_MAX_UPLOAD_BYTES
	MaxDownloadBytes int64 // BERTH_MAX_DOWNLOAD_BYTES

	Chromium   string   // BERTH_CHROMIUM (binary; Debian's real one, not its shell wrapper)
	ExtraFlags []string // BERTH_CHROMIUM_FLAGS, space separated, appended last
	// Lean applies the memory-saving flags (default); BERTH_CHROMIUM_LEAN=0 leaves them out,
	// for a site that misbehaves with them and to measure what they save.
	Lean bool

	Home         string // $HOME: a tmpfs in production
	ProfileDir   string // persistent profile mount point
	ThrowawayDir string // profile when none is requested
	DownloadDir  string
	UploadDir    string
	RuntimeDir   string // private sockets (x11vnc), mode 0700
	LiveDir      string // the live view page and its assets (BERTH_LIVE_DIR; tests)
}

const (
	defaultMaxUpload   = 100 << 20
	defaultMaxDownload = 500 << 20
)

// ConfigFromEnv reads the environment through getenv.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{Chromium: "/usr/lib/chromium/chromium"}
	raw := getenv("BERTH_OPTIONS")
	if getenv("BERTH_SESSION_ID") == "" {
		raw = getenv("BERTH_LAUNCH_OPTIONS")
	}
	var err error
	if c.Launch, err = ParseOptions([]byte(raw)); err != nil {
		return c, err
	}
	if c.Policy, err = ParseURLPolicy(getenv("BERTH_URL_POLICY")); err != nil {
		return c, err
	}
	if c.MaxUploadBytes, err = byteLimit(getenv, "BERTH_MAX_UPLOAD_BYTES", defaultMaxUpload); err != nil {
		return c, err
	}
	if c.MaxDownloadBytes, err = byteLimit(getenv, "BERTH_MAX_DOWNLOAD_BYTES", defaultMaxDownload); err != nil {
		return c, err
	}
	if v := getenv("BERTH_CHROMIUM"); v != "" {
		c.Chromium = v
	}
	c.ExtraFlags = strings.Fields(getenv("BERTH_CHROMIUM_FLAGS"))
	switch v := getenv("BERTH_CHROMIUM_LEAN"); v {
	case "", "1", "true":
		c.Lean = true
	case "0", "false":
	default:
		return c, fmt.Errorf("BERTH_CHROMIUM_LEAN must be 0 or 1")
	}
	c.Home = getenv("HOME")
	if c.Home == "" || c.Home == "/" {
		c.Home = "/home/berth"
	}
	c.ProfileDir = filepath.Join(c.Home, "profile")
	c.ThrowawayDir = filepath.Join(c.Home, ".chromium")
	c.DownloadDir = filepath.Join(c.Home, "Downloads")
	c.UploadDir = filepath.Join(c.Home, "uploads")
	c.RuntimeDir = "/tmp/berth"
	if v := getenv("BERTH_RUNTIME_DIR"); v != "" { // tests on a shared host
		c.RuntimeDir = v
	}
	c.LiveDir = "/opt/berth/browser/live"
	if v := getenv("BERTH_LIVE_DIR"); v != "" {
		c.LiveDir = v
	}
	return c, nil
}

func byteLimit(getenv func(string) string, name string, def int64) (int64, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s must be a positive number of bytes", name)
	}
	return n, nil
}

// limits are the caps in force for a session: the container's, lowered by its options.
func (c Config) limits(o Options) (upload, download int64) {
	upload, download = c.MaxUploadBytes, c.MaxDownloadBytes
	if o.MaxUploadBytes > 0 && o.MaxUploadBytes < upload {
		upload = o.MaxUploadBytes
	}
	if o.MaxDownloadBytes > 0 && o.MaxDownloadBytes < download {
		download = o.MaxDownloadBytes
	}
	return upload, download
}

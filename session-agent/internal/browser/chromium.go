package browser

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"berth/session-agent/internal/agent"
	"berth/session-agent/internal/cdp"
)

// baseFlags apply to every session. Grouped by why they are there.
var baseFlags = []string{
	// Control only through the pipe on fds 3/4: Chromium opens no DevTools port, so nothing
	// in the container answers on a port without the session secret.
	"--remote-debugging-pipe",

	// Chromium's sandbox needs user namespaces or seccomp filters Docker's default profile
	// refuses ("No usable sandbox!"); the container (non-root, no capabilities,
	// no-new-privileges, read-only root) is the boundary instead.
	"--no-sandbox",
	// /dev/shm is 64 MiB in a container; shared memory goes to /tmp (a tmpfs) instead.
	"--disable-dev-shm-usage",
	"--disable-gpu",

	// No traffic the user did not ask for: no component/safe-browsing/variations downloads,
	// no sync, metrics, domain reliability or hyperlink-auditing pings.
	"--no-first-run", "--no-default-browser-check",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--disable-default-apps", "--disable-domain-reliability", "--no-pings",
	"--disable-breakpad", "--disable-client-side-phishing-detection", "--metrics-recording-only",
	"--password-store=basic", "--disable-search-engine-choice-screen",

	// Behave like a browser under automation: background tabs keep running (screenshots
	// and scripts in another tab do not stall), no hang dialog, no crash-restore bubble
	// after a container was killed.
	"--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
	"--disable-renderer-backgrounding", "--disable-hang-monitor", "--hide-crash-restore-bubble",
	"--disable-prompt-on-repost", "--noerrdialogs",
	// No audio device in the container; no colour-profile surprises in screenshots.
	"--mute-audio", "--force-color-profile=srgb",
	// The HTTP cache lives in the profile (a tmpfs or the profile volume): keep it small.
	"--disk-cache-size=67108864",
}

// chromium is the running browser and the multiplexer on its pipe.
type chromium struct {
	child *agent.Child
	mux   *cdp.Mux
}

// chromiumArgs builds the command line for one launch.
func chromiumArgs(cfg Config, o Options, userDataDir string) []string {
	args := append([]string{}, baseFlags...)
	enable, disable := []string(nil), quietDisable
	if cfg.Lean {
		args = append(args, leanFlags...)
		enable = leanEnable
		disable = append(append([]string(nil), leanDisable...), quietDisable...)
	}
	args = append(args,
		"--user-data-dir="+userDataDir,
		fmt.Sprintf("--window-size=%d,%d", o.Viewport.Width, o.Viewport.Height),
	)
	if o.Headless {
		args = append(args, "--headless")
	} else {
		args = append(args, "--window-position=0,0")
	}
	args = mergeFeatures(append(args, cfg.ExtraFlags...), enable, disable)
	return append(args, "about:blank")
}

// launchChromium starts Chromium with the DevTools pipe on fds 3 and 4 and starts the
// multiplexer on it. The caller waits for CDP to answer.
func launchChromium(cfg Config, o Options, userDataDir, display string, mcfg cdp.Config) (*chromium, error) {
	pipe, childEnds, err := cdp.NewPipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.Chromium, chromiumArgs(cfg, o, userDataDir)...)
	cmd.ExtraFiles = childEnds[:]
	// Its own process group, so a hung shutdown can be ended for all its processes at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	env := agent.ScrubbedEnv()
	// "no" keys stop the "Google API keys are missing" bar; Debian's wrapper script, which
	// we bypass, would export its own keys (and talk to Google with them).
	env = append(env, "GOOGLE_API_KEY=no", "GOOGLE_DEFAULT_CLIENT_ID=no", "GOOGLE_DEFAULT_CLIENT_SECRET=no")
	if display != "" {
		env = append(env, "DISPLAY="+display)
	}
	cmd.Env = env
	child, err := startChildFiltered("chromium", cmd, chromiumNoise)
	for _, f := range childEnds {
		f.Close() // Chromium holds them now; our copies would hide its exit from the reader
	}
	if err != nil {
		pipe.Close()
		return nil, err
	}
	mux := cdp.NewMux(pipe, mcfg)
	go func() { _ = mux.Run() }()
	go func() {
		// If Chromium dies, close the pipe so every waiter fails instead of hanging.
		<-child.Done()
		pipe.Close()
	}()
	return &chromium{child: child, mux: mux}, nil
}

// chromiumNoise matches log lines that are expected in a container: there is no D-Bus
// (power, screensaver and notification services), which Chromium reports many times.
func chromiumNoise(line []byte) bool {
	return bytes.Contains(line, []byte(":ERROR:dbus/"))
}

// removeStaleSingletons deletes the lock files a killed Chromium leaves in a profile. They
// name the host (a new one per container) and would make Chromium refuse or hand over the
// profile; Berth runs at most one session per profile, so any lock found here is stale.
func removeStaleSingletons(dir string) error {
	for _, name := range []string{"SingletonLock", "SingletonSocket", "SingletonCookie"} {
		if err := os.Remove(dir + "/" + name); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove stale %s: %w", name, err)
		}
	}
	return nil
}

// Memory: measured per container with cgroup v1 (browser-container/measure.sh flags); the
// figures are the idle saving of each flag alone, together about -70 MiB. BERTH_CHROMIUM_LEAN=0
// leaves these out.
var (
	leanFlags = []string{
		// The GPU thread (software compositing anyway, with --disable-gpu) in the browser
		// process instead of a process of its own (-4 MiB).
		"--in-process-gpu",
	}
	leanEnable = []string{
		// The network service as a thread of the browser process, not a process (-15 MiB).
		"NetworkServiceInProcess2",
	}
	leanDisable = []string{
		// The omnibox popup is a WebUI page Chromium preloads in a renderer of its own at
		// start-up, even headless (-40 MiB headful, -12 MiB headless); the native popup
		// replaces it.
		"WebUIOmniboxPopup", "WebUIOmniboxAimPopup",
		// A spare renderer kept warm for the next navigation (-8 MiB).
		"SpareRendererForSitePerProcess",
	}
	// Always off: background services that only talk to Google.
	quietDisable = []string{"Translate", "MediaRouter", "OptimizationHints"}
)

// Features are merged into one --enable-features and one --disable-features switch:
// Chromium keeps only the last occurrence of a switch, so an operator's extra
// --disable-features (BERTH_CHROMIUM_FLAGS) must not silently drop ours.
//
// mergeFeatures folds every --enable-features/--disable-features in args into the given
// lists (ours first, then the operator's), keeping the order of everything else.
func mergeFeatures(args, enable, disable []string) []string {
	lists := map[string][]string{
		"--enable-features":  append([]string(nil), enable...),
		"--disable-features": append([]string(nil), disable...),
	}
	out := make([]string, 0, len(args)+2)
	for _, a := range args {
		name, value, ok := strings.Cut(a, "=")
		if _, isFeature := lists[name]; ok && isFeature {
			lists[name] = append(lists[name], strings.Split(value, ",")...)
			continue
		}
		out = append(out, a)
	}
	for _, name := range []string{"--enable-features", "--disable-features"} {
		if len(lists[name]) > 0 {
			out = append(out, name+"="+strings.Join(lists[name], ","))
		}
	}
	return out
}

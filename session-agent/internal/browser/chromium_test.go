package browser

import (
	"strings"
	"testing"
)

func TestChromiumArgsMergeFeatureSwitches(t *testing.T) {
	cfg := Config{Lean: true, ExtraFlags: []string{"--disable-features=Foo,Bar", "--lang=de", "--enable-features=Baz"}}
	args := chromiumArgs(cfg, Options{Headless: true, Viewport: DefaultViewport}, "/p")
	var enable, disable []string
	for _, a := range args {
		name, value, _ := strings.Cut(a, "=")
		switch name {
		case "--enable-features":
			enable = append(enable, value)
		case "--disable-features":
			disable = append(disable, value)
		}
	}
	if len(enable) != 1 || len(disable) != 1 {
		t.Fatalf("want one switch of each, got enable=%v disable=%v", enable, disable)
	}
	if !strings.HasPrefix(disable[0], "WebUIOmniboxPopup,") || !strings.HasSuffix(disable[0], ",Foo,Bar") {
		t.Errorf("ours first, then the operator's: %s", disable[0])
	}
	if !strings.HasSuffix(enable[0], ",Baz") {
		t.Errorf("operator's enable lost: %s", enable[0])
	}
	if args[len(args)-1] != "about:blank" || !contains(args, "--lang=de") || !contains(args, "--headless") || !contains(args, "--remote-debugging-pipe") {
		t.Errorf("args: %v", args)
	}
	// The package-level lists must not grow from one launch to the next.
	again := chromiumArgs(Config{}, Options{Viewport: DefaultViewport}, "/p")
	for _, a := range again {
		if strings.Contains(a, "Foo") {
			t.Fatalf("operator flags leaked into the next launch: %s", a)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestLeanFlagsCanBeLeftOut(t *testing.T) {
	args := strings.Join(chromiumArgs(Config{}, Options{Viewport: DefaultViewport}, "/p"), " ")
	if strings.Contains(args, "--in-process-gpu") || strings.Contains(args, "WebUIOmniboxPopup") || strings.Contains(args, "--enable-features") {
		t.Errorf("lean flags present with Lean off: %s", args)
	}
	if !strings.Contains(args, "--disable-features=Translate,MediaRouter,OptimizationHints") {
		t.Errorf("background services must stay off: %s", args)
	}
}

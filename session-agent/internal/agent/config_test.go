package agent

import (
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func boundEnv(overrides map[string]string) map[string]string {
	env := map[string]string{
		"BERTH_PORT":           "7681",
		"BERTH_SECRET_SHA256":  sha256Hex("s"),
		"BERTH_SESSION_ID":     testSession,
		"BERTH_CALLBACK_URL":   "http://127.0.0.1:3000/api/v1/callbacks",
		"BERTH_CALLBACK_TOKEN": "cb",
	}
	for k, v := range overrides {
		if v == "<unset>" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return env
}

func TestLoadConfigBound(t *testing.T) {
	cfg, err := LoadConfig(envOf(boundEnv(map[string]string{
		"BERTH_LISTEN_HOST":   "127.0.0.1",
		"BERTH_OPTIONS":       `{"a":1}`,
		"BERTH_SECRET_SHA256": strings.ToUpper(sha256Hex("s")),
	})))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Binding
	if cfg.ListenHost != "127.0.0.1" || cfg.Port != 7681 || cfg.SecretSHA256 != sha256Hex("s") || b == nil ||
		b.SessionID != testSession || b.SecretSHA256 != sha256Hex("s") || b.CallbackToken != "cb" ||
		b.CallbackURL != "http://127.0.0.1:3000/api/v1/callbacks" || string(b.Options) != `{"a":1}` {
		t.Fatalf("%+v %+v", cfg, b)
	}
}

func TestLoadConfigUnbound(t *testing.T) {
	cfg, err := LoadConfig(envOf(map[string]string{"BERTH_PORT": "0", "BERTH_SECRET_SHA256": sha256Hex("pool")}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Binding != nil || cfg.ListenHost != "0.0.0.0" || cfg.Port != 0 {
		t.Fatalf("%+v", cfg)
	}
}

func TestLoadConfigRefusals(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{boundEnv(map[string]string{"BERTH_PORT": "<unset>"}), "BERTH_PORT is not set"},
		{boundEnv(map[string]string{"BERTH_PORT": "http"}), "BERTH_PORT is not an integer"},
		{boundEnv(map[string]string{"BERTH_PORT": "65536"}), "BERTH_PORT must be within 0..65535"},
		{boundEnv(map[string]string{"BERTH_PORT": "-1"}), "BERTH_PORT must be within 0..65535"},
		{boundEnv(map[string]string{"BERTH_SECRET_SHA256": "<unset>"}), "BERTH_SECRET_SHA256 must be 64 hex characters"},
		{boundEnv(map[string]string{"BERTH_SECRET_SHA256": strings.Repeat("g", 64)}), "BERTH_SECRET_SHA256 must be 64 hex characters"},
		{boundEnv(map[string]string{"BERTH_SESSION_ID": "123"}), "BERTH_SESSION_ID is not a UUID"},
		{boundEnv(map[string]string{"BERTH_CALLBACK_URL": "<unset>"}), "BERTH_CALLBACK_URL must be an http(s) URL"},
		{boundEnv(map[string]string{"BERTH_CALLBACK_URL": "ftp://x/y"}), "BERTH_CALLBACK_URL must be an http(s) URL"},
		{boundEnv(map[string]string{"BERTH_CALLBACK_URL": "http:///path"}), "BERTH_CALLBACK_URL must be an http(s) URL"},
		{boundEnv(map[string]string{"BERTH_CALLBACK_TOKEN": "<unset>"}), "BERTH_CALLBACK_TOKEN is empty"},
		{boundEnv(map[string]string{"BERTH_OPTIONS": "[1,2]"}), "BERTH_OPTIONS must be a JSON object"},
		{boundEnv(map[string]string{"BERTH_OPTIONS": "{"}), "BERTH_OPTIONS must be a JSON object"},
		{boundEnv(map[string]string{"BERTH_SESSION_ID": "<unset>"}), "need BERTH_SESSION_ID"},
	}
	for _, c := range cases {
		_, err := LoadConfig(envOf(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v: error %v, want %q", c.env, err, c.want)
		}
	}
}

func TestReporterNeedsSessionURLAndToken(t *testing.T) {
	o := defaultRunOptions()
	if reporterFromEnv(envOf(boundEnv(map[string]string{"BERTH_PORT": "x"})), "t", o) == nil {
		t.Fatal("a bad port must still be reportable")
	}
	for _, k := range []string{"BERTH_SESSION_ID", "BERTH_CALLBACK_URL", "BERTH_CALLBACK_TOKEN"} {
		if reporterFromEnv(envOf(boundEnv(map[string]string{k: "<unset>"})), "t", o) != nil {
			t.Errorf("reporter without %s", k)
		}
	}
}

func TestScrubEnv(t *testing.T) {
	got := scrubEnv([]string{"PATH=/bin", "BERTH_CALLBACK_TOKEN=x", "BERTH_=y", "XBERTH_A=1", "HOME=/h"})
	if strings.Join(got, " ") != "PATH=/bin XBERTH_A=1 HOME=/h" {
		t.Fatalf("%v", got)
	}
}

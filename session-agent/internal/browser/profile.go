package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"berth/session-agent/internal/cdp"
)

// cookieFile holds the session cookies of a persistent profile between sessions. Chromium
// writes only persistent cookies to its Cookies database; a session cookie (no expiry: most
// login sessions) would be lost with every container. 0600, inside the profile volume.
const cookieFile = "berth-session-cookies.json"

// prepareProfile returns the --user-data-dir for the session.
func prepareProfile(cfg Config, o Options) (string, error) {
	if o.Profile == "" {
		if err := os.MkdirAll(cfg.ThrowawayDir, 0o700); err != nil {
			return "", err
		}
		return cfg.ThrowawayDir, nil
	}
	// The volume must be mounted and ours; a read-only or root-owned directory would make
	// Chromium fall back to a fresh profile silently.
	if err := syscall.Access(cfg.ProfileDir, 2 /* W_OK */); err != nil {
		return "", fmt.Errorf("profile directory %s is not writable: %v", cfg.ProfileDir, err)
	}
	if err := removeStaleSingletons(cfg.ProfileDir); err != nil {
		return "", err
	}
	return cfg.ProfileDir, nil
}

// saveSessionCookies writes the default context's session cookies into the profile.
func saveSessionCookies(ctx context.Context, mux *cdp.Mux, profileDir string) (int, error) {
	raw, err := mux.Call(ctx, "", "Storage.getCookies", nil)
	if err != nil {
		return 0, err
	}
	var res struct {
		Cookies []map[string]json.RawMessage `json:"cookies"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return 0, err
	}
	var keep []map[string]json.RawMessage
	for _, c := range res.Cookies {
		if string(c["session"]) == "true" {
			keep = append(keep, c)
		}
	}
	path := filepath.Join(profileDir, cookieFile)
	if len(keep) == 0 {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return 0, err
		}
		return 0, nil
	}
	data, err := json.Marshal(keep)
	if err != nil {
		return 0, err
	}
	return len(keep), writeFileAtomic(path, data, 0o600)
}

// restoreSessionCookies loads the cookies saved by the previous session and removes the
// file: had this session been killed before saving, the next one should not resurrect
// cookies this one may have replaced (Chromium loses session cookies on a crash too).
func restoreSessionCookies(ctx context.Context, mux *cdp.Mux, profileDir string) (int, error) {
	path := filepath.Join(profileDir, cookieFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var saved []map[string]json.RawMessage
	if err := json.Unmarshal(data, &saved); err != nil {
		return 0, fmt.Errorf("%s: %w", cookieFile, err)
	}
	params := make([]map[string]json.RawMessage, 0, len(saved))
	for _, c := range saved {
		params = append(params, cookieParam(c))
	}
	if len(params) > 0 {
		if _, err := mux.Call(ctx, "", "Storage.setCookies", map[string]any{"cookies": params}); err != nil {
			return 0, err
		}
	}
	return len(params), os.Remove(path)
}

// cookieParam turns a Network.Cookie (what getCookies returns) into a Network.CookieParam.
// A host-only cookie (domain without a leading dot) is set through a url and no domain:
// giving the domain would turn it into a domain cookie sent to every subdomain too.
func cookieParam(c map[string]json.RawMessage) map[string]json.RawMessage {
	p := map[string]json.RawMessage{}
	for _, k := range []string{"name", "value", "path", "secure", "httpOnly", "sameSite", "priority",
		"sourceScheme", "sourcePort", "partitionKey"} {
		if v, ok := c[k]; ok {
			p[k] = v
		}
	}
	if string(c["session"]) != "true" {
		if v, ok := c["expires"]; ok {
			p["expires"] = v
		}
	}
	var domain, path string
	_ = json.Unmarshal(c["domain"], &domain)
	_ = json.Unmarshal(c["path"], &path)
	if domain != "" && domain[0] != '.' {
		scheme := "http"
		if string(c["secure"]) == "true" {
			scheme = "https"
		}
		if path == "" {
			path = "/"
		}
		u, _ := json.Marshal(scheme + "://" + domain + path)
		p["url"] = u
	} else if domain != "" {
		p["domain"] = c["domain"]
	}
	return p
}

// writeFileAtomic replaces path with data so a crash leaves either the old or the new file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

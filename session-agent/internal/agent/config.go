package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Binding is what attaches a container to one session: from the environment on a cold start,
// or from POST /.berth/bind for a container that started unbound (warm pool).
type Binding struct {
	SessionID     string
	SecretSHA256  string // lowercase hex sha256 of the session's upstream secret
	CallbackURL   string // may be empty after a bind: the API that bound us needs no callback
	CallbackToken string
	Options       json.RawMessage // a JSON object, or nil
}

// Config is the agent's validated environment (docs/SESSION-CONTAINERS.md).
type Config struct {
	ListenHost   string
	Port         int
	SecretSHA256 string   // the hash that opens the agent at start (session or pool secret)
	Binding      *Binding // nil: started unbound
}

var (
	uuidRE   = regexp.MustCompile(`^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// LoadConfig reads and validates the BERTH_* variables through getenv (os.Getenv in
// production). The error text is short and safe to send to the API as error_message.
func LoadConfig(getenv func(string) string) (*Config, error) {
	cfg := &Config{ListenHost: getenv("BERTH_LISTEN_HOST")}
	if cfg.ListenHost == "" {
		cfg.ListenHost = "0.0.0.0"
	}
	rawPort := getenv("BERTH_PORT")
	if rawPort == "" {
		return nil, errors.New("BERTH_PORT is not set")
	}
	port, err := strconv.Atoi(rawPort)
	if err != nil {
		return nil, errors.New("BERTH_PORT is not an integer")
	}
	if port < 0 || port > 65535 {
		return nil, errors.New("BERTH_PORT must be within 0..65535")
	}
	cfg.Port = port

	cfg.SecretSHA256, err = normalizeSHA256(getenv("BERTH_SECRET_SHA256"))
	if err != nil {
		return nil, fmt.Errorf("BERTH_SECRET_SHA256 %v", err)
	}

	b := Binding{
		SessionID:     getenv("BERTH_SESSION_ID"),
		SecretSHA256:  cfg.SecretSHA256,
		CallbackURL:   getenv("BERTH_CALLBACK_URL"),
		CallbackToken: getenv("BERTH_CALLBACK_TOKEN"),
	}
	rawOptions := getenv("BERTH_OPTIONS")
	if b.SessionID == "" {
		// Unbound (pool) start: session data arrives with /.berth/bind. Half a binding in the
		// environment is a worker bug; refuse it rather than guess.
		if b.CallbackURL != "" || b.CallbackToken != "" || rawOptions != "" {
			return nil, errors.New("BERTH_CALLBACK_URL, BERTH_CALLBACK_TOKEN and BERTH_OPTIONS need BERTH_SESSION_ID")
		}
		return cfg, nil
	}
	if !uuidRE.MatchString(b.SessionID) {
		return nil, errors.New("BERTH_SESSION_ID is not a UUID")
	}
	if err := checkCallbackURL(b.CallbackURL); err != nil {
		return nil, fmt.Errorf("BERTH_CALLBACK_URL %v", err)
	}
	if b.CallbackToken == "" {
		return nil, errors.New("BERTH_CALLBACK_TOKEN is empty")
	}
	if rawOptions != "" {
		if !isJSONObject([]byte(rawOptions)) {
			return nil, errors.New("BERTH_OPTIONS must be a JSON object")
		}
		b.Options = json.RawMessage(rawOptions)
	}
	cfg.Binding = &b
	return cfg, nil
}

// normalizeSHA256 accepts 64 hex digits (any case) and returns them lowercase.
func normalizeSHA256(s string) (string, error) {
	s = strings.ToLower(s)
	if !sha256RE.MatchString(s) {
		return "", errors.New("must be 64 hex characters")
	}
	return s, nil
}

func checkCallbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http(s) URL")
	}
	return nil
}

func isJSONObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

// reporterFromEnv returns a callback client when the environment names a session, a callback
// URL and a token good enough to report a failure with, even when the rest is invalid.
func reporterFromEnv(getenv func(string) string, kind string, o runOptions) *callbackClient {
	id, base, token := getenv("BERTH_SESSION_ID"), getenv("BERTH_CALLBACK_URL"), getenv("BERTH_CALLBACK_TOKEN")
	if !uuidRE.MatchString(id) || checkCallbackURL(base) != nil || token == "" {
		return nil
	}
	return newCallbackClient(id, base, token, kind, o)
}

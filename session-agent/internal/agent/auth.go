package agent

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// SecretHeader carries the session's upstream secret (or, before a bind, the pool secret) on
// every request. The gateway sets it; users never see it.
const SecretHeader = "X-Berth-Secret"

// secretGate holds the sha256 the secret must hash to. bind swaps it, so reads and the swap
// share a lock.
type secretGate struct {
	mu   sync.RWMutex
	want [sha256.Size]byte

	logMu      sync.Mutex // rate-limits the "refused" log line: anyone on loopback can knock
	lastLog    time.Time
	suppressed int
}

func newSecretGate(hexHash string) (*secretGate, error) {
	g := &secretGate{}
	return g, g.set(hexHash)
}

// set replaces the expected hash; the old secret stops working for every later request.
func (g *secretGate) set(hexHash string) error {
	norm, err := normalizeSHA256(hexHash)
	if err != nil {
		return err
	}
	var want [sha256.Size]byte
	hex.Decode(want[:], []byte(norm)) // cannot fail: validated above
	g.mu.Lock()
	g.want = want
	g.mu.Unlock()
	return nil
}

// ok hashes the candidate and compares in constant time: comparing hashes means neither the
// secret's length nor a matching prefix leaks through timing.
func (g *secretGate) ok(secret string) bool {
	got := sha256.Sum256([]byte(secret))
	g.mu.RLock()
	want := g.want
	g.mu.RUnlock()
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// wrap refuses every request without the right secret with 401 before next runs, so a
// WebSocket upgrade is refused before any handshake. The header is removed on success so a
// kind never forwards it (e.g. to Chromium).
func (g *secretGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := r.Header.Values(SecretHeader)
		if len(values) != 1 || !g.ok(values[0]) {
			g.logRefusal(r, len(values) == 0)
			WriteError(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		r.Header.Del(SecretHeader)
		next.ServeHTTP(w, r)
	})
}

func (g *secretGate) logRefusal(r *http.Request, missing bool) {
	g.logMu.Lock()
	defer g.logMu.Unlock()
	if time.Since(g.lastLog) < time.Second {
		g.suppressed++
		return
	}
	Log("warn", "request refused: bad or missing secret", map[string]any{
		"path": r.URL.Path, "peer": r.RemoteAddr, "missing": missing, "suppressed": g.suppressed,
	})
	g.lastLog, g.suppressed = time.Now(), 0
}

// WriteJSON answers with v as JSON. Responses are never cached: they describe live state.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// WriteError answers {"error": msg}.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, map[string]string{"error": msg})
}

package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Logs are one JSON object per line on stdout: ts, level, msg, session_id, then the caller's
// fields in key order. Never pass a secret as a field.
var logger = struct {
	mu        sync.Mutex
	out       io.Writer
	sessionID atomic.Value // string; "" logs as null (unbound)
}{out: os.Stdout}

// Log writes one log line. level is "info", "warn" or "error". Values that are errors are
// logged as their message; anything else as encoding/json renders it.
func Log(level, msg string, fields map[string]any) {
	line := make([]byte, 0, 256)
	line = append(line, `{"ts":`...)
	line = appendJSON(line, time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	line = append(line, `,"level":`...)
	line = appendJSON(line, level)
	line = append(line, `,"msg":`...)
	line = appendJSON(line, msg)
	line = append(line, `,"session_id":`...)
	if id, _ := logger.sessionID.Load().(string); id != "" {
		line = appendJSON(line, id)
	} else {
		line = append(line, "null"...)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		switch k {
		case "ts", "level", "msg", "session_id": // reserved: a duplicate key would be ambiguous
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		line = append(line, ',')
		line = appendJSON(line, k)
		line = append(line, ':')
		v := fields[k]
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		line = appendJSON(line, v)
	}
	line = append(line, '}', '\n')

	logger.mu.Lock()
	defer logger.mu.Unlock()
	_, _ = logger.out.Write(line) // nowhere to report a failing stdout
}

func appendJSON(dst []byte, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprint(v))
	}
	return append(dst, b...)
}

// setLogSession sets the session id every following line carries.
func setLogSession(id string) { logger.sessionID.Store(id) }

// httpErrorLog routes net/http's own error messages (accept errors, bad handshakes) into
// the JSON log.
type httpErrorLog struct{}

func (httpErrorLog) Write(p []byte) (int, error) {
	msg := string(p)
	for len(msg) > 0 && (msg[len(msg)-1] == '\n' || msg[len(msg)-1] == '\r') {
		msg = msg[:len(msg)-1]
	}
	Log("warn", msg, map[string]any{"source": "http"})
	return len(p), nil
}

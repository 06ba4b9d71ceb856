package terminal

import "bytes"

// scrollback keeps the last limit bytes of output for clients that (re)connect.
type scrollback struct {
	limit int
	buf   []byte // grows with output, up to about limit + one read
}

// lineSearch bounds how far past the cut append looks for a line start.
const lineSearch = 4096

func (s *scrollback) append(p []byte) {
	if s.limit <= 0 {
		return
	}
	s.buf = append(s.buf, p...)
	excess := len(s.buf) - s.limit
	if excess <= 0 {
		return
	}
	// Cut at a line start when one is near, so a replay does not begin in the middle of an
	// escape sequence or a multi-byte character.
	cut := excess
	end := excess + lineSearch
	if end > len(s.buf) {
		end = len(s.buf)
	}
	if i := bytes.IndexByte(s.buf[excess:end], '\n'); i >= 0 {
		cut = excess + i + 1
	}
	s.buf = s.buf[:copy(s.buf, s.buf[cut:])]
}

// snapshot returns a copy (the buffer keeps changing while a client sends it).
func (s *scrollback) snapshot() []byte {
	if len(s.buf) == 0 {
		return nil
	}
	return append([]byte(nil), s.buf...)
}

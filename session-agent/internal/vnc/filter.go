// Package vnc bridges noVNC's WebSocket (RFB in binary frames) to x11vnc's unix socket,
// optionally dropping every input event on the way (view-only sessions).
package vnc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// InputFilter removes input from the client-to-server half of an RFB 3.x stream. It is fed
// the client's bytes in arbitrary chunks and returns what may be forwarded to the server.
//
// Why in the bridge and not x11vnc -viewonly: x11vnc starts with the container, before a
// pooled container knows whether the session it is bound to is view-only; the bridge decides
// per connection. It is safe by construction: the server only ever receives the handshake
// and whole messages of the types below, cut at the lengths the server uses to parse them,
// so nothing the client sends can be re-framed into an input event. Any other message type,
// and any security type needing more than a single choice byte, ends the connection.
//
// Forwarded: SetPixelFormat (0), SetEncodings (2), FramebufferUpdateRequest (3),
// EnableContinuousUpdates (150), Fence (248). Dropped: KeyEvent (4), PointerEvent (5),
// ClientCutText (6), xvp (250), SetDesktopSize (251), QEMU key events (255/0).
type InputFilter struct {
	state   int
	version int    // minor version the client chose (3, 7 or 8)
	buf     []byte // bytes of an incomplete unit
}

const (
	stVersion  = iota // 12 bytes "RFB 003.00x\n"
	stSecurity        // 1 byte: chosen security type (3.7+)
	stInit            // 1 byte: ClientInit shared flag
	stMessages
)

// maxPending bounds what the filter buffers for one incomplete message (a ClientCutText can
// announce up to 2^31 bytes; we drop those without holding them).
const maxPending = 64 << 10

// ErrRefused reports a stream the filter cannot pass through safely.
var ErrRefused = errors.New("vnc: view-only stream refused")

// Write consumes client bytes and returns the bytes to forward (possibly none).
func (f *InputFilter) Write(p []byte) ([]byte, error) {
	f.buf = append(f.buf, p...)
	var out []byte
	for {
		n, keep, err := f.next()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break // need more bytes
		}
		if keep {
			out = append(out, f.buf[:n]...)
		}
		f.buf = f.buf[n:]
	}
	if len(f.buf) > maxPending {
		return nil, fmt.Errorf("%w: message too large", ErrRefused)
	}
	// Keep the pending tail in a fresh, small slice instead of the grown one.
	f.buf = append([]byte(nil), f.buf...)
	return out, nil
}

// next looks at the start of the buffer: n is the length of the next complete unit (0 when
// more bytes are needed) and keep says whether the server may see it.
func (f *InputFilter) next() (n int, keep bool, err error) {
	b := f.buf
	switch f.state {
	case stVersion:
		if len(b) < 12 {
			return 0, false, nil
		}
		major, minor, ok := parseVersion(b[:12])
		if !ok || major != 3 {
			return 0, false, fmt.Errorf("%w: bad protocol version", ErrRefused)
		}
		f.version = minor
		f.state = stSecurity
		if minor < 7 {
			f.state = stInit // 3.3: the server picks the security type
		}
		return 12, true, nil
	case stSecurity:
		if len(b) < 1 {
			return 0, false, nil
		}
		if b[0] != 1 { // None: x11vnc runs without a password behind the agent's secret
			return 0, false, fmt.Errorf("%w: security type %d", ErrRefused, b[0])
		}
		f.state = stInit
		return 1, true, nil
	case stInit:
		if len(b) < 1 {
			return 0, false, nil
		}
		f.state = stMessages
		return 1, true, nil
	}
	if len(b) < 1 {
		return 0, false, nil
	}
	size, keep, err := messageSize(b)
	if err != nil || size == 0 || len(b) < size {
		return 0, false, err
	}
	return size, keep, nil
}

// messageSize returns the total length of the client message at the start of b (0 if the
// header is not complete yet) and whether it is allowed in view-only mode.
func messageSize(b []byte) (size int, keep bool, err error) {
	need := func(n int) bool { return len(b) >= n }
	switch b[0] {
	case 0: // SetPixelFormat
		return 20, true, nil
	case 2: // SetEncodings: type, pad, u16 count, s32 each
		if !need(4) {
			return 0, false, nil
		}
		return 4 + 4*int(binary.BigEndian.Uint16(b[2:4])), true, nil
	case 3: // FramebufferUpdateRequest
		return 10, true, nil
	case 4: // KeyEvent
		return 8, false, nil
	case 5: // PointerEvent; noVNC's extended form sets the mask's top bit and adds a byte
		if !need(2) {
			return 0, false, nil
		}
		if b[1]&0x80 != 0 {
			return 7, false, nil
		}
		return 6, false, nil
	case 6: // ClientCutText: type, 3 pad, s32 length (negative: extended clipboard)
		if !need(8) {
			return 0, false, nil
		}
		l := int32(binary.BigEndian.Uint32(b[4:8]))
		if l < 0 {
			l = -l
		}
		if int(l) > maxPending {
			return 0, false, fmt.Errorf("%w: clipboard message of %d bytes", ErrRefused, l)
		}
		return 8 + int(l), false, nil
	case 150: // EnableContinuousUpdates
		return 10, true, nil
	case 248: // Fence: type, 3 pad, u32 flags, u8 length, payload
		if !need(9) {
			return 0, false, nil
		}
		return 9 + int(b[8]), true, nil
	case 250: // xvp
		return 4, false, nil
	case 251: // SetDesktopSize: 8-byte header, 16 bytes per screen
		if !need(8) {
			return 0, false, nil
		}
		return 8 + 16*int(b[6]), false, nil
	case 255: // QEMU client message; only the extended key event (sub-type 0) is known
		if !need(2) {
			return 0, false, nil
		}
		if b[1] == 0 {
			return 12, false, nil
		}
	}
	return 0, false, fmt.Errorf("%w: client message type %d", ErrRefused, b[0])
}

// parseVersion reads "RFB xxx.yyy\n".
func parseVersion(b []byte) (major, minor int, ok bool) {
	if string(b[:4]) != "RFB " || b[7] != '.' || b[11] != '\n' {
		return 0, 0, false
	}
	num := func(d []byte) (int, bool) {
		n := 0
		for _, c := range d {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	major, ok1 := num(b[4:7])
	minor, ok2 := num(b[8:11])
	return major, minor, ok1 && ok2
}

package vnc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

var handshake = []byte("RFB 003.008\n\x01\x01") // version, security None, ClientInit shared

func msgs(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	pixelFormat = append([]byte{0, 0, 0, 0}, make([]byte, 16)...)
	encodings   = []byte{2, 0, 0, 2, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0x21}
	fbRequest   = []byte{3, 1, 0, 0, 0, 0, 5, 0, 2, 208}
	keyEvent    = []byte{4, 1, 0, 0, 0, 0, 0, 0x61}
	pointer     = []byte{5, 1, 0, 10, 0, 20}
	pointerExt  = []byte{5, 0x81, 0, 10, 0, 20, 0}
	qemuKey     = []byte{255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 0x1e}
	setSize     = msgs([]byte{251, 0, 4, 0, 3, 0, 1, 0}, make([]byte, 16))
	fence       = []byte{248, 0, 0, 0, 0, 0, 0, 1, 2, 'h', 'i'}
	contUpdates = []byte{150, 1, 0, 0, 0, 0, 5, 0, 2, 208}
)

func cutText(s string, extended bool) []byte {
	b := []byte{6, 0, 0, 0, 0, 0, 0, 0}
	n := int32(len(s))
	if extended {
		n = -n
	}
	binary.BigEndian.PutUint32(b[4:], uint32(n))
	return append(b, s...)
}

func TestFilterDropsInputKeepsEverythingElse(t *testing.T) {
	in := msgs(handshake, pixelFormat, encodings, keyEvent, fbRequest, pointer, cutText("secret", false),
		pointerExt, qemuKey, cutText("\x00\x00\x00\x10", true), setSize, fence, contUpdates, fbRequest)
	want := msgs(handshake, pixelFormat, encodings, fbRequest, fence, contUpdates, fbRequest)

	// Whole stream at once, then byte by byte: the result must not depend on chunking.
	for _, chunk := range []int{len(in), 1, 3, 7} {
		var f InputFilter
		var got []byte
		for i := 0; i < len(in); i += chunk {
			end := i + chunk
			if end > len(in) {
				end = len(in)
			}
			out, err := f.Write(in[i:end])
			if err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
			got = append(got, out...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("chunk %d:\n got %v\nwant %v", chunk, got, want)
		}
	}
}

func TestFilterVersion33HasNoSecurityByte(t *testing.T) {
	var f InputFilter
	in := msgs([]byte("RFB 003.003\n\x01"), keyEvent, fbRequest)
	out, err := f.Write(in)
	if err != nil || !bytes.Equal(out, msgs([]byte("RFB 003.003\n\x01"), fbRequest)) {
		t.Fatalf("got %v, %v", out, err)
	}
}

func TestFilterRefusesWhatItCannotFrame(t *testing.T) {
	for name, in := range map[string][]byte{
		"not rfb":         []byte("GET / HTTP/1.1\r\n"),
		"vnc auth":        []byte("RFB 003.008\n\x02"),
		"unknown message": msgs(handshake, []byte{7, 0, 0, 0}),
		"unknown qemu":    msgs(handshake, []byte{255, 9, 0, 0}),
		"huge clipboard":  msgs(handshake, []byte{6, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff}),
	} {
		var f InputFilter
		if _, err := f.Write(in); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: want ErrRefused, got %v", name, err)
		}
	}
}

func TestFilterHoldsIncompleteMessages(t *testing.T) {
	var f InputFilter
	out, err := f.Write(msgs(handshake, fbRequest[:4]))
	if err != nil || !bytes.Equal(out, handshake) {
		t.Fatalf("got %v, %v", out, err)
	}
	out, err = f.Write(fbRequest[4:])
	if err != nil || !bytes.Equal(out, fbRequest) {
		t.Fatalf("got %v, %v", out, err)
	}
}

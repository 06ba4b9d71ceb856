package cdp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// MaxMessageBytes bounds one frame from Chromium. Full-page screenshots and response bodies
// are the big ones; anything larger means the stream is broken.
const MaxMessageBytes = 256 << 20

// Pipe is the agent's end of --remote-debugging-pipe: Chromium reads commands from its fd 3
// and writes replies and events to its fd 4, each frame a JSON text terminated by NUL.
type Pipe struct {
	w   *os.File // our write end of Chromium's fd 3
	r   *bufio.Reader
	rf  *os.File // our read end of Chromium's fd 4
	wmu sync.Mutex
}

// NewPipe creates both pipes. ChildFiles returns the ends to hand to Chromium as its
// ExtraFiles (becoming fds 3 and 4); close them in the parent once Chromium has started.
func NewPipe() (*Pipe, [2]*os.File, error) {
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		return nil, [2]*os.File{}, err
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		cmdR.Close()
		cmdW.Close()
		return nil, [2]*os.File{}, err
	}
	p := &Pipe{w: cmdW, rf: evR, r: bufio.NewReaderSize(evR, 64<<10)}
	return p, [2]*os.File{cmdR, evW}, nil
}

// Read returns the next frame (without the NUL). Only one goroutine may read.
func (p *Pipe) Read() ([]byte, error) {
	var msg []byte
	for {
		chunk, err := p.r.ReadSlice(0)
		if err == nil {
			if msg == nil {
				// Common case: the whole frame fits the buffer; copy once.
				return append([]byte(nil), chunk[:len(chunk)-1]...), nil
			}
			return append(msg, chunk[:len(chunk)-1]...), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if err == io.EOF && len(msg)+len(chunk) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(msg)+len(chunk) > MaxMessageBytes {
			return nil, fmt.Errorf("cdp: frame from browser exceeds %d bytes", MaxMessageBytes)
		}
		msg = append(msg, chunk...)
	}
}

// Write sends one frame. Safe for concurrent use; frames are never interleaved.
func (p *Pipe) Write(frame []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if _, err := p.w.Write(frame); err != nil {
		return err
	}
	_, err := p.w.Write([]byte{0})
	return err
}

// Close closes our ends; Chromium sees EOF on its fd 3 and the reader gets an error.
func (p *Pipe) Close() error {
	p.wmu.Lock()
	err := p.w.Close()
	p.wmu.Unlock()
	p.rf.Close()
	return err
}

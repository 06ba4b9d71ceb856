package terminal

import (
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// openPTY opens a PTY pair. The master stays in non-blocking mode, registered with Go's
// poller: reads park a goroutine instead of an OS thread, SetReadDeadline works (used to
// drain the last output of an exited shell) and Close interrupts a pending Read.
//
// Not creack/pty's Open/Setsize: they call (*os.File).Fd(), which switches the file to
// blocking mode for good and loses all three properties.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	var n uint32
	var unlock int32
	err = ioctl(master, syscall.TIOCGPTN, unsafe.Pointer(&n))
	if err == nil {
		err = ioctl(master, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock))
	}
	if err == nil {
		slave, err = os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|syscall.O_NOCTTY, 0)
	}
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// setSize sets the terminal size; the kernel sends SIGWINCH to the foreground job.
func setSize(master *os.File, cols, rows int) error {
	ws := struct{ rows, cols, x, y uint16 }{uint16(rows), uint16(cols), 0, 0}
	return ioctl(master, syscall.TIOCSWINSZ, unsafe.Pointer(&ws))
}

// ioctl runs through SyscallConn so the file keeps its non-blocking, pollable mode.
func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

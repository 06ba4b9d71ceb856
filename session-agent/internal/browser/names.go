package browser

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

const maxNameBytes = 255 // NAME_MAX on Linux file systems

var errBadName = errors.New("invalid file name: use 1-255 bytes of UTF-8 without '/', '\\', NUL, control characters or a leading dot")

// validName checks a file name taken from a URL (uploads, downloads). Anything that could
// leave the directory or hide in it is refused: path separators, "..", leading dots.
func validName(name string) error {
	if name == "" || len(name) > maxNameBytes || !utf8.ValidString(name) || name[0] == '.' {
		return errBadName
	}
	for _, r := range name {
		if r == '/' || r == '\\' || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return errBadName
		}
	}
	return nil
}

// sanitizeName turns a name a web site suggested for a download into one validName
// accepts, keeping it recognisable: offending characters become '_', leading dots go, and
// an over-long name is shortened keeping its extension.
func sanitizeName(suggested string) string {
	var b strings.Builder
	for _, r := range suggested {
		if r == '/' || r == '\\' || unicode.IsControl(r) || r == utf8.RuneError {
			r = '_'
		}
		b.WriteRune(r)
	}
	name := strings.TrimSpace(strings.TrimLeft(b.String(), "."))
	if name == "" {
		return "download"
	}
	if len(name) > 200 {
		ext := filepath.Ext(name)
		if len(ext) > 20 {
			ext = ""
		}
		name = truncateUTF8(name[:len(name)-len(ext)], 200-len(ext)) + ext
	}
	return name
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// numberedName returns "name (n).ext", the way browsers keep downloads apart.
func numberedName(name string, n int) string {
	ext := filepath.Ext(name)
	if ext == name {
		ext = ""
	}
	return strings.TrimSuffix(name, ext) + " (" + strconv.Itoa(n) + ")" + ext
}

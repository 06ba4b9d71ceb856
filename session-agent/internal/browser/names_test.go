package browser

import (
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"report.pdf", "a", "Résumé 2024 (final).docx", "x..y", strings.Repeat("a", 255)} {
		if err := validName(ok); err != nil {
			t.Errorf("%q should be accepted: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", ".hidden", "../etc/passwd", "a/b", `a\b`, "a\x00b", "a\nb", "tab\there",
		"del\x7f", "\xff\xfe", "evil\u202etxt.exe", strings.Repeat("a", 256)} {
		if err := validName(bad); err == nil {
			t.Errorf("%q must be refused", bad)
		}
	}
}

func TestSanitizeNameAlwaysYieldsAValidName(t *testing.T) {
	for in, want := range map[string]string{
		"report.pdf":       "report.pdf",
		"../../etc/passwd": "_.._etc_passwd",
		".bashrc":          "bashrc",
		"...":              "download",
		"":                 "download",
		"a\x00b\nc.txt":    "a_b_c.txt",
		"bad\xffbyte.bin":  "bad_byte.bin",
	} {
		got := sanitizeName(in)
		if got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
		if err := validName(got); err != nil {
			t.Errorf("sanitizeName(%q) = %q is not valid", in, got)
		}
	}
	long := sanitizeName(strings.Repeat("é", 300) + ".tar.gz")
	if validName(long) != nil || !strings.HasSuffix(long, ".gz") || len(long) > 200 {
		t.Errorf("long name not shortened sensibly: %d bytes, %q", len(long), long[len(long)-10:])
	}
}

func TestNumberedName(t *testing.T) {
	for in, want := range map[string]string{"a.txt": "a (2).txt", "archive": "archive (2)", ".x": ".x (2)"} {
		if got := numberedName(in, 2); got != want {
			t.Errorf("numberedName(%q) = %q, want %q", in, got, want)
		}
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBar checks the progress line: percentage, bar and sizes; redraws
// held back within the interval except the last; an unknown total shows
// the bytes alone; clear blanks the whole line.
func TestBar(t *testing.T) {
	var buf bytes.Buffer
	b := newBar(&buf, "writing x.dmp", 3<<20)
	b.set(1 << 20)
	want := "\rwriting x.dmp  33% |" + strings.Repeat("=", 10) + strings.Repeat(" ", 20) + "| (1.0 MiB/3.0 MiB)"
	if got := buf.String(); got != want {
		t.Errorf("first line %q, want %q", got, want)
	}
	buf.Reset()
	b.set(2 << 20) // within the interval: not drawn
	if buf.Len() != 0 {
		t.Errorf("drawn within the interval: %q", buf.String())
	}
	b.set(3 << 20) // the end is always drawn
	if got := buf.String(); !strings.Contains(got, "100% |"+strings.Repeat("=", 30)+"| (3.0 MiB/3.0 MiB)") {
		t.Errorf("last line %q", got)
	}
	width := b.width
	buf.Reset()
	b.clear()
	if got, want := buf.String(), "\r"+strings.Repeat(" ", width)+"\r"; got != want {
		t.Errorf("clear wrote %q, want %q", got, want)
	}

	buf.Reset()
	u := newBar(&buf, "downloading libc.so.6", -1)
	u.set(512)
	if got := buf.String(); got != "\rdownloading libc.so.6 512 B" {
		t.Errorf("unknown total: %q", got)
	}
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {5 << 30, "5.0 GiB"}} {
		if got := string(appendSize(nil, c.n)); got != c.want {
			t.Errorf("appendSize(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

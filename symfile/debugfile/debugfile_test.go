package debugfile

import (
	"bytes"
	"hash/crc32"
	"path/filepath"
	"slices"
	"testing"
)

func TestCandidates(t *testing.T) {
	abs, err := filepath.Abs("bin")
	if err != nil {
		t.Fatal(err)
	}
	byID, byLink := Candidates("bin/prog", []byte{0xab, 0xcd, 0xef}, "prog.debug", []string{"/dbg"}, []string{"/sym"})
	wantID := []string{"/dbg/.build-id/ab/cdef.debug", "/sym/.build-id/ab/cdef.debug"}
	wantLink := []string{"bin/prog.debug", "bin/.debug/prog.debug", filepath.Join("/dbg", abs, "prog.debug"), "/sym/prog.debug"}
	if !slices.Equal(byID, wantID) || !slices.Equal(byLink, wantLink) {
		t.Errorf("got %q %q\nwant %q %q", byID, byLink, wantID, wantLink)
	}
	for _, tc := range []struct {
		id   []byte
		link string
	}{{[]byte{1}, "a/b"}, {nil, "x\x00"}, {nil, ""}} {
		if i, l := Candidates("p", tc.id, tc.link, []string{"/d"}, nil); i != nil || l != nil {
			t.Errorf("Candidates(%x, %q) = %q %q, want none", tc.id, tc.link, i, l)
		}
	}
	if _, l := Candidates("", nil, "n", []string{"/d"}, []string{"/s"}); !slices.Equal(l, []string{"/s/n"}) {
		t.Errorf("no image: %q", l)
	}
}

func TestCRCMatches(t *testing.T) {
	b := []byte("debug file contents")
	r := bytes.NewReader(b)
	if !CRCMatches(r, int64(len(b)), crc32.ChecksumIEEE(b)) || CRCMatches(r, int64(len(b)), 1) {
		t.Error("CRC")
	}
}

//go:build linux

package live

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// parseStatFields is parseStat written plainly, with strings.Fields: the
// reference the tests compare parseStat with.
func parseStatFields(b []byte) (stat, bool) {
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i {
		return stat{}, false
	}
	f := strings.Fields(string(b[j+1:]))
	if len(f) < 7 || len(f[0]) != 1 {
		return stat{}, false
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	if err != nil {
		return stat{}, false
	}
	return stat{comm: string(b[i+1 : j]), state: f[0][0], flags: flags}, true
}

var statLines = []string{
	"1234 (threads) S 1 1234 1234 34816 1234 4194560 120 0 0 0 0 0 0 0 20 0 6 0 12345 1000 100 18446744073709551615\n",
	"1234 (a b) c) (d) R 1 2 3 4 5 64 0\n", // a name with spaces and parentheses
	"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0\n",
	"7 () Z 1 7 7 0 -1 4194368 0\n",          // an empty name
	"7 (x)\tt\t1\t7\t7\t0\t-1\t1077936192\n", // tabs
	"7 (x) S 1 7 7 0 -1\n",                   // too few fields
	"7 (x) SS 1 7 7 0 -1 64\n",               // a state of two letters
	"7 (x) S 1 7 7 0 -1 -64\n",               // negative flags
	"7 (x) S 1 7 7 0 -1 99999999999999999999\n",
	"7 x) S 1 7 7 0 -1 64\n",
	"7 (x S 1 7 7 0 -1 64\n",
	"",
	"(",
	")(",
}

// TestParseStat compares parseStat with the plain reference on stat lines
// real and odd.
func TestParseStat(t *testing.T) {
	for _, line := range statLines {
		got, gotOK := parseStat([]byte(line))
		want, wantOK := parseStatFields([]byte(line))
		if got != want || gotOK != wantOK {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v, %v", line, got, gotOK, want, wantOK)
		}
	}
	st, ok := parseStat([]byte(statLines[1]))
	if !ok || st.comm != "a b) c) (d" || st.state != 'R' || st.flags != 64 {
		t.Errorf("parseStat(%q) = %+v, %v", statLines[1], st, ok)
	}
}

// FuzzParseStat checks parseStat against the reference on any input (a
// thread's name is the target's to choose).
func FuzzParseStat(f *testing.F) {
	for _, line := range statLines {
		f.Add([]byte(line))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gotOK := parseStat(b)
		want, wantOK := parseStatFields(b)
		if got != want || gotOK != wantOK {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v, %v", b, got, gotOK, want, wantOK)
		}
	})
}

package main

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", 50)
	in := "a\n\r\n" + long + "\nb\r\n" + long + "c"
	lr := newLineReader(strings.NewReader(in), 20)
	type line struct {
		text    string
		tooLong bool
	}
	var got []line
	for {
		b, tooLong, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, line{string(b), tooLong})
	}
	want := []line{{"a", false}, {"", false}, {"", true}, {"b", false}, {"", true}}
	if len(got) != len(want) {
		t.Fatalf("lines %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestDecodeJSONLine(t *testing.T) {
	var v struct{ A int }
	for line, ok := range map[string]bool{
		`{"A":1}`:        true,
		`{"A":1}  `:      true,
		`{"A":1} junk`:   false,
		`{"A":1}{"A":2}`: false,
		`{"B":1}`:        false,
	} {
		if err := decodeJSONLine(line, &v); (err == nil) != ok {
			t.Errorf("decodeJSONLine(%q) = %v", line, err)
		}
	}
}

func TestBoundedWords(t *testing.T) {
	long := strings.Repeat("7", 100<<10) // longer than the scanner's buffer
	in := "0x1 " + long + "\n0x2 " + strings.Repeat("é", 200) + " 0x3"
	sc := bufio.NewScanner(strings.NewReader(in))
	sc.Buffer(make([]byte, 4<<10), 64<<10)
	var words boundedWords
	sc.Split(words.split)
	var got []string
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"0x1", strings.Repeat("7", maxWord) + "…", "0x2", strings.Repeat("é", maxWord/2) + "…", "0x3"}
	if len(got) != len(want) {
		t.Fatalf("%d words, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("word %d: %.40q (%d bytes), want %.40q", i, got[i], len(got[i]), want[i])
		}
	}
}

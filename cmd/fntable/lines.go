package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// lineReader reads the lines of a JSON-lines input. A line longer than
// max bytes is not kept: next reports it and reads on, so that every line
// still gets its answer and the lines after it are read.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its line ending, or tooLong (and no
// line) when it is longer than the bound; io.EOF after the last line.
func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	l.buf = l.buf[:0]
	n := 0
	for {
		frag, err := l.r.ReadSlice('\n')
		n += len(frag)
		if !tooLong && len(l.buf)+len(frag) > l.max+1 { // +1: the '\n'
			tooLong = true
			l.buf = l.buf[:0]
		}
		if !tooLong {
			l.buf = append(l.buf, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && n > 0 {
			err = nil // the last line has no '\n'
		}
		if err != nil {
			return nil, false, err
		}
		return bytes.TrimRight(l.buf, "\r\n"), tooLong, nil
	}
}

// decodeJSONLine decodes line, which must hold one JSON object and
// nothing else, into v; a field v does not have is an error.
func decodeJSONLine(line string, v any) error {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("text after the JSON object")
	}
	return nil
}

// maxWord bounds an address read by sym: a longer word is cut to this
// many bytes, marked, and answered with an error like any other word that
// is not an address.
const maxWord = 256

// boundedWords is a bufio.SplitFunc state that splits words as
// bufio.ScanWords does, except that a word longer than maxWord is no
// error that stops the scan: its first maxWord bytes and "…" make the
// token, and the rest of it is skipped.
type boundedWords struct {
	skipping bool // in the rest of a word that was cut
}

func (w *boundedWords) split(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if w.skipping {
		i := bytes.IndexFunc(data, unicode.IsSpace)
		if i < 0 {
			if atEOF {
				w.skipping = false
			}
			return len(data), nil, nil
		}
		w.skipping = false
		return i, nil, nil
	}
	advance, token, err = bufio.ScanWords(data, atEOF)
	if token != nil {
		if len(token) > maxWord {
			token = cutWord(token)
		}
		return advance, token, err
	}
	if advance > 0 || err != nil {
		return advance, token, err
	}
	// ScanWords wants more: cut a word that is already too long.
	start := bytes.IndexFunc(data, func(r rune) bool { return !unicode.IsSpace(r) })
	if start < 0 || len(data)-start <= maxWord {
		return 0, nil, nil
	}
	w.skipping = true
	return len(data), cutWord(data[start:]), nil
}

// cutWord returns the first maxWord bytes of w, or fewer so as not to cut
// a character, followed by "…".
func cutWord(w []byte) []byte {
	end := maxWord
	for end > 0 && !utf8.RuneStart(w[end]) {
		end--
	}
	return append(append([]byte(nil), w[:end]...), "…"...)
}

// count spells n with its noun: "1 problem", "3 problems"; plural is
// the noun's plural.
func count(n int, noun, plural string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %s", n, plural)
}

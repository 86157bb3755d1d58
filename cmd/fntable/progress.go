package main

import (
	"io"
	"strconv"
	"strings"
	"time"
)

// bar draws one line of progress on a terminal, such as
//
//	downloading libc.so.6  42% |============                  | (1.2/2.9 MB)
//
// redrawn at most ten times a second and cleared when done. (A library
// for this would cost every fntable command its package initialization at
// start-up, which is most of what short commands take.)
type bar struct {
	w     io.Writer
	desc  string
	total int64 // -1 when unknown
	last  time.Time
	width int // of the last line drawn, for clearing it
	buf   []byte
}

const (
	barCells    = 30
	barInterval = 100 * time.Millisecond
)

func newBar(w io.Writer, desc string, total int64) *bar {
	return &bar{w: w, desc: desc, total: total}
}

// set shows done bytes of the total.
func (b *bar) set(done int64) {
	now := time.Now()
	if !b.last.IsZero() && now.Sub(b.last) < barInterval && (b.total < 0 || done < b.total) {
		return
	}
	b.last = now
	l := append(b.buf[:0], '\r')
	l = append(l, b.desc...)
	if b.total > 0 {
		done = min(max(done, 0), b.total)
		pct := done * 100 / b.total
		l = append(l, ' ')
		if pct < 100 {
			l = append(l, ' ')
		}
		if pct < 10 {
			l = append(l, ' ')
		}
		l = strconv.AppendInt(l, pct, 10)
		l = append(l, "% |"...)
		n := int(done * barCells / b.total)
		l = append(l, strings.Repeat("=", n)...)
		l = append(l, strings.Repeat(" ", barCells-n)...)
		l = append(l, "| ("...)
		l = appendSize(l, done)
		l = append(l, '/')
		l = appendSize(l, b.total)
		l = append(l, ')')
	} else {
		l = append(l, ' ')
		l = appendSize(l, done)
	}
	if pad := b.width - (len(l) - 1); pad > 0 {
		l = append(l, strings.Repeat(" ", pad)...)
	}
	b.width = len(l) - 1
	b.buf = l
	b.w.Write(l)
}

// clear erases the line, leaving the cursor at its start.
func (b *bar) clear() {
	if b.width == 0 {
		return
	}
	io.WriteString(b.w, "\r"+strings.Repeat(" ", b.width)+"\r")
	b.width = 0
}

// appendSize appends n bytes in the largest unit that keeps it at one or
// more, with one decimal, in binary units: "512 B", "1.2 MiB".
func appendSize(b []byte, n int64) []byte {
	const units = "KMGT"
	if n < 1024 {
		b = strconv.AppendInt(b, n, 10)
		return append(b, " B"...)
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	b = strconv.AppendFloat(b, v, 'f', 1, 64)
	return append(b, ' ', units[u], 'i', 'B')
}

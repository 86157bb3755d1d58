package provider

import (
	"errors"
	"reflect"
	"testing"

	"github.com/fntable/fntable/unwindinfo"
)

func TestHelperAnswerRoundTrip(t *testing.T) {
	entries := []unwindinfo.RuntimeFunction{{BeginAddress: 1, EndAddress: 2, UnwindData: 3}, {BeginAddress: 4, EndAddress: 5, UnwindData: 7}}
	loaded := append([]byte(helperMagic), tagLoaded)
	for _, c := range []struct {
		name string
		b    []byte
		want helperResult
	}{
		{"answer", appendAnswer(append([]byte(nil), loaded...), answer{count: 2, entries: entries}),
			helperResult{loaded: true, done: true, answer: answer{count: 2, entries: entries}}},
		{"failure", appendAnswer(append([]byte(nil), loaded...), answer{status: 0xc0000001, count: 7, null: true}),
			helperResult{loaded: true, done: true, answer: answer{status: 0xc0000001, count: 7, null: true}}},
		{"loaded only", loaded, helperResult{loaded: true}},
		{"nothing", nil, helperResult{}},
		{"magic cut", []byte(helperMagic[:3]), helperResult{}},
		{"answer cut", appendAnswer(append([]byte(nil), loaded...), answer{count: 2, entries: entries})[:len(loaded)+20],
			helperResult{loaded: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeHelperAnswer(c.b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
	got, err := decodeHelperAnswer(appendError([]byte(helperMagic), errorf(ErrLoad, "load provider: bad\x00 file")))
	if err != nil || !got.done || !errors.Is(got.err, ErrLoad) || got.err.Error() != `load provider: bad\x00 file` {
		t.Errorf("error record: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{
		[]byte("XXXXXXXX"),
		append([]byte(helperMagic), 'Z'),
		append(appendAnswer([]byte(helperMagic), answer{}), 'L'),
		append([]byte(helperMagic), tagError, 9, 0, 0),
		append([]byte(helperMagic), tagAnswer, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0),
	} {
		if _, err := decodeHelperAnswer(bad); err == nil {
			t.Errorf("decodeHelperAnswer(%q) succeeded", bad)
		}
	}
}

func FuzzHelperAnswer(f *testing.F) {
	f.Add([]byte(helperMagic))
	f.Add(appendAnswer(append([]byte(helperMagic), tagLoaded), answer{count: 1, entries: []unwindinfo.RuntimeFunction{{BeginAddress: 1, EndAddress: 2}}}))
	f.Add(appendError([]byte(helperMagic), errorf(ErrUntrusted, "not trusted")))
	f.Add(appendAnswer([]byte(helperMagic), answer{status: 0xffffffff, count: 0xffffffff, null: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHelperAnswer(b)
		if err != nil {
			return
		}
		if len(h.answer.entries) > MaxEntries || uint32(len(h.answer.entries)) > h.answer.count {
			t.Errorf("%d entries for a count of %d", len(h.answer.entries), h.answer.count)
		}
		_ = h.answer.check()
		if h.err != nil {
			_ = h.err.Error()
		}
	})
}

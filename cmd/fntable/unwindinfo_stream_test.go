package main

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
)

// exceptionTableOffset returns the file offset of the exception directory
// of the image file at path and the number of entries it announces.
func exceptionTableOffset(t *testing.T, path string) (off int64, entries int) {
	t.Helper()
	f, err := pe.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok || len(oh.DataDirectory) <= pe.IMAGE_DIRECTORY_ENTRY_EXCEPTION {
		t.Fatalf("%s: no PE32+ exception directory", path)
	}
	dir := oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_EXCEPTION]
	for _, s := range f.Sections {
		if dir.VirtualAddress >= s.VirtualAddress && dir.VirtualAddress+dir.Size <= s.VirtualAddress+s.Size {
			return int64(s.Offset + dir.VirtualAddress - s.VirtualAddress), int(dir.Size / 12)
		}
	}
	t.Fatalf("%s: exception directory %#x in no section", path, dir.VirtualAddress)
	return 0, 0
}

// textEntries splits a text listing, without its first line, into its
// entries: each starts with a line that is not indented.
func textEntries(t *testing.T, listing string) []string {
	t.Helper()
	_, body, ok := strings.Cut(listing, "\n")
	if !ok {
		t.Fatalf("listing without a first line: %q", listing)
	}
	var entries []string
	for _, l := range strings.SplitAfter(body, "\n") {
		switch {
		case l == "":
		case !strings.HasPrefix(l, " ") || len(entries) == 0:
			entries = append(entries, l)
		default:
			entries[len(entries)-1] += l
		}
	}
	return entries
}

// jsonFunctions returns the functions of a JSON listing, each as it is
// written.
func jsonFunctions(t *testing.T, listing string) []json.RawMessage {
	t.Helper()
	var doc struct {
		ImageBase string            `json:"image_base"`
		Functions []json.RawMessage `json:"functions"`
	}
	dec := json.NewDecoder(strings.NewReader(listing))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("the listing is not a JSON document: %v", err)
	}
	if dec.More() || doc.ImageBase == "" || doc.Functions == nil {
		t.Fatalf("listing: more than one document, or no image_base or functions")
	}
	return doc.Functions
}

// TestUnwindinfoTruncated lists an MSVC image cut off inside its function
// table: the text and JSON listings hold the entries the file holds, as
// the whole image lists them, and the command fails with status 1 and
// one message that names the file, the entry and where the file ends.
func TestUnwindinfoTruncated(t *testing.T) {
	src := winetest.Testdata(t, "pe/symbolic-CrashWithException.exe")
	whole, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tableOff, announced := exceptionTableOffset(t, src)
	if announced != 41 {
		t.Fatalf("%s announces %d entries; the test expects 41", src, announced)
	}
	_, fullText, _ := fntable("unwindinfo", src)
	_, fullJSON, _ := fntable("unwindinfo", "--json", src)
	allText, allJSON := textEntries(t, fullText), jsonFunctions(t, fullJSON)
	if len(allText) != announced || len(allJSON) != announced {
		t.Fatalf("the whole image lists %d text and %d JSON entries", len(allText), len(allJSON))
	}

	for _, c := range []struct {
		entries int // whole entries the cut file holds
		partial int // bytes of the next one
	}{{20, 5}, {30, 0}, {0, 11}} {
		cut := filepath.Join(t.TempDir(), "cut.exe")
		size := tableOff + int64(12*c.entries+c.partial)
		if err := os.WriteFile(cut, whole[:size], 0o644); err != nil {
			t.Fatal(err)
		}
		wantErr := fmt.Sprintf("fntable: %s: read function table: entry %d of %d at rva %#x: ", cut, c.entries, announced, 0x6000+12*c.entries)
		t.Run(fmt.Sprintf("%d entries and %d bytes", c.entries, c.partial), func(t *testing.T) {
			for _, asJSON := range []bool{false, true} {
				args := []string{"unwindinfo", cut}
				if asJSON {
					args = append(args, "--json")
				}
				status, stdout, stderr := fntable(args...)
				if status != 1 {
					t.Errorf("%s: status %d, want 1", args, status)
				}
				if !strings.HasPrefix(stderr, wantErr) || strings.Count(stderr, "\n") != 1 ||
					!strings.Contains(stderr, fmt.Sprintf("truncated (at offset %#x)", size)) {
					t.Errorf("%s: stderr\n%s\nwant one line starting %q and saying where the file ends (%#x)", args, stderr, wantErr, size)
				}
				if strings.Contains(stderr, "peimage.") || strings.Contains(stderr, "*") || strings.Contains(stderr, "{") {
					t.Errorf("%s: stderr shows Go values or type names: %s", args, stderr)
				}
				if asJSON {
					got := jsonFunctions(t, stdout)
					if len(got) != c.entries {
						t.Fatalf("%s: %d functions listed, want %d", args, len(got), c.entries)
					}
					for i := range got {
						if !bytes.Equal(got[i], allJSON[i]) {
							t.Errorf("%s: function %d is\n%s\nthe whole image lists\n%s", args, i, got[i], allJSON[i])
						}
					}
					continue
				}
				want := fmt.Sprintf("%s: image base 0x140000000, exception directory 0x6000 size 0x1ec, %d functions\n", cut, c.entries)
				if !strings.HasPrefix(stdout, want) {
					t.Errorf("%s: first line of\n%s\nwant %q", args, stdout, want)
				}
				if got := textEntries(t, stdout); strings.Join(got, "") != strings.Join(allText[:c.entries], "") {
					t.Errorf("%s: %d entries listed:\n%s\nwant the first %d of the whole image's", args, len(got), stdout, c.entries)
				}
			}
		})
	}
}

// synthImage returns a PE32+ x64 image file with n functions of 16
// bytes, each with its own UNWIND_INFO of 8 bytes (an ALLOC_SMALL whose
// size depends on the index), in .xdata, and the table in .pdata. It also
// returns the file offset of the last UNWIND_INFO.
func synthImage(n int) (image []byte, lastInfo int) {
	const fileAlign, sectAlign = 0x200, 0x1000
	up := func(v, a int) int { return (v + a - 1) &^ (a - 1) }
	le := binary.LittleEndian
	xdataRVA := sectAlign + up(16*n, sectAlign)
	pdataRVA := xdataRVA + up(8*n, sectAlign)
	xdata := make([]byte, up(8*n, fileAlign))
	pdata := make([]byte, up(12*n, fileAlign))
	for i := range n {
		// v1, prolog 4, 1 code: 0x04 ALLOC_SMALL 8*(1+i%16).
		copy(xdata[8*i:], []byte{0x01, 0x04, 0x01, 0x00, 0x04, byte(i%16)<<4 | 2})
		le.PutUint32(pdata[12*i:], uint32(sectAlign+16*i))
		le.PutUint32(pdata[12*i+4:], uint32(sectAlign+16*i+16))
		le.PutUint32(pdata[12*i+8:], uint32(xdataRVA+8*i))
	}
	h := make([]byte, fileAlign)
	h[0], h[1] = 'M', 'Z'
	le.PutUint32(h[0x3c:], 0x40)
	copy(h[0x40:], "PE\x00\x00")
	le.PutUint16(h[0x44:], 0x8664) // IMAGE_FILE_MACHINE_AMD64
	le.PutUint16(h[0x46:], 3)      // sections
	le.PutUint16(h[0x54:], 0xf0)   // SizeOfOptionalHeader
	le.PutUint16(h[0x56:], 0x22)   // EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE
	opt := h[0x58:]
	le.PutUint16(opt[0:], 0x20b) // PE32+
	le.PutUint64(opt[24:], 0x140000000)
	le.PutUint32(opt[32:], sectAlign)
	le.PutUint32(opt[36:], fileAlign)
	le.PutUint32(opt[56:], uint32(pdataRVA+up(12*n, sectAlign))) // SizeOfImage
	le.PutUint32(opt[60:], fileAlign)                            // SizeOfHeaders
	le.PutUint32(opt[108:], 16)                                  // NumberOfRvaAndSizes
	le.PutUint32(opt[112+8*3:], uint32(pdataRVA))                // exception directory
	le.PutUint32(opt[116+8*3:], uint32(12*n))
	for i, s := range []struct {
		name          string
		rva, vsize    int
		off, rawSize  int
		characterists uint32
	}{
		{".text", sectAlign, 16 * n, 0, 0, 0x60000020},
		{".xdata", xdataRVA, 8 * n, fileAlign, len(xdata), 0x40000040},
		{".pdata", pdataRVA, 12 * n, fileAlign + len(xdata), len(pdata), 0x40000040},
	} {
		sh := h[0x148+40*i:]
		copy(sh, s.name)
		le.PutUint32(sh[8:], uint32(s.vsize))
		le.PutUint32(sh[12:], uint32(s.rva))
		le.PutUint32(sh[16:], uint32(s.rawSize))
		le.PutUint32(sh[20:], uint32(s.off))
		le.PutUint32(sh[36:], s.characterists)
	}
	image = append(append(h, xdata...), pdata...)
	return image, fileAlign + 8*(n-1)
}

// writeSynthImage writes synthImage(n) to a temporary file.
func writeSynthImage(t *testing.T, n int) (path string, lastInfo int) {
	t.Helper()
	b, lastInfo := synthImage(n)
	path = filepath.Join(t.TempDir(), fmt.Sprintf("synth-%d.exe", n))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, lastInfo
}

// heapWriter discards what is written to it and records the largest live
// heap seen at a write (after a collection), and the bytes and writes. It
// looks at the heap at the first write and then once every
// heapSampleBytes written, not at every write of a listing written in
// small pieces.
type heapWriter struct {
	peak    uint64
	bytes   int
	writes  int
	sampled int // bytes at the last look
}

const heapSampleBytes = 64 << 10

func (w *heapWriter) Write(p []byte) (int, error) {
	if w.writes == 0 || w.bytes+len(p)-w.sampled >= heapSampleBytes {
		w.peak = max(w.peak, liveHeap())
		w.sampled = w.bytes + len(p)
	}
	w.writes++
	w.bytes += len(p)
	return len(p), nil
}

// liveHeap returns the bytes of live heap objects, after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestUnwindinfoMemoryBounded lists synthetic images of n and 10n entries
// and checks that the live heap while the listing is written does not
// grow with the number of entries: a listing built whole before it is
// written holds kilobytes an entry, the function table alone 12 bytes an
// entry and its index more.
func TestUnwindinfoMemoryBounded(t *testing.T) {
	const n = 3000
	const margin = 256 << 10 // less than 12 bytes for each of the 9n more entries
	for _, mode := range [][]string{{"--json"}, nil} {
		t.Run(strings.Join(append([]string{"unwindinfo"}, mode...), " "), func(t *testing.T) {
			var growth [2]uint64
			for k, entries := range []int{n, 10 * n} {
				path, _ := writeSynthImage(t, entries)
				args := append([]string{"unwindinfo", path}, mode...)
				base := liveHeap()
				w := &heapWriter{}
				var stderr bytes.Buffer
				if status := run(args, w, &stderr); status != 0 || stderr.Len() != 0 {
					t.Fatalf("%d entries: status %d, stderr %s", entries, status, stderr.String())
				}
				if w.peak > base {
					growth[k] = w.peak - base
				}
				t.Logf("%d entries: %d bytes in %d writes; live heap at most %d bytes above the %d before",
					entries, w.bytes, w.writes, growth[k], base)
				if w.bytes < 30*entries {
					t.Fatalf("%d entries: only %d bytes written", entries, w.bytes)
				}
			}
			if growth[1] > growth[0]+margin {
				t.Errorf("the live heap grows with the table: %d bytes above the start for %d entries, %d for %d",
					growth[0], n, growth[1], 10*n)
			}
		})
	}
}

// TestUnwindinfoIncremental checks that the listing is written while the
// image is read: when the first bytes reach standard output, the test
// changes the last entry's UNWIND_INFO in the file, and the listing shows
// the change. A listing made whole before it is written shows the
// original.
func TestUnwindinfoIncremental(t *testing.T) {
	const n = 30000
	for _, c := range []struct {
		args []string
		orig string // how the last entry's code reads in the file written
		want string // and after the change
	}{
		{[]string{"--json"}, `"size": 128`, `"size": 8`},
		{nil, "ALLOC_SMALL 0x80\n", "ALLOC_SMALL 0x8\n"},
	} {
		path, lastInfo := writeSynthImage(t, n)
		// The last entry, n-1, has ALLOC_SMALL 8*(1+(n-1)%16) = 128.
		change := func() {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{0x02}, int64(lastInfo+5)); err != nil { // ALLOC_SMALL 8
				t.Error(err)
			}
		}
		var stdout bytes.Buffer
		w := &recordWriter{w: &stdout, first: change}
		var stderr bytes.Buffer
		args := append([]string{"unwindinfo", path}, c.args...)
		if status := run(args, w, &stderr); status != 0 {
			t.Fatalf("%s: status %d: %s", args, status, stderr.String())
		}
		out := stdout.String()
		last := out[max(strings.LastIndex(out, fmt.Sprintf("%#x", 0x1000+16*(n-1))), 0):] // the last entry
		switch {
		case strings.Contains(last, c.want):
			t.Logf("%s: %d writes; the last entry shows the change", args, w.writes)
		case strings.Contains(last, c.orig):
			t.Errorf("%s: the last entry was read before the first byte was written (%d writes):\n%s", args, w.writes, last)
		default:
			t.Errorf("%s: the last entry reads\n%s", args, last)
		}
	}
}

// recordWriter writes to w, calling first before the first write.
type recordWriter struct {
	w      *bytes.Buffer
	first  func()
	writes int
}

func (w *recordWriter) Write(p []byte) (int, error) {
	if w.writes == 0 {
		w.first()
	}
	w.writes++
	return w.w.Write(p)
}

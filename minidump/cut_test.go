package minidump

import (
	"slices"
	"testing"
)

// threadEntry is a MINIDUMP_THREAD with id and no stack or context.
func threadEntry(id uint32) []byte {
	return le(id, 0, 0, 0, uint64(0), uint64(0), 0, 0, 0, 0)
}

// threadIDs returns the ThreadIds of threads.
func threadIDs(threads []Thread) []uint32 {
	var ids []uint32
	for _, t := range threads {
		ids = append(ids, t.ThreadId)
	}
	return ids
}

// TestListsCutShort: a list stream that the file or its own count cuts
// short gives the entries before the cut, with a truncation error.
func TestListsCutShort(t *testing.T) {
	entries := slices.Concat(threadEntry(1), threadEntry(2), threadEntry(3))
	for _, tc := range []struct {
		name string
		list []byte // the stream as the directory sizes it
		keep int    // bytes of it the file holds
		want []uint32
	}{
		{"whole", le(3, entries), -1, []uint32{1, 2, 3}},
		{"file cut in the third entry", le(3, entries), 4 + 2*threadSize + 10, []uint32{1, 2}},
		{"file cut in the first entry", le(3, entries), 4 + 10, nil},
		{"file cut in the count", le(3, entries), 2, nil},
		{"padded, file cut in the third entry", le(3, 0, entries), 8 + 2*threadSize + 10, []uint32{1, 2}},
		{"padded, file cut after the padding", le(3, 0, entries), 8, nil},
		{"count too large", le(5, entries), -1, []uint32{1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSynth(1)
			rva := s.add(0, ThreadListStream, tc.list)
			b := s.bytes()
			if tc.keep >= 0 {
				b = b[:int(rva)+tc.keep]
			}
			f := open(t, b)
			threads, err := f.Threads()
			if !slices.Equal(threadIDs(threads), tc.want) {
				t.Errorf("Threads = %v, want %v (%v)", threadIDs(threads), tc.want, err)
			}
			whole := len(tc.want) == 3 && tc.keep < 0 && tc.name == "whole"
			if whole != (err == nil) || !whole && !isMalformed(err, true) {
				t.Errorf("error %v", err)
			}
			// The memory does not report the thread list's error.
			if _, err := f.Memory(); err != nil {
				t.Errorf("Memory: %v", err)
			}
		})
	}
}

// TestOtherListsCutShort: the module list, the memory list and the thread
// names keep the entries before the point where the file ends.
func TestOtherListsCutShort(t *testing.T) {
	t.Run("modules", func(t *testing.T) {
		mod := func(base uint64) []byte { return le(base, 0x1000, 0, 0, 0, make([]byte, moduleSize-24)) }
		s := newSynth(1)
		rva := s.add(0, ModuleListStream, le(2, mod(0x10000), mod(0x20000)))
		f := open(t, s.bytes()[:int(rva)+4+moduleSize+1])
		mods, err := f.Modules()
		if len(mods) != 1 || mods[0].BaseOfImage != 0x10000 || !isMalformed(err, true) {
			t.Errorf("Modules = %+v, %v", mods, err)
		}
	})
	t.Run("memory list", func(t *testing.T) {
		s := newSynth(1)
		rva := s.add(0, MemoryListStream, le(2, uint64(0x1000), 0, 0, uint64(0x2000), 0, 0))
		f := open(t, s.bytes()[:int(rva)+4+memoryDescriptorSize+3])
		l, err := f.MemoryList()
		if len(l) != 1 || l[0].StartOfMemoryRange != 0x1000 || !isMalformed(err, true) {
			t.Errorf("MemoryList = %+v, %v", l, err)
		}
		if _, err := f.Memory(); !isMalformed(err, true) {
			t.Errorf("Memory: %v, want the memory list's truncation", err)
		}
	})
	t.Run("thread names", func(t *testing.T) {
		s := newSynth(1)
		name := s.blob(mdString("main"))
		rva := s.add(0, ThreadNamesStream, le(2, 7, uint64(name), 8, uint64(name)))
		f := open(t, s.bytes()[:int(rva)+4+threadNameSize+5])
		names, err := f.ThreadNames()
		if len(names) != 1 || names[0].ThreadId != 7 || names[0].Name != "main" || !isMalformed(err, true) {
			t.Errorf("ThreadNames = %+v, %v", names, err)
		}
	})
}

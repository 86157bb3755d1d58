package unwindinfo

import "testing"

func TestSearchFind(t *testing.T) {
	fns := []RuntimeFunction{{0x10, 0x20, 0}, {0x20, 0x30, 0}, {0x40, 0x50, 0}}
	for _, c := range []struct {
		rva    uint32
		search int
		find   int
		ok     bool
	}{
		{0x0f, 0, 0, false}, {0x10, 1, 0, true}, {0x1f, 1, 0, true}, {0x20, 2, 1, true},
		{0x35, 2, 0, false}, {0x4f, 3, 2, true}, {0x50, 3, 0, false},
	} {
		if got := Search(fns, c.rva); got != c.search {
			t.Errorf("Search(%#x) = %d, want %d", c.rva, got, c.search)
		}
		if i, ok := Find(fns, c.rva); ok != c.ok || ok && i != c.find {
			t.Errorf("Find(%#x) = %d, %v", c.rva, i, ok)
		}
	}
	if _, ok := Find(nil, 0); ok {
		t.Error("Find in an empty table")
	}
}

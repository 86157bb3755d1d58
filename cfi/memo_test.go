package cfi

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// TestMemo: a value is computed once per key and File, whatever the
// number of goroutines asking, and a Cache hands the same File, and so
// the same values, to its next users.
func TestMemo(t *testing.T) {
	type keyA struct{}
	type keyB struct{}
	var c Cache
	defer c.Close()
	f, err := c.Open(libcPath)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var wg sync.WaitGroup
	got := make([]any, 16)
	for i := range got {
		wg.Go(func() {
			got[i] = f.Memo(keyA{}, func() any { calls.Add(1); return new(int) })
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("computed %d times, want 1", n)
	}
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("goroutine %d got another value", i)
		}
	}
	if v := f.Memo(keyB{}, func() any { return "b" }); v != "b" {
		t.Fatalf("key B: %v", v)
	}
	f2, err := c.Open(libcPath)
	if err != nil {
		t.Fatal(err)
	}
	if v := f2.Memo(keyA{}, func() any { t.Fatal("computed again"); return nil }); v != got[0] {
		t.Fatal("the cached File lost its value")
	}
}

// TestHasSection: a Go binary (this test) has .gopclntab, libc has not;
// both have .text.
func TestHasSection(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path  string
		goTab bool
	}{{exe, true}, {libcPath, false}} {
		f, err := Open(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.HasSection(".gopclntab"); got != c.goTab {
			t.Errorf("%s: HasSection(.gopclntab) = %v, want %v", c.path, got, c.goTab)
		}
		if !f.HasSection(".text") || f.HasSection(".no-such-section") {
			t.Errorf("%s: .text or a made-up name answered wrongly", c.path)
		}
		f.Close()
	}
}

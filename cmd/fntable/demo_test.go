package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestDemo runs the demo over several seeds and depths: every frame must
// unwind exactly (the demo checks each against the registers it laid out
// and fails otherwise) and be named.
func TestDemo(t *testing.T) {
	for _, c := range []struct{ seed, depth, functions int }{
		{1, 8, 64}, {2, 1, 2}, {3, 32, 200}, {4, 100, 500}, {5, 16, 16},
	} {
		status, out, errOut := fntable("demo", "--seed", fmt.Sprint(c.seed), "--depth", fmt.Sprint(c.depth), "--functions", fmt.Sprint(c.functions))
		if status != 0 {
			t.Fatalf("demo %+v: status %d: %s\n%s", c, status, errOut, out)
		}
		if want := fmt.Sprintf("All %d frames unwound to exactly", c.depth); !strings.Contains(out, want) {
			t.Errorf("demo %+v: no %q in\n%s", c, want, out)
		}
		if n := strings.Count(out, "jit!jit_fn_"); n != c.depth {
			t.Errorf("demo %+v: %d symbolized frames, want %d", c, n, c.depth)
		}
	}
	if status, _, _ := fntable("demo", "--depth", "0"); status != 2 {
		t.Errorf("demo --depth 0: status %d, want 2", status)
	}
}

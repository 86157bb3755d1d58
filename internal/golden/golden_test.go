package golden

import "testing"

func TestDiff(t *testing.T) {
	got := Diff("a\nb\nc", "a\nc\nd")
	if got != "-b\n+d\n" {
		t.Fatalf("Diff = %q", got)
	}
	if Diff("x", "x") != "" {
		t.Fatal("equal inputs differ")
	}
}

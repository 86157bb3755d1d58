package testenv

import "testing"

func TestTool(t *testing.T) {
	if p := Tool(t, "go"); p == "" {
		t.Error("Tool(go) returned no path")
	}
}

package main

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestZZStackMem(t *testing.T) {
	runtime.MemProfileRate = 1
	status, out, _ := fntable(strings.Fields(os.Getenv("ZZARGS"))...)
	t.Log(status, len(out))
}

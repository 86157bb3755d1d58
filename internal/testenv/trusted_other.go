//go:build !unix

package testenv

import "testing"

// TrustedDir is for provider libraries, which are loaded on Linux only.
func TrustedDir(t testing.TB) string {
	t.Helper()
	t.Skip("provider libraries are loaded on Linux only")
	return ""
}

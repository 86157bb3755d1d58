//go:build unix

package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TrustedDir returns a new directory that a provider trust list accepts
// libraries from: it and every directory above it are owned by root or
// the invoking user and writable by no one else, which excludes the
// world-writable temporary directories (/tmp). It is made under the
// user's cache directory (~/.cache/fntable-test) and removed when the
// test ends. When no such directory can be made, the test is skipped (or
// fails under CI).
func TrustedDir(t testing.TB) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err == nil {
		base = filepath.Join(base, "fntable-test")
		err = os.MkdirAll(base, 0o755)
	}
	if err == nil {
		err = os.Chmod(base, 0o755) // MkdirAll obeys the umask
	}
	if err == nil {
		err = safeAncestors(base)
	}
	if err != nil {
		Unavailable(t, "needs a directory no other user can write to: %v", err)
	}
	dir, err := os.MkdirTemp(base, "trusted-")
	if err != nil {
		Unavailable(t, "needs a directory no other user can write to: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// safeAncestors checks that dir and the directories above it are owned by
// root or this user and not writable by group or others.
func safeAncestors(dir string) error {
	uid := uint32(os.Getuid())
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner information", d)
		}
		if (st.Uid != 0 && st.Uid != uid) || fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s is writable by other users (mode %v, owner %d)", d, fi.Mode(), st.Uid)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

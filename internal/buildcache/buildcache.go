// Package buildcache keeps what tests build (test programs, split debug
// files) in the user's cache directory, keyed by a hash of what the build
// depends on, so that a second test run, or a second test process of the
// same run, builds nothing again.
package buildcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
)

// builds memoizes build outcomes in this process by cache directory.
var builds sync.Map // string → *buildOnce

type buildOnce struct {
	once sync.Once
	err  error
}

// Dir returns the directory os.UserCacheDir()/fntable/area/name-HASH,
// where HASH is a hash of key (the sources, commands and tool versions
// the build depends on). When the directory is not complete yet, Dir runs
// build in a fresh temporary directory beside it and renames that into
// place. Another process racing to build the same entry wins or loses the
// rename; either way the entry is complete. A failed build fails t.
func Dir(t testing.TB, area, name string, key []string, build func(dir string) error) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		testenv.Unavailable(t, "needs a user cache directory: %v", err)
	}
	root := filepath.Join(base, "fntable", area)
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatalf("%s: %v", area, err)
	}
	h := sha256.New()
	for _, k := range key {
		fmt.Fprintf(h, "%d:%s\n", len(k), k)
	}
	final := filepath.Join(root, name+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	v, _ := builds.LoadOrStore(final, &buildOnce{})
	b := v.(*buildOnce)
	b.once.Do(func() {
		if _, err := os.Stat(filepath.Join(final, ".complete")); err == nil {
			return
		}
		tmp, err := os.MkdirTemp(root, ".tmp-"+name+"-")
		if err != nil {
			b.err = err
			return
		}
		defer os.RemoveAll(tmp)
		if err := build(tmp); err != nil {
			b.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
			b.err = err
			return
		}
		if err := os.Rename(tmp, final); err != nil {
			// Another process made it first (the rename of a directory
			// onto a non-empty one fails); use theirs.
			if _, serr := os.Stat(filepath.Join(final, ".complete")); serr != nil {
				b.err = fmt.Errorf("rename %s: %w", final, err)
			}
		}
	})
	if b.err != nil {
		t.Fatalf("%s: build %s: %v", area, name, b.err)
	}
	return final
}

// Run runs name with args in dir, with env added to the environment, for
// a build step; its error quotes the end of the command's output.
func Run(dir string, env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := out.String()
		if len(msg) > 4096 {
			msg = msg[len(msg)-4096:]
		}
		return fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, msg)
	}
	return nil
}

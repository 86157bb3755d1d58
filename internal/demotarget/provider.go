package demotarget

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/fntable/fntable/libfntable/include"
)

// ProviderSource is the C source of the example provider library
// (provider.c): an OutOfProcessFunctionTableCallback that resolves the
// target's callback table from its JIT metadata block.
//
//go:embed provider.c
var ProviderSource []byte

// ProviderLibrary is the file name BuildProvider gives the library, with a
// hash of its source, headers and compiler before ".so":
// libfntdemo_provider-0123456789ab.so.
const ProviderLibrary = "libfntdemo_provider.so"

// ErrNoCompiler is returned (wrapped) when no C compiler is on PATH.
var ErrNoCompiler = errors.New("no C compiler (cc or gcc) on PATH")

// Compiler returns the path of the C compiler BuildProvider uses: cc, or
// else gcc, from PATH. The error wraps [ErrNoCompiler].
func Compiler() (string, error) {
	for _, name := range []string{"cc", "gcc"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("build the example provider: %w", ErrNoCompiler)
}

// BuildProvider writes the example provider's source and the fntable
// headers into dir and compiles them into a shared library there
// (cc -shared -fPIC -O2 -Wall -Werror), unless the same library is there
// already. It returns the library's absolute path. Without a C compiler
// the error wraps [ErrNoCompiler].
func BuildProvider(dir string) (path string, err error) {
	cc, err := Compiler()
	if err != nil {
		return "", err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", fmt.Errorf("build the example provider: %w", err)
	}
	src := filepath.Join(dir, "provider.c")
	if err := os.WriteFile(src, ProviderSource, 0o644); err != nil {
		return "", fmt.Errorf("build the example provider: %w", err)
	}
	err = fs.WalkDir(include.Headers, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(include.Headers, name)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("build the example provider: write the headers: %w", err)
	}
	// The library's name carries a hash of what it is built from: an
	// existing one is reused, and a changed source gets a new file, never
	// written over one a process may have loaded (the provider loader
	// also refuses a library that changed since it loaded it).
	h := sha256.New()
	h.Write([]byte(cc))
	h.Write(ProviderSource)
	fs.WalkDir(include.Headers, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(include.Headers, name)
			h.Write([]byte(name))
			h.Write(b)
		}
		return nil
	})
	lib := filepath.Join(dir, fmt.Sprintf("%s-%x.so", strings.TrimSuffix(ProviderLibrary, ".so"), h.Sum(nil)[:6]))
	if fi, err := os.Stat(lib); err == nil && fi.Mode().IsRegular() {
		return lib, nil
	}
	tmp, err := os.CreateTemp(dir, ProviderLibrary+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("build the example provider: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command(cc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-I"+dir, "-o", tmp.Name(), src)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the example provider: %s: %v\n%s", filepath.Base(cc), err, out.Bytes())
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", fmt.Errorf("build the example provider: %w", err)
	}
	if err := os.Rename(tmp.Name(), lib); err != nil {
		return "", fmt.Errorf("build the example provider: %w", err)
	}
	return lib, nil
}

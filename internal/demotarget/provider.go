package demotarget

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/fntable/fntable/libfntable/include"
)

// ProviderSource is the C source of the example provider library
// (provider.c): an OutOfProcessFunctionTableCallback that resolves the
// target's callback table from its JIT metadata block.
//
//go:embed provider.c
var ProviderSource []byte

// ProviderLibrary is the file name BuildProvider gives the library.
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
// (cc -shared -fPIC -O2 -Wall -Werror). It returns the library's absolute
// path. Without a C compiler the error wraps [ErrNoCompiler].
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
	lib := filepath.Join(dir, ProviderLibrary)
	cmd := exec.Command(cc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-I"+dir, "-o", lib, src)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the example provider: %s: %v\n%s", filepath.Base(cc), err, out.Bytes())
	}
	return lib, nil
}

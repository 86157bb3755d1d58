package minidump

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tempFile is the file a dump is written to before it is given its name.
// Where the system allows (Linux, on a file system with O_TMPFILE, with
// /proc mounted), it has no name at all until it is complete: a writer
// killed, by SIGKILL or a power cut as well as by an error, leaves nothing
// behind, unless it replaces a file and dies in the instant between the
// link and the rename of publish. Elsewhere it is a hidden file next to
// the final one, removed on error.
type tempFile struct {
	*os.File
	dir  string
	base string
	name string // its path, or "" while it has none
}

// createTemp creates the temporary file for a dump to be named base in
// dir, readable by its owner only.
func createTemp(dir, base string) (*tempFile, error) {
	t := &tempFile{dir: dir, base: base}
	if f := openUnnamed(dir, base); f != nil {
		t.File = f
		return t, nil
	}
	f, err := os.CreateTemp(dir, tempPattern(base))
	if err != nil {
		return nil, err
	}
	t.File, t.name = f, f.Name()
	return t, nil
}

// publish gives the complete, synced file the name name, replacing what
// was there, and closes it. An unnamed file is linked as name straight
// away when nothing has that name: one operation on the directory, and
// no temporary name ever. Otherwise it is first linked into the directory
// under a temporary name (a rename is what replaces a file atomically); if
// the system refuses the link after all (createTemp checked that it should
// not), it is copied to a named temporary file instead, which needs its
// space twice.
func (t *tempFile) publish(name string) error {
	if t.name == "" {
		if err := linkAs(t.File, name); err == nil {
			if err := t.File.Close(); err != nil {
				os.Remove(name)
				return err
			}
			return nil
		}
		tmp, err := linkUnnamed(t.File, t.dir, t.base)
		if err != nil {
			if tmp, err = t.copyNamed(); err != nil {
				return err
			}
		}
		t.name = tmp
	}
	if err := t.File.Close(); err != nil {
		return err
	}
	if testHookRename != nil {
		testHookRename()
	}
	if err := os.Rename(t.name, name); err != nil {
		return err
	}
	t.name = ""
	return nil
}

// testHookRename, if set, is called before publish renames a file.
var testHookRename func()

// discard closes the file and removes it if it has a name.
func (t *tempFile) discard() {
	t.File.Close()
	if t.name != "" {
		os.Remove(t.name)
	}
}

// copyNamed copies the unnamed file to a new named temporary file, synced,
// and returns its name.
func (t *tempFile) copyNamed() (string, error) {
	f, err := os.CreateTemp(t.dir, tempPattern(t.base))
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := t.File.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if _, err := io.Copy(f, t.File); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	ok = true
	return f.Name(), nil
}

// tempPattern is the os.CreateTemp pattern of the hidden temporary names
// of a dump to be named base.
func tempPattern(base string) string { return "." + base + ".tmp*" }

// linkUnnamed links the unnamed file f into dir under a fresh temporary
// name and returns that name.
func linkUnnamed(f *os.File, dir, base string) (string, error) {
	var err error
	for range 100 {
		name := tempName(dir, base, rand.Uint32())
		err = linkAs(f, name)
		if !errors.Is(err, fs.ErrExist) {
			if err != nil {
				return "", err
			}
			return name, nil
		}
	}
	return "", err
}

// tempName returns a hidden temporary name for base in dir, as
// os.CreateTemp makes them with tempPattern, with n for the random part.
func tempName(dir, base string, n uint32) string {
	return filepath.Join(dir, strings.Replace(tempPattern(base), "*", strconv.FormatUint(uint64(n), 10), 1))
}

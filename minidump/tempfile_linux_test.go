package minidump

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// unnamedOK skips the test when dir's file system cannot make unnamed
// files (WriteFile then uses a named temporary file, tested elsewhere).
func unnamedOK(t *testing.T, dir string) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Skipf("%s cannot hold unnamed files (O_TMPFILE): %v", dir, err)
	}
	unix.Close(fd)
}

// TestWriteFileUnnamed looks at the directory while the dump is being
// written: it holds nothing until the dump is complete.
func TestWriteFileUnnamed(t *testing.T) {
	dir := t.TempDir()
	unnamedOK(t, dir)
	c, _ := sampleContent()
	var seen []string
	read := c.Memory[1].Read
	c.Memory[1].Read = func(p []byte, addr uint64) (int, error) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			seen = append(seen, e.Name())
		}
		return read(p, addr)
	}
	name := filepath.Join(dir, "a.dmp")
	if err := WriteFile(name, c, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if seen != nil {
		t.Errorf("while the dump was written, the directory held %v", seen)
	}
	checkWritten(t, name, c)
}

// TestWriteFileFallbacks writes where no unnamed file can be made, and
// where one can be made but not linked: the dump is complete, and nothing
// else is left, after success and after failure.
func TestWriteFileFallbacks(t *testing.T) {
	for _, tc := range []struct {
		name              string
		noUnnamed, noLink bool
	}{{"named", true, false}, {"copied", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			testNoUnnamed, testNoLink = tc.noUnnamed, tc.noLink
			defer func() { testNoUnnamed, testNoLink = false, false }()
			dir := t.TempDir()
			c, _ := sampleContent()
			name := filepath.Join(dir, "a.dmp")
			if err := WriteFile(name, c, WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			checkWritten(t, name, c)

			// A source that fails: no new file, nothing left.
			c.Memory[0].Read = func(p []byte, addr uint64) (int, error) { return 0, errors.New("gone") }
			if err := WriteFile(filepath.Join(dir, "b.dmp"), c, WriteOptions{}); err == nil {
				t.Fatal("WriteFile with a failing source succeeded")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("the directory holds %v", ents)
			}
		})
	}
}

// checkWritten checks that the directory of name holds name alone, with
// mode 0600 and the contents of c.
func checkWritten(t *testing.T, name string, c *Content) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Dir(name))
	if len(ents) != 1 || ents[0].Name() != filepath.Base(name) {
		t.Errorf("the directory holds %v", ents)
	}
	if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the dump's mode: %v %v", fi, err)
	}
	f, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkContent(t, f, c, false)
}

// killedWriterEnv makes the test binary a writer that TestWriteFileKilled
// kills: it writes a dump into the directory it names and stops in the
// middle, after saying so on its standard output.
const killedWriterEnv = "FNTABLE_MINIDUMP_KILLED_WRITER"

// TestWriteFileKilled kills a process with SIGKILL while it writes a dump:
// nothing is left in the directory.
func TestWriteFileKilled(t *testing.T) {
	if dir := os.Getenv(killedWriterEnv); dir != "" {
		c, _ := sampleContent()
		c.Memory[1].Read = func(p []byte, addr uint64) (int, error) {
			fmt.Println("writing")
			time.Sleep(time.Hour)
			return 0, nil
		}
		WriteFile(filepath.Join(dir, "a.dmp"), c, WriteOptions{})
		return
	}
	dir := t.TempDir()
	unnamedOK(t, dir)
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriteFileKilled$")
	cmd.Env = append(os.Environ(), killedWriterEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "writing" {
		t.Fatalf("the writer said %q", sc.Text())
	}
	cmd.Process.Kill()
	cmd.Wait()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a writer killed in the middle left %v", ents)
	}
}

// TestWriteFileReplaces writes a dump under a new name and then over an
// existing file: the first is linked as its name at once, the second
// replaces the file (through a temporary name and a rename), and in both
// the directory holds the dump alone, complete.
func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	unnamedOK(t, dir)
	renames := 0
	testHookRename = func() { renames++ }
	defer func() { testHookRename = nil }()
	name := filepath.Join(dir, "a.dmp")
	// write writes c as the dump, checks it and the renames so far, and
	// returns the file's status.
	write := func(c *Content, wantRenames int, what string) unix.Stat_t {
		t.Helper()
		if err := WriteFile(name, c, WriteOptions{}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		checkWritten(t, name, c)
		if renames != wantRenames {
			t.Errorf("%s: %d renames, want %d", what, renames, wantRenames)
		}
		var st unix.Stat_t
		if err := unix.Stat(name, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	c, _ := sampleContent()
	before := write(c, 0, "a dump under a new name (linked as its name)")
	c2, _ := sampleContent()
	c2.Threads = c2.Threads[:1]
	after := write(c2, 1, "a dump replacing a file")
	if after.Ino == before.Ino {
		t.Error("the second dump did not replace the first file")
	}
	if after.Nlink != 1 {
		t.Errorf("the dump has %d links, want 1", after.Nlink)
	}
}

// TestCreateFileDestinations: a destination that is not a regular file is
// refused and left alone, and no error names the temporary file.
func TestCreateFileDestinations(t *testing.T) {
	c, _ := sampleContent()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, c2 := range []struct{ name, want string }{
		{fifo, "it is a named pipe, not a regular file"},
		{sub, "it is a directory, not a regular file"},
		{link, "it is a symbolic link, not a regular file"},
		{filepath.Join(dir, "missing", "x.dmp"), "no such directory"},
		{dir + "/", "no file name"},
	} {
		err := WriteFile(c2.name, c, WriteOptions{})
		if err == nil || !strings.Contains(err.Error(), c2.want) || !strings.Contains(err.Error(), "write minidump "+c2.name+":") || strings.Contains(err.Error(), ".tmp") {
			t.Errorf("WriteFile(%s) = %v, want an error naming it that says %q", c2.name, err, c2.want)
		}
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the named pipe was replaced: %v %v", fi, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symbolic link was replaced: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the link's target holds %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		t.Errorf("directory holds %v, want fifo, link, sub and target only", ents)
	}

	// CreateFile, then Discard: nothing is left; Write after Discard fails.
	name := filepath.Join(sub, "d.dmp")
	w, err := CreateFile(name)
	if err != nil {
		t.Fatal(err)
	}
	w.Discard()
	if err := w.Write(c, WriteOptions{}); err == nil {
		t.Error("Write after Discard succeeded")
	}
	if ents, _ := os.ReadDir(sub); len(ents) != 0 {
		t.Errorf("after Discard the directory holds %v", ents)
	}
}

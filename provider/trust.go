package provider

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fntable/fntable/internal/filekind"
)

// DefaultListFile is the trust list read when [TrustOptions.File] is
// empty: the equivalent of the KnownFunctionTableDlls registry key.
const DefaultListFile = "/etc/fntable/known-function-table-dlls"

// CommandLineSource is the [Entry.Source] of a path given in
// [TrustOptions.Extra] (fntable's --trust-provider).
const CommandLineSource = "--trust-provider"

// MaxListSize bounds the trust list file, in bytes: a longer file is an
// error, not a truncated list.
const MaxListSize = 1 << 20

// TrustOptions says where the trust list comes from. The zero value reads
// [DefaultListFile] and adds nothing.
type TrustOptions struct {
	File  string   // the list file; "" means DefaultListFile
	Extra []string // more absolute paths, from the command line
}

// Entry is a path on the trust list.
type Entry struct {
	Path   string // the absolute path, as listed
	Source string // where it came from: "FILE:LINE", or CommandLineSource
}

// LineError is a line of the list file that was ignored.
type LineError struct {
	File string // the list file
	Line int    // 1-based line number
	Text string // the line
	Msg  string // why it was ignored
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %q", e.File, e.Line, e.Msg, e.Text)
}

// Trust is a loaded trust list: the paths of the provider libraries that
// may be loaded. It is immutable and safe for concurrent use.
type Trust struct {
	opts     TrustOptions
	file     string // the list file read, or "" when it does not exist
	entries  []Entry
	warnings []error
	uid      uint32 // the invoking user, trusted besides root
}

// ParseTrustList parses a trust list read from r; name is the file's name
// for [Entry.Source] and errors. A line holds one absolute path (leading
// and trailing blanks are removed, so a path cannot begin or end with
// one); blank lines and lines whose first non-blank character is '#' are
// ignored. A line that is not an absolute path is returned as a
// *[LineError] in warnings and ignored. err is set when r fails or holds
// more than [MaxListSize] bytes; entries is then nil.
func ParseTrustList(r io.Reader, name string) (entries []Entry, warnings []error, err error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxListSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read trust list %s: %w", name, err)
	}
	if len(data) > MaxListSize {
		return nil, nil, fmt.Errorf("read trust list %s: longer than %d bytes", name, MaxListSize)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, MaxListSize+1)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#':
			continue
		case strings.ContainsRune(line, 0):
			warnings = append(warnings, &LineError{File: name, Line: n, Text: line, Msg: "path contains a NUL byte"})
		case !filepath.IsAbs(line):
			warnings = append(warnings, &LineError{File: name, Line: n, Text: line, Msg: "not an absolute path, ignored"})
		default:
			entries = append(entries, Entry{Path: line, Source: fmt.Sprintf("%s:%d", name, n)})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read trust list %s: %w", name, err)
	}
	return entries, warnings, nil
}

// LoadTrust reads the trust list. A missing [DefaultListFile] is an
// empty list; a missing File named in opts is an error. The list file
// must be safe by the rules of [Trust.Check] (a regular file, neither it
// nor a directory above it writable by anyone but root or the invoking
// user): otherwise LoadTrust fails with [ErrUntrusted] rather than
// believe it. Each Extra path must be absolute, or LoadTrust fails.
func LoadTrust(opts TrustOptions) (*Trust, error) {
	t := &Trust{opts: opts, uid: uint32(os.Getuid())}
	t.opts.Extra = append([]string(nil), opts.Extra...)
	name := opts.File
	if name == "" {
		name = DefaultListFile
	}
	if !filepath.IsAbs(name) {
		abs, err := filepath.Abs(name)
		if err != nil {
			return nil, fmt.Errorf("trust list %s: %w", name, err)
		}
		name = abs
	}
	t.opts.File = name
	f, err := os.Open(name)
	switch {
	case err == nil:
		defer f.Close()
		if reason, ok := t.safeListFile(f, name); !ok {
			return nil, errorf(ErrUntrusted, "trust list %s: %s: refusing to use it", name, reason)
		}
		entries, warnings, err := ParseTrustList(f, name)
		if err != nil {
			return nil, err
		}
		t.file, t.entries, t.warnings = name, entries, warnings
	case name == DefaultListFile && errors.Is(err, fs.ErrNotExist):
		// No list: nothing is trusted but the extra paths.
	default:
		return nil, fmt.Errorf("trust list: %w", err)
	}
	for _, p := range opts.Extra {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("%s %q: not an absolute path", CommandLineSource, p)
		}
		t.entries = append(t.entries, Entry{Path: p, Source: CommandLineSource})
	}
	return t, nil
}

// Options returns the options the list was loaded with, File made
// absolute: loading them again gives the same list if the file has not
// changed.
func (t *Trust) Options() TrustOptions {
	o := t.opts
	o.Extra = append([]string(nil), o.Extra...)
	return o
}

// File returns the list file read, or "" when the default one does not
// exist.
func (t *Trust) File() string { return t.file }

// Entries returns the trusted paths, the list file's first, in order.
func (t *Trust) Entries() []Entry { return append([]Entry(nil), t.entries...) }

// Warnings returns the ignored lines of the list file, as *[LineError]s.
func (t *Trust) Warnings() []error { return append([]error(nil), t.warnings...) }

// Decision is the answer of [Trust.Check].
type Decision struct {
	Path     string // the path asked about
	RealPath string // Path with every symlink resolved, or "" when it cannot be
	Trusted  bool   // the library may be loaded, from RealPath
	Reason   string // one sentence saying why it may or may not be loaded
	Entry    Entry  // the list entry that allows it, when Trusted

	id fileID // the identity of RealPath when it was checked
}

// fileID identifies a file: its device and inode.
type fileID struct{ dev, ino uint64 }

// Check decides whether the library at path may be loaded. The target
// names the path; only the list decides. The rules:
//
//   - path is absolute;
//   - its real path (every symlink resolved, [filepath.EvalSymlinks]) is
//     exactly a listed path. A listed path must be its own real path: an
//     entry that is a symlink, or goes through one, or is not clean,
//     allows nothing (its reason says so). So a symlink is followed when
//     it leads to a listed file, and a listed symlink is never followed;
//   - the real path is a regular file, owned by root or the invoking
//     user, and not writable by group or others;
//   - every directory above it, up to /, is owned by root or the invoking
//     user and not writable by group or others. World-writable
//     directories with the sticky bit (/tmp) count as unsafe.
//
// A trusted Decision names the real path, which is the one to load.
func (t *Trust) Check(path string) Decision {
	d := Decision{Path: path}
	if !filepath.IsAbs(path) {
		d.Reason = "not an absolute path"
		return d
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		d.Reason = fmt.Sprintf("cannot resolve the path: %v", unwrapPathError(err))
		return d
	}
	d.RealPath = real
	var match *Entry
	for i := range t.entries {
		if t.entries[i].Path == real {
			match = &t.entries[i]
			break
		}
	}
	if match == nil {
		d.Reason = t.notListed(path, real)
		return d
	}
	id, reason, ok := checkFile(real, t.uid)
	if !ok {
		d.Reason = reason
		return d
	}
	d.Trusted, d.Entry, d.id = true, *match, id
	if real != path {
		d.Reason = fmt.Sprintf("resolves to %s, listed in %s", real, match.Source)
	} else {
		d.Reason = fmt.Sprintf("listed in %s", match.Source)
	}
	return d
}

// notListed explains why real, the real path of path, matches no entry.
func (t *Trust) notListed(path, real string) string {
	for _, e := range t.entries {
		if r, err := filepath.EvalSymlinks(e.Path); err == nil && r == real {
			return fmt.Sprintf("listed as %s (%s), which resolves to %s: a listed path must be the library's real path", e.Path, e.Source, real)
		}
	}
	if real != path {
		return fmt.Sprintf("resolves to %s, which is not on the trust list", real)
	}
	return "not on the trust list"
}

// checkFile checks the file at real (a path without symlinks) and every
// directory above it, and returns the file's identity, or why it is not
// safe.
func checkFile(real string, uid uint32) (fileID, string, bool) {
	fi, err := os.Lstat(real)
	if err != nil {
		return fileID{}, fmt.Sprintf("cannot stat it: %v", unwrapPathError(err)), false
	}
	if !fi.Mode().IsRegular() {
		return fileID{}, fmt.Sprintf("%s is not a regular file but %s", real, filekind.Of(fi.Mode())), false
	}
	if reason, ok := safeOwnerMode(fi, real, uid); !ok {
		return fileID{}, reason, false
	}
	if reason, ok := safeDirs(filepath.Dir(real), uid); !ok {
		return fileID{}, reason, false
	}
	id, _ := statID(fi)
	return id, "", true
}

// CheckDir reports whether a library placed in directory dir could pass
// [Trust.Check]'s rules for the directories above it: nil when dir (its
// real path) and every directory above it are owned by root or the
// invoking user and writable by no one else, else an [ErrUntrusted]
// error that says which is not. A program that builds or installs a
// provider uses it to choose where.
func CheckDir(dir string) error {
	real, err := filepath.Abs(dir)
	if err == nil {
		real, err = filepath.EvalSymlinks(real)
	}
	if err != nil {
		return errorf(ErrUntrusted, "directory %s: %v", dir, unwrapPathError(err))
	}
	if reason, ok := safeDirs(real, uint32(os.Getuid())); !ok {
		return errorf(ErrUntrusted, "%s", reason)
	}
	return nil
}

// safeDirs checks dir and every directory above it.
func safeDirs(dir string, uid uint32) (string, bool) {
	for {
		fi, err := os.Lstat(dir)
		if err != nil {
			return fmt.Sprintf("cannot stat directory %s: %v", dir, unwrapPathError(err)), false
		}
		if !fi.IsDir() {
			return fmt.Sprintf("%s is not a directory", dir), false
		}
		if reason, ok := safeOwnerMode(fi, "directory "+dir, uid); !ok {
			return reason, false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", true
		}
		dir = parent
	}
}

// safeOwnerMode checks that fi, described by what, is owned by root or
// uid and not writable by group or others.
func safeOwnerMode(fi fs.FileInfo, what string, uid uint32) (string, bool) {
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Sprintf("%s is writable by group or others (mode %04o)", what, modeBits(fi.Mode())), false
	}
	owner, ok := ownerUID(fi)
	if !ok {
		return fmt.Sprintf("the owner of %s cannot be checked on this OS", what), false
	}
	if owner != 0 && owner != uid {
		return fmt.Sprintf("%s is owned by uid %d, neither root nor the invoking user (uid %d)", what, owner, uid), false
	}
	return "", true
}

// modeBits returns the permission, setuid, setgid and sticky bits of m in
// the octal form of chmod.
func modeBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// safeListFile checks the opened list file f (name is its path) and the
// directories above its real path.
func (t *Trust) safeListFile(f *os.File, name string) (string, bool) {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("cannot stat it: %v", err), false
	}
	if !fi.Mode().IsRegular() {
		return "not a regular file", false
	}
	if reason, ok := safeOwnerMode(fi, "the list file", t.uid); !ok {
		return reason, false
	}
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		return fmt.Sprintf("cannot resolve the path: %v", unwrapPathError(err)), false
	}
	return safeDirs(filepath.Dir(real), t.uid)
}

// unwrapPathError drops the path of a *fs.PathError, which the message
// around it already names.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

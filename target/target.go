package target

import (
	"cmp"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/fntable/fntable/memory"
)

// ErrStopped is returned by enumerations whose callback returned false.
// It is the one such value of the module: functable.ErrStopped and
// symhandler.ErrStopped are the same.
var ErrStopped = errors.New("enumeration stopped by its callback")

// Memory reads a target's address space. It is memory.Reader, the one
// memory interface of the module (unwind.Memory is the same): a read of
// fewer than len(p) bytes returns the count and a non-nil error matching
// memory.ErrShortRead (a *memory.UnmappedError, a *memory.ReadError, or
// one wrapping memory.ErrTargetGone).
type Memory = memory.Reader

// Target is an address space and the modules loaded in it.
// Implementations are safe for concurrent use.
type Target interface {
	Memory
	// Modules calls yield for each module, in ascending Base order. It
	// returns ErrStopped when yield returns false.
	Modules(yield func(Module) bool) error
	// Close releases what the target holds; the process, if any, is not
	// affected.
	Close() error
}

// FileOpener is an optional interface of a [Target] that can open a
// module's file as the target sees it (a live process in another mount
// namespace sees other files than the debugger under the same path).
// OpenModule returns nil, nil when it has no better way than opening
// Module.Path directly.
type FileOpener interface {
	OpenModule(m Module) (io.ReaderAt, io.Closer, error)
}

// Module is an image loaded in a target.
type Module struct {
	Name string // short name: the file's base name, or "[vdso]" and the like
	Path string // the file's path as the target names it; "" when the image has no file
	Base uint64 // address of the image's first byte: where file offset 0 is (or would be) mapped
	Size uint64 // bytes from Base to the end of the image's last mapping

	// InMemory is set when the image is complete in the target's memory
	// from Base on (the vDSO, a JIT's in-memory ELF), so a reader can parse
	// it from there when there is no file.
	InMemory bool

	// Identity recorded by the target (a minidump's module list); zero
	// when unknown. Readers check files found elsewhere against it.
	TimeDateStamp uint32 // PE IMAGE_FILE_HEADER.TimeDateStamp
	CheckSum      uint32 // PE optional header CheckSum
	BuildID       []byte // ELF NT_GNU_BUILD_ID
	CodeView      []byte // the raw CodeView record (RSDS ...) of a PE module
}

// End returns Base+Size.
func (m Module) End() uint64 { return m.Base + m.Size }

// BaseName returns the last element of a module path, Windows or Unix
// (C:\app\ntdll.dll and /lib/libc.so.6 alike): a dump's module list
// has Windows paths wherever it is read.
func BaseName(path string) string {
	if i := strings.LastIndexAny(path, `\/`); i >= 0 {
		return path[i+1:]
	}
	return path
}

// SortModules sorts modules by Base.
func SortModules(mods []Module) {
	slices.SortStableFunc(mods, func(a, b Module) int { return cmp.Compare(a.Base, b.Base) })
}

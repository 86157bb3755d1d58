//go:build linux

package provider

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/fntable/fntable/unwindinfo"
)

// libcFuncs are the C library's functions the loader calls: free for the
// provider's array, memcpy to copy it into Go memory.
type libcFuncs struct{ free, memcpy uintptr }

var (
	libcOnce sync.Once
	libc     libcFuncs
	libcErr  error
)

// loadLibc resolves free and memcpy, once.
func loadLibc() (libcFuncs, error) {
	libcOnce.Do(func() {
		var h uintptr
		for _, name := range []string{"libc.so.6", "libc.so"} {
			if h, libcErr = purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL); libcErr == nil {
				break
			}
		}
		if libcErr != nil {
			libcErr = errorf(ErrLoad, "load provider: open the C library: %v", libcErr)
			return
		}
		var err1, err2 error
		libc.free, err1 = purego.Dlsym(h, "free")
		libc.memcpy, err2 = purego.Dlsym(h, "memcpy")
		if err := errors.Join(err1, err2); err != nil {
			libcErr = errorf(ErrLoad, "load provider: find free and memcpy in the C library: %v", err)
		}
	})
	return libc, libcErr
}

// library is a loaded provider library. Calls into it are serialized by
// mu: the ABI lets a provider be called from any thread, not from several
// at once.
type library struct {
	path string  // the real path it was loaded from
	id   fileID  // the file loaded
	sym  uintptr // OutOfProcessFunctionTableCallback

	mu sync.Mutex // held during a call
}

// libraries holds the libraries loaded by this process, by real path. A
// library, once loaded, stays loaded (its code may still be running in a
// thread it started): it is loaded once per process, which is why this
// cache is a package variable and not a Resolver's.
var libraries struct {
	sync.Mutex // held while a library is loaded (its constructors run)
	m          map[string]*library
}

// loadLibrary returns the library d allows, loaded from d.RealPath, or
// the one loaded from there earlier. cache false loads without the cache
// (the helper process loads one library, once).
//
// The file loaded must be the file checked: loadLibrary opens
// d.RealPath without following a symlink, checks with fstat that it is
// the file [Trust.Check] examined (device and inode) and still safe,
// dlopens the path while holding the descriptor, and then checks that
// the path still names that file. What remains is the window between
// that fstat and dlopen's own open: a file swapped there and swapped back
// before the last check would go unnoticed. Only someone able to write
// the library or a directory above it can do that, and the rules of
// Check restrict those to root and the invoking user. The libraries the
// provider itself depends on (DT_NEEDED) are found by the dynamic linker
// as usual and are not checked.
func loadLibrary(d Decision, uid uint32, cache bool) (*library, error) {
	if !d.Trusted {
		return nil, errorf(ErrUntrusted, "not trusted: %s", d.Reason)
	}
	if cache {
		libraries.Lock()
		defer libraries.Unlock()
		if lib := libraries.m[d.RealPath]; lib != nil {
			if lib.id != d.id {
				return nil, errorf(ErrLoad, "load provider %s: the file changed since it was loaded; restart to load the new one", d.RealPath)
			}
			return lib, nil
		}
	}
	if _, err := loadLibc(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(d.RealPath, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, errorf(ErrLoad, "load provider %s: %v", d.RealPath, unwrapPathError(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, errorf(ErrLoad, "load provider %s: %v", d.RealPath, unwrapPathError(err))
	}
	if id, _ := statID(fi); id != d.id || !fi.Mode().IsRegular() {
		return nil, errorf(ErrUntrusted, "not trusted: %s changed after the trust check", d.RealPath)
	}
	if reason, ok := safeOwnerMode(fi, d.RealPath, uid); !ok {
		return nil, errorf(ErrUntrusted, "not trusted: %s", reason)
	}
	h, err := purego.Dlopen(d.RealPath, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, errorf(ErrLoad, "load provider: %v", err)
	}
	if fi, err := os.Lstat(d.RealPath); err != nil {
		return nil, errorf(ErrLoad, "load provider %s: %v", d.RealPath, unwrapPathError(err))
	} else if id, _ := statID(fi); id != d.id {
		return nil, errorf(ErrLoad, "load provider %s: the file was replaced while it was loaded", d.RealPath)
	}
	sym, err := purego.Dlsym(h, ExportName)
	if err != nil {
		return nil, errorf(ErrLoad, "load provider %s: no export %s", d.RealPath, ExportName)
	}
	lib := &library{path: d.RealPath, id: d.id, sym: sym}
	if cache {
		if libraries.m == nil {
			libraries.m = make(map[string]*library)
		}
		libraries.m[d.RealPath] = lib
	}
	return lib, nil
}

// outParams are the out-parameters of a call, in memory that holds no Go
// pointer, so that the provider may write a C pointer into it.
type outParams struct {
	entries   uint32  // DWORD *Entries
	_         uint32  // padding
	functions uintptr // RUNTIME_FUNCTION *Functions
}

// call calls the provider's export for the table whose record is at
// record in process pid, copies the array it returned into Go memory when
// answer.check can accept it, and frees the array whenever it is not
// NULL, accepted or not. A provider that returns a pointer that is not
// one of malloc's crashes the process here: isolation is the defence.
func (lib *library) call(pid int, record uint64) (answer, error) {
	c, err := loadLibc()
	if err != nil {
		return answer{}, err
	}
	out := new(outParams)
	lib.mu.Lock()
	r1, _, _ := purego.SyscallN(lib.sym, uintptr(pid), uintptr(record),
		uintptr(unsafe.Pointer(&out.entries)), uintptr(unsafe.Pointer(&out.functions)))
	lib.mu.Unlock()
	runtime.KeepAlive(out)
	a := answer{status: uint32(r1), count: out.entries, null: out.functions == 0}
	if a.null {
		return a, nil
	}
	defer purego.SyscallN(c.free, out.functions)
	if a.status >= statusFailure || a.count == 0 || a.count > MaxEntries {
		return a, nil
	}
	buf := make([]byte, int(a.count)*unwindinfo.RuntimeFunctionSize)
	purego.SyscallN(c.memcpy, uintptr(unsafe.Pointer(&buf[0])), out.functions, uintptr(len(buf)))
	runtime.KeepAlive(buf)
	entries, err := decodeEntries(buf)
	if err != nil {
		return answer{}, fmt.Errorf("copy provider result: %w", err)
	}
	a.entries = entries
	return a, nil
}

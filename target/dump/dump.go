// Package dump is a [target.Target] over a minidump: the memory the dump
// captured and its module list, for offline symbolization and unwinding.
package dump

import (
	"fmt"

	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/target"
)

// Dump is a minidump as a [target.Target]. It is safe for concurrent use,
// except Close.
type Dump struct {
	f    *minidump.File
	mem  *minidump.Memory
	mods []target.Module
	own  bool // Close closes f
}

var _ target.Target = (*Dump)(nil)

// Open opens the minidump file name.
func Open(name string) (*Dump, error) {
	f, err := minidump.Open(name)
	if err != nil {
		return nil, err
	}
	d, err := New(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	d.own = true
	return d, nil
}

// New returns the target of an open minidump; Close does not close f.
func New(f *minidump.File) (*Dump, error) {
	mem, err := f.Memory()
	if err != nil {
		return nil, fmt.Errorf("dump memory: %w", err)
	}
	mods, err := f.Modules()
	if err != nil && mods == nil {
		return nil, fmt.Errorf("dump modules: %w", err)
	}
	d := &Dump{f: f, mem: mem}
	for _, m := range mods {
		tm := target.Module{
			Name:          target.BaseName(m.Name),
			Path:          m.Name,
			Base:          m.BaseOfImage,
			Size:          uint64(m.SizeOfImage),
			TimeDateStamp: m.TimeDateStamp,
			CheckSum:      m.CheckSum,
			CodeView:      m.CvData,
		}
		if tm.Size == 0 || tm.Base+tm.Size < tm.Base {
			continue
		}
		d.mods = append(d.mods, tm)
	}
	target.SortModules(d.mods)
	return d, nil
}

// File returns the minidump.
func (d *Dump) File() *minidump.File { return d.f }

// ReadMemory reads the memory the dump captured.
func (d *Dump) ReadMemory(p []byte, addr uint64) (int, error) { return d.mem.ReadMemory(p, addr) }

// Modules calls yield for each module of the dump's module list, in
// ascending Base order.
func (d *Dump) Modules(yield func(target.Module) bool) error {
	for _, m := range d.mods {
		if !yield(m) {
			return target.ErrStopped
		}
	}
	return nil
}

// Close closes the file if Open opened it.
func (d *Dump) Close() error {
	if d.own {
		return d.f.Close()
	}
	return nil
}

package stackwalk

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/fntable/fntable/cfi"
	"github.com/fntable/fntable/internal/gopclntab"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/unwind"
)

// elfModule is an ELF module of the target with its CFI.
type elfModule struct {
	f     *cfi.File
	bias  uint64           // run-time address − link-time address
	path  string           // the file the CFI was read from, "" for an image in memory
	gotab *gopclntab.Table // a Go binary's pclntab, or nil

	debugOnce sync.Once // looks for a separate debug file at the first miss
}

// step unwinds through the module's CFI. When no FDE covers lookupPC, it
// looks once for the module's separate debug file (by build ID and
// .gnu_debuglink, as the symbol handler does) and tries its
// .debug_frame.
func (em *elfModule) step(s *Sources, ctx *unwind.Context, lookupPC uint64) (cfi.StepResult, bool, error) {
	res, ok, err := em.f.Step(ctx, em.bias, lookupPC, s.mem)
	if ok || err != nil || em.path == "" {
		return res, ok, err
	}
	added := false
	em.debugOnce.Do(func() {
		path, found := cfi.FindDebugFile(em.path, em.f, s.opts.DebugDirs)
		if !found {
			return
		}
		d, err := os.Open(path)
		if err != nil {
			s.logf("open debug file %s: %v", path, err)
			return
		}
		defer d.Close()
		if err := em.f.AddDebugFrame(d); err != nil {
			s.logf("read .debug_frame of %s: %v", path, err)
			return
		}
		added = true
	})
	if !added {
		return res, false, nil
	}
	return em.f.Step(ctx, em.bias, lookupPC, s.mem)
}

// elfAt returns module m's CFI, loading it the first time; nil when m is
// not an ELF file or its CFI cannot be read (which is reported through
// Logf).
func (s *Sources) elfAt(m target.Module) *elfModule {
	s.mu.Lock()
	em, done := s.elf[m.Base]
	s.mu.Unlock()
	if done {
		return em
	}
	em, err := s.loadELF(m)
	if err != nil {
		s.logf("no call-frame information for %s: %v", m.Name, err)
	}
	s.mu.Lock()
	s.elf[m.Base] = em
	s.mu.Unlock()
	return em
}

func (s *Sources) loadELF(m target.Module) (*elfModule, error) {
	if !s.isELF(m.Base) {
		return nil, nil
	}
	var (
		f    *cfi.File
		path string
		err  error
	)
	if m.InMemory || m.Path == "" {
		// The vDSO: complete in memory. The cache shares it by build ID.
		f, err = s.cfi.OpenMemory(s.mem, m.Base)
	} else {
		path, err = s.modulePath(m)
		if err == nil {
			f, err = s.cfi.Open(path)
		}
	}
	if err != nil {
		return nil, err
	}
	bias, ok := f.LoadBias(m.Base)
	if !ok {
		return nil, fmt.Errorf("%s has no loadable segment", m.Name)
	}
	em := &elfModule{f: f, bias: bias, path: path}
	if path != "" {
		// The pclntab is kept with the CFI file, so that a walk through a
		// warm cache opens no file again.
		g := f.Memo(goTabKey{}, func() any {
			if !f.HasSection(".gopclntab") {
				return goTab{} // not a Go binary: no need to open it again
			}
			return openGoTab(path)
		}).(goTab)
		em.gotab = g.tab
		if g.err != nil {
			s.logf("%s: %v", m.Name, g.err)
		}
	}
	return em, nil
}

// goTabKey is the key of a file's goTab in its cfi.File's memo.
type goTabKey struct{}

// goTab is the pclntab of a Go binary (nil for another file), or why it
// could not be read.
type goTab struct {
	tab *gopclntab.Table
	err error
}

// openGoTab reads the pclntab of the ELF file at path, if it has one.
func openGoTab(path string) goTab {
	ef, err := elf.Open(path)
	if err != nil {
		return goTab{}
	}
	defer ef.Close()
	tab, err := gopclntab.OpenFile(path, ef)
	if errors.Is(err, gopclntab.ErrNotGo) {
		err = nil
	}
	return goTab{tab, err}
}

// modulePath returns the path to read m's file from: m.Path itself when
// it names the same file here as in the target (so that the CFI cache
// shares it between processes), else the path the target's FileOpener
// opens (a process in another mount namespace).
func (s *Sources) modulePath(m target.Module) (string, error) {
	fo, ok := s.t.(target.FileOpener)
	if !ok {
		return m.Path, nil
	}
	r, c, err := fo.OpenModule(m)
	if err != nil {
		return "", err
	}
	if r == nil {
		return m.Path, nil
	}
	defer c.Close()
	of, ok := r.(*os.File)
	if !ok {
		return m.Path, nil
	}
	there, err1 := of.Stat()
	here, err2 := os.Stat(m.Path)
	if err1 == nil && err2 == nil && os.SameFile(there, here) {
		return m.Path, nil
	}
	return of.Name(), nil
}

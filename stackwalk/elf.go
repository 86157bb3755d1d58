package stackwalk

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/fntable/fntable/cfi"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/unwind"
)

// CFICache keeps the call-frame information of ELF files, by build ID (or,
// for a file without one, by path, size and modification time), so that
// a second walk, of the same process or of another one mapping the same
// libraries, parses no CFI again. It is safe for concurrent use. The zero
// value is not ready: use [NewCFICache].
type CFICache struct {
	mu    sync.Mutex
	files map[string]*cfiEntry
}

type cfiEntry struct {
	once sync.Once
	f    *cfi.File
	err  error
}

// NewCFICache returns an empty cache.
func NewCFICache() *CFICache { return &CFICache{files: map[string]*cfiEntry{}} }

// Len returns the number of files the cache holds.
func (c *CFICache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.files)
}

// get returns the CFI under key, opening it with open the first time.
func (c *CFICache) get(key string, open func() (*cfi.File, error)) (*cfi.File, error) {
	c.mu.Lock()
	e := c.files[key]
	if e == nil {
		e = &cfiEntry{}
		c.files[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.f, e.err = open() })
	return e.f, e.err
}

// elfModule is an ELF module of the target with its CFI.
type elfModule struct {
	cfi  cfiStepper
	bias uint64 // runtime address − link-time address
}

// cfiStepper is the part of *cfi.File the walker uses.
type cfiStepper interface {
	step(ctx *unwind.Context, bias, lookupPC uint64, mem unwind.Memory) (cfiResult, bool, error)
}

type cfiResult struct {
	cfa         uint64
	signal, end bool
}

type cfiFile struct{ f *cfi.File }

func (c cfiFile) step(ctx *unwind.Context, bias, lookupPC uint64, mem unwind.Memory) (cfiResult, bool, error) {
	r, ok, err := c.f.Step(ctx, bias, lookupPC, mem)
	return cfiResult{cfa: r.CFA, signal: r.Signal, end: r.End}, ok, err
}

// elfAt returns module m's CFI, loading it the first time; nil when m is
// not an ELF file or has no CFI (which is reported through Logf).
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
	if m.InMemory {
		// The vDSO: complete in memory, the same in every process of a
		// kernel, but cheap enough to read each time.
		f, err := cfi.NewFileFromMemory(s.mem, m.Base)
		if err != nil {
			return nil, err
		}
		bias, err := memoryBias(s.mem, m.Base)
		if err != nil {
			return nil, err
		}
		return &elfModule{cfi: cfiFile{f}, bias: bias}, nil
	}
	if !s.isELF(m.Base) {
		return nil, nil
	}
	r, c, err := s.openModule(m)
	if err != nil {
		return nil, err
	}
	ef, err := elf.NewFile(r)
	if err != nil {
		c.Close()
		return nil, err
	}
	bias, ok := loadBias(ef, m.Base)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("%s has no loadable segment at file offset 0", m.Path)
	}
	key := fileKey(ef, m, r)
	f, err := s.cfi.get(key, func() (*cfi.File, error) {
		return cfi.Open(pathOf(r, m))
	})
	c.Close()
	if err != nil {
		return nil, err
	}
	return &elfModule{cfi: cfiFile{f}, bias: bias}, nil
}

// openModule opens m's file as the target sees it.
func (s *Sources) openModule(m target.Module) (io.ReaderAt, io.Closer, error) {
	if fo, ok := s.t.(target.FileOpener); ok {
		r, c, err := fo.OpenModule(m)
		if err != nil || r != nil {
			return r, c, err
		}
	}
	f, err := os.Open(m.Path)
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}

// pathOf returns the path to open for the CFI: the file the target's
// opener opened, else the module's path.
func pathOf(r io.ReaderAt, m target.Module) string {
	if f, ok := r.(*os.File); ok {
		return f.Name()
	}
	return m.Path
}

// fileKey is the cache key of an ELF file: its build ID, else its path,
// size and modification time.
func fileKey(ef *elf.File, m target.Module, r io.ReaderAt) string {
	if id := buildID(ef); id != nil {
		return fmt.Sprintf("build-id:%x", id)
	}
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil {
			return fmt.Sprintf("file:%s:%d:%d", m.Path, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return "path:" + m.Path
}

// buildID returns the NT_GNU_BUILD_ID note of ef, or nil.
func buildID(ef *elf.File) []byte {
	for _, p := range ef.Progs {
		if p.Type != elf.PT_NOTE || p.Filesz > 1<<16 {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			continue
		}
		for len(b) >= 12 {
			nsz, dsz, typ := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
			b = b[12:]
			n, d := (uint64(nsz)+3)&^3, (uint64(dsz)+3)&^3
			if n+d > uint64(len(b)) {
				break
			}
			if typ == 3 && nsz == 4 && bytes.Equal(b[:4], []byte("GNU\x00")) {
				return b[n : n+uint64(dsz)]
			}
			b = b[n+d:]
		}
	}
	return nil
}

// loadBias returns the difference between where ef is loaded and its
// link-time addresses, given base, where its file offset 0 is mapped.
func loadBias(ef *elf.File, base uint64) (uint64, bool) {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			// The first segment maps file offset Off at Vaddr+bias, and
			// file offset 0 is at base: bias = base + Off − Vaddr.
			return base + p.Off - p.Vaddr, true
		}
	}
	return 0, false
}

// memoryBias returns the load bias of an ELF image complete in memory at
// base (the vDSO), from its program headers.
func memoryBias(mem unwind.Memory, base uint64) (uint64, error) {
	var eh [64]byte
	if _, err := mem.ReadMemory(eh[:], base); err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	phoff, phentsize, phnum := le.Uint64(eh[32:]), uint64(le.Uint16(eh[54:])), uint64(le.Uint16(eh[56:]))
	if phentsize < 56 || phnum > 64 || phoff > 1<<20 {
		return 0, fmt.Errorf("elf image at %#x: bad program headers", base)
	}
	var ph [56]byte
	for i := range phnum {
		if _, err := mem.ReadMemory(ph[:], base+phoff+i*phentsize); err != nil {
			return 0, err
		}
		if elf.ProgType(le.Uint32(ph[:])) == elf.PT_LOAD {
			off, vaddr := le.Uint64(ph[8:]), le.Uint64(ph[16:])
			return base + off - vaddr, nil
		}
	}
	return 0, fmt.Errorf("elf image at %#x: no loadable segment", base)
}

package dump

import (
	"bytes"
	"cmp"
	"context"
	"debug/elf"
	"debug/pe"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"

	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/symfile/debugfile"
	"github.com/fntable/fntable/symsrv"
	"github.com/fntable/fntable/target"
)

// ImageOptions configures [Dump.LoadImages].
type ImageOptions struct {
	// SearchPath is where module files are looked for besides the paths
	// the dump names, in dbghelp's syntax (symsrv.ParsePath): plain
	// directories (searched by build ID in their .build-id tree, and for
	// PE images by name), srv*CACHE*URL symbol stores, debuginfod*URL
	// servers. "" means the environment's (_NT_SYMBOL_PATH,
	// DEBUGINFOD_URLS).
	SearchPath string

	// NoPaths leaves out the paths the dump names: only the search path
	// is searched (a dump from another machine, whose paths here may
	// hold other files).
	NoPaths bool

	// Logf, if set, receives one line per module whose file was not
	// found, or whose file could not be mapped.
	Logf func(format string, args ...any)
}

// Image is a module file that [Dump.LoadImages] mapped.
type Image struct {
	Module target.Module // the module of the dump
	Path   string        // the file found
}

// image is a module file whose loadable contents back the dump's memory.
type image struct {
	Image
	f    *os.File
	segs []imageSeg // by address, disjoint
}

// imageSeg is a part of a file mapped at an address.
type imageSeg struct {
	addr, size, off uint64
	f               *os.File
}

// LoadImages finds the file of each module of the dump and maps its
// loadable contents at the module's base, under the dump's memory: a
// read of an address the dump holds gets the dump's bytes, a read of one
// it lacks gets the file's. A walk of a dump written without its modules'
// code (a minidump, not a full dump) then finds the code and headers the
// unwinders read. [Dump.OpenModule] returns the file found, from which
// the stack walker reads an ELF module's call-frame information.
//
// An ELF module is matched by the build ID of its CodeView record: the
// dump's path when the file there has that build ID, then the search
// path (by build ID: .build-id trees, debuginfod, caches). A PE module is
// matched by name, TimeDateStamp and SizeOfImage: the dump's path, then
// the search path's symbol stores. A module without an identity (no build
// ID, no time stamp) is taken from the dump's path unchecked. For an ELF
// file each PT_LOAD segment's file contents go at its address plus the
// module's load bias; for a PE image the headers and each section's raw
// data go at their RVAs from the base.
//
// It returns the images mapped; modules whose file is not found are
// reported through Logf and left out. The error is that of a bad search
// path or of ctx. LoadImages must not be called concurrently with other
// methods; the files stay open until Close.
func (d *Dump) LoadImages(ctx context.Context, opts ImageOptions) ([]Image, error) {
	var client *symsrv.Client
	if opts.SearchPath == "" {
		c, err := symsrv.FromEnv()
		if err != nil {
			return nil, fmt.Errorf("symbol search path from the environment: %w", err)
		}
		client = c
	} else {
		els, err := symsrv.ParsePath(opts.SearchPath)
		if err != nil {
			return nil, err
		}
		client = &symsrv.Client{Elements: els, CacheDir: symsrv.DefaultCacheDir()}
	}
	logf := func(format string, args ...any) {
		if opts.Logf != nil {
			opts.Logf(format, args...)
		}
	}
	var out []Image
	for _, m := range d.mods {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if m.InMemory || m.Path == "" || d.imageOf(m.Base) != nil {
			continue
		}
		path, kind, err := findImage(ctx, client, m, opts.NoPaths)
		if err != nil {
			if !errors.Is(err, errNotImage) {
				logf("no file for module %s: %v", m.Name, err)
			}
			continue
		}
		img, err := mapImage(m, path, kind)
		if err != nil {
			logf("module %s: %v", m.Name, err)
			continue
		}
		d.images = append(d.images, img)
		out = append(out, img.Image)
	}
	slices.SortFunc(d.images, func(a, b *image) int { return cmp.Compare(a.Module.Base, b.Module.Base) })
	return out, nil
}

type imageKind uint8

const (
	kindELF imageKind = iota + 1
	kindPE
)

// findImage finds module m's file.
func findImage(ctx context.Context, client *symsrv.Client, m target.Module, noPaths bool) (string, imageKind, error) {
	switch {
	case len(m.BuildID) > 0:
		if !noPaths && elfBuildID(m.Path) != nil && bytes.Equal(elfBuildID(m.Path), m.BuildID) {
			return m.Path, kindELF, nil
		}
		p, err := client.FetchDebuginfo(ctx, m.BuildID, symsrv.KindExecutable, nil)
		return p, kindELF, err
	case m.TimeDateStamp != 0:
		if !noPaths && peMatches(m.Path, m) {
			return m.Path, kindPE, nil
		}
		p, err := client.FetchImage(ctx, m.Path, m.TimeDateStamp, uint32(m.Size), nil)
		return p, kindPE, err
	case noPaths:
		return "", 0, errors.New("the dump gives no build id or time stamp to find it by")
	}
	f, err := os.Open(m.Path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil {
		return "", 0, err
	}
	switch {
	case string(magic[:]) == elf.ELFMAG:
		return m.Path, kindELF, nil
	case string(magic[:2]) == "MZ":
		return m.Path, kindPE, nil
	}
	return "", 0, fmt.Errorf("%s: %w", m.Path, errNotImage)
}

// errNotImage: a module's file is neither ELF nor PE (a data file mapped
// in the process); it is not reported.
var errNotImage = errors.New("neither an ELF nor a PE image")

// elfBuildID returns the build ID of the ELF file at path, or nil.
func elfBuildID(path string) []byte {
	f, err := elf.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	return debugfile.BuildID(f)
}

// peMatches reports whether the file at path is the PE image of m.
func peMatches(path string, m target.Module) bool {
	f, err := pe.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	return ok && f.TimeDateStamp == m.TimeDateStamp && uint64(oh.SizeOfImage) == m.Size
}

// mapImage opens the file at path and lays out its loadable contents for
// module m.
func mapImage(m target.Module, path string, kind imageKind) (*image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	img := &image{Image: Image{Module: m, Path: path}, f: f}
	switch kind {
	case kindELF:
		err = img.layoutELF()
	case kindPE:
		err = img.layoutPE()
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	return img, nil
}

func (img *image) layoutELF() error {
	ef, err := elf.NewFile(img.f)
	if err != nil {
		return err
	}
	var linkBase uint64
	found := false
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			linkBase, found = p.Vaddr-p.Off, true // the first PT_LOAD, as cfi.File.LoadBias takes it
			break
		}
	}
	if !found {
		return errors.New("no loadable segment")
	}
	bias := img.Module.Base - linkBase
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Filesz > 0 {
			img.add(p.Vaddr+bias, p.Filesz, p.Off)
		}
	}
	return img.finish()
}

func (img *image) layoutPE() error {
	pf, err := pe.NewFile(img.f)
	if err != nil {
		return err
	}
	oh, ok := pf.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		return errors.New("not a PE32+ image")
	}
	base := img.Module.Base
	img.add(base, uint64(oh.SizeOfHeaders), 0)
	for _, s := range pf.Sections {
		n := uint64(min(s.Size, s.VirtualSize))
		if s.VirtualSize == 0 {
			n = uint64(s.Size)
		}
		img.add(base+uint64(s.VirtualAddress), n, uint64(s.Offset))
	}
	return img.finish()
}

func (img *image) add(addr, size, off uint64) {
	if size > 0 && addr+size > addr {
		img.segs = append(img.segs, imageSeg{addr: addr, size: size, off: off, f: img.f})
	}
}

// finish sorts the segments and cuts their overlaps (the later segment
// loses) and what lies beyond the end of the file.
func (img *image) finish() error {
	fi, err := img.f.Stat()
	if err != nil {
		return err
	}
	fsize := uint64(fi.Size())
	slices.SortStableFunc(img.segs, func(a, b imageSeg) int { return cmp.Compare(a.addr, b.addr) })
	out := img.segs[:0]
	for _, s := range img.segs {
		if s.off >= fsize {
			continue
		}
		s.size = min(s.size, fsize-s.off)
		if n := len(out); n > 0 {
			prevEnd := out[n-1].addr + out[n-1].size
			if s.addr < prevEnd {
				cut := prevEnd - s.addr
				if cut >= s.size {
					continue
				}
				s.addr, s.off, s.size = s.addr+cut, s.off+cut, s.size-cut
			}
		}
		out = append(out, s)
	}
	img.segs = out
	if len(out) == 0 {
		return errors.New("nothing to map")
	}
	return nil
}

// imageOf returns the mapped image of the module based at base.
func (d *Dump) imageOf(base uint64) *image {
	for _, img := range d.images {
		if img.Module.Base == base {
			return img
		}
	}
	return nil
}

// imageSeg returns the image segment that holds addr.
func (d *Dump) imageSeg(addr uint64) (imageSeg, bool) {
	i := sort.Search(len(d.images), func(i int) bool { return d.images[i].Module.Base > addr }) - 1
	if i < 0 {
		return imageSeg{}, false
	}
	segs := d.images[i].segs
	j := sort.Search(len(segs), func(j int) bool { return segs[j].addr > addr }) - 1
	if j >= 0 && addr-segs[j].addr < segs[j].size {
		return segs[j], true
	}
	return imageSeg{}, false
}

// readImages reads p at addr from the mapped images, for the bytes the
// dump does not hold up to limit (the next address it holds).
func (d *Dump) readImages(p []byte, addr, limit uint64) (int, error) {
	s, ok := d.imageSeg(addr)
	if !ok {
		return 0, &memory.UnmappedError{Addr: addr}
	}
	n := uint64(len(p))
	n = min(n, s.addr+s.size-addr)
	if limit > addr {
		n = min(n, limit-addr)
	}
	k, err := s.f.ReadAt(p[:n], int64(s.off+(addr-s.addr)))
	if k < int(n) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return k, &memory.ReadError{Addr: addr + uint64(k), Err: err}
	}
	return k, nil
}

// OpenModule opens the file [Dump.LoadImages] found for module m; it
// returns nil, nil when none was found (the stack walker then opens
// m.Path).
func (d *Dump) OpenModule(m target.Module) (io.ReaderAt, io.Closer, error) {
	img := d.imageOf(m.Base)
	if img == nil {
		return nil, nil, nil
	}
	f, err := os.Open(img.Path)
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}

// Images returns the images [Dump.LoadImages] mapped, by base.
func (d *Dump) Images() []Image {
	out := make([]Image, len(d.images))
	for i, img := range d.images {
		out[i] = img.Image
	}
	return out
}

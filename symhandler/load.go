package symhandler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/fntable/fntable/memory"
	"hash/crc32"
	"io"
	"os"

	"github.com/fntable/fntable/symfile"
	"github.com/fntable/fntable/symfile/elfsym"
	"github.com/fntable/fntable/symfile/pesym"
	"github.com/fntable/fntable/symsrv"
	"github.com/fntable/fntable/target"
)

// loadSymbols runs one load of m's symbols with its callbacks:
//
//	CBA_DEFERRED_SYMBOL_LOAD_START
//	CBA_DEFERRED_SYMBOL_LOAD_CANCEL            (true: stop here, the module stays deferred)
//	  CBA_EVENT progress, CBA_DEFERRED_SYMBOL_LOAD_CANCEL ...  (downloads, indexing)
//	CBA_DEFERRED_SYMBOL_LOAD_COMPLETE
//	or CBA_DEFERRED_SYMBOL_LOAD_PARTIAL (the image could not be read) or
//	   CBA_DEFERRED_SYMBOL_LOAD_FAILURE (no symbols); if the callback sets
//	   FileName and returns true: CBA_DEFERRED_SYMBOL_LOAD_START with
//	   Reparse set, and the load again with that file.
func (h *Handler) loadSymbols(ctx context.Context, m *Module) (*loaded, error) {
	dsl := &DeferredSymbolLoad{BaseOfImage: m.Base, CheckSum: m.req.CheckSum, TimeDateStamp: m.req.TimeDateStamp,
		FileName: m.ImageName, Module: m.Name}
	if _, stop := h.send(CBA_DEFERRED_SYMBOL_LOAD_START, dsl); stop || h.canceled(ctx, dsl) {
		return nil, fmt.Errorf("load symbols of %s: %w", m.Name, ErrCanceled)
	}
	file := m.ImageName
	for attempt := 0; ; attempt++ {
		l, partial, err := h.tryLoad(ctx, m, file, dsl)
		if err == nil {
			dsl.Err, dsl.FileName, dsl.DebugFile, dsl.Symbols, dsl.Type = nil, file, l.debugFile, len(l.tab.syms), l.typ
			h.send(CBA_DEFERRED_SYMBOL_LOAD_COMPLETE, dsl) // too late to stop it
			return l, nil
		}
		if errors.Is(err, ErrCanceled) || ctx.Err() != nil {
			return nil, err
		}
		dsl.Err, dsl.FileName = err, file
		act := CBA_DEFERRED_SYMBOL_LOAD_FAILURE
		if partial {
			act = CBA_DEFERRED_SYMBOL_LOAD_PARTIAL
		}
		if h.deliver(act, dsl) && attempt < MaxRetries && dsl.FileName != "" && dsl.FileName != file {
			file = dsl.FileName
			dsl.Reparse, dsl.Err = true, nil
			if _, stop := h.send(CBA_DEFERRED_SYMBOL_LOAD_START, dsl); stop || h.canceled(ctx, dsl) {
				return nil, fmt.Errorf("load symbols of %s: %w", m.Name, ErrCanceled)
			}
			continue
		}
		return nil, err
	}
}

// canceled asks CBA_DEFERRED_SYMBOL_LOAD_CANCEL and checks ctx.
func (h *Handler) canceled(ctx context.Context, dsl *DeferredSymbolLoad) bool {
	if ctx.Err() != nil {
		return true
	}
	handled, stop := h.send(CBA_DEFERRED_SYMBOL_LOAD_CANCEL, dsl)
	return handled || stop
}

// progress returns a progress function for symbol servers and readers
// that sends CBA_EVENT progress and asks CBA_DEFERRED_SYMBOL_LOAD_CANCEL.
func (h *Handler) progress(ctx context.Context, stage, file string, dsl *DeferredSymbolLoad) func(done, total int64) bool {
	return func(done, total int64) bool {
		p := &Progress{Stage: stage, Module: dsl.Module, File: file, Done: done, Total: total}
		desc := fmt.Sprintf("%s %s: %d bytes", stage, file, done)
		if total > 0 {
			desc = fmt.Sprintf("%s %s: %d of %d bytes (%d%%)", stage, file, done, total, done*100/total)
		}
		code := EventDownload
		if stage == "index" {
			code = EventIndex
		}
		_, stop := h.send(CBA_EVENT, &CBAEvent{Severity: SevInfo, Code: code, Desc: desc, Object: p, Progress: p})
		return !stop && !h.canceled(ctx, dsl)
	}
}

// tryLoad reads m's symbols from the image file (or memory). partial
// reports that the image itself could not be read.
func (h *Handler) tryLoad(ctx context.Context, m *Module, file string, dsl *DeferredSymbolLoad) (l *loaded, partial bool, err error) {
	r, c, err := h.openImage(ctx, m, file, dsl)
	if err != nil {
		return nil, true, err
	}
	defer func() {
		if l == nil && c != nil {
			c.Close()
		}
	}()
	ident, err := identify(r)
	if err != nil {
		return nil, true, fmt.Errorf("read image %s: %w", describe(file), err)
	}
	if err := h.checkIdentity(m, file, ident); err != nil {
		return nil, false, err
	}
	opts := h.readerOptions(ctx, file, dsl)
	l = &loaded{ident: ident, bias: m.Base - ident.LinkBase, lines: opts.Lines}
	var src symfile.Source
	switch ident.Format {
	case "elf":
		sr, sc, debugFile := r, c, ""
		if !ident.HasDebugInfo || !ident.HasSymbols {
			dr, dc, path, canceled := h.findDebugFile(ctx, m, file, ident, dsl)
			if canceled {
				return nil, false, fmt.Errorf("load symbols of %s: %w", m.Name, ErrCanceled)
			}
			if dr != nil {
				// llvm-symbolizer names the outermost frame from the
				// image's own symbol table, not the debug file's. Its
				// map is built on a goroutine of its own, which then
				// closes the image, while the debug file is read below;
				// the first lookup waits for it. The map alone is kept,
				// not the image's parsed file.
				imgCloser := c
				if img, err := elfsym.NewFile(r, symfile.Options{PublicsOnly: true}); err == nil {
					done := make(chan struct{})
					var fm *elfsym.FunctionMap
					go func() {
						defer close(done)
						fm = img.FunctionMap()
						if imgCloser != nil {
							imgCloser.Close()
						}
					}()
					l.funcMap = func() *elfsym.FunctionMap { <-done; return fm }
				} else if imgCloser != nil {
					imgCloser.Close()
				}
				sr, sc, debugFile = dr, dc, path
				c = nil
			}
		}
		f, err := elfsym.NewFile(sr, opts)
		if err != nil {
			if c == nil && sc != nil {
				sc.Close()
			}
			return nil, false, fmt.Errorf("read symbols of %s from %s: %w", m.Name, describe(or(debugFile, file)), err)
		}
		src, c, l.debugFile = f, closers{f, sc}, debugFile
		if debugFile == "" {
			l.funcMap = f.FunctionMap
		}
		l.typ = SymSym
		if opts.Lines && (f.Ident().HasDebugInfo) {
			l.typ = SymDia
		}
	case "pe":
		f, err := pesym.NewFile(r, opts)
		if err != nil {
			return nil, false, fmt.Errorf("read symbols of %s from %s: %w", m.Name, describe(file), err)
		}
		src, c = f, closers{f, c}
		l.typ = SymExport
		if opts.Lines && ident.HasDebugInfo {
			l.typ = SymDia
		}
	default:
		return nil, true, fmt.Errorf("read image %s: %w", describe(file), symfile.ErrUnrecognized)
	}
	l.src, l.closer = src, c
	syms := src.Symbols()
	if h.Options()&SYMOPT_NO_PUBLICS != 0 {
		syms = nil
	}
	l.tab = newSymtab(syms)
	if len(syms) == 0 && !(opts.Lines && l.typ == SymDia) {
		l.closer.Close()
		l, c = nil, nil
		return nil, false, fmt.Errorf("read symbols of %s from %s: %w", m.Name, describe(file), ErrNoSymbols)
	}
	return l, false, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func describe(file string) string {
	if file == "" {
		return "memory"
	}
	return file
}

// readerOptions are the symfile options for the handler's options now.
func (h *Handler) readerOptions(ctx context.Context, file string, dsl *DeferredSymbolLoad) symfile.Options {
	o := h.Options()
	return symfile.Options{
		Lines:       o&SYMOPT_LOAD_LINES != 0 && o&SYMOPT_PUBLICS_ONLY == 0,
		PublicsOnly: o&SYMOPT_PUBLICS_ONLY != 0,
		Context:     ctx,
		Progress:    h.progress(ctx, "index", describe(file), dsl),
		CacheDir:    h.cfg.CacheDir,
	}
}

// identify reads the identity of an ELF or PE image.
func identify(r io.ReaderAt) (symfile.Ident, error) {
	var magic [4]byte
	if n, err := r.ReadAt(magic[:], 0); n < len(magic) {
		if err != nil && err != io.EOF {
			return symfile.Ident{}, err
		}
		if n == 0 {
			return symfile.Ident{}, fmt.Errorf("%w: the file is empty", symfile.ErrUnrecognized)
		}
		return symfile.Ident{}, fmt.Errorf("%w: the file has only %d bytes", symfile.ErrUnrecognized, n)
	}
	switch {
	case bytes.Equal(magic[:], []byte("\x7fELF")):
		return elfsym.Identify(r)
	case magic[0] == 'M' && magic[1] == 'Z':
		return pesym.Identify(r)
	}
	return symfile.Ident{}, symfile.ErrUnrecognized
}

// identify reads the identity of m's image (for LoadModule without a base
// or size).
func (h *Handler) identify(m *Module) (symfile.Ident, error) {
	r, c, err := h.openImage(context.Background(), m, m.ImageName, nil)
	if err != nil {
		return symfile.Ident{}, err
	}
	if c != nil {
		defer c.Close()
	}
	return identify(r)
}

// checkIdentity compares what the target recorded about m with the file.
func (h *Handler) checkIdentity(m *Module, file string, ident symfile.Ident) error {
	var what string
	switch {
	case len(m.req.BuildID) > 0 && len(ident.BuildID) > 0 && !bytes.Equal(m.req.BuildID, ident.BuildID):
		what = fmt.Sprintf("build ID %x, the module's is %x", ident.BuildID, m.req.BuildID)
	case m.req.TimeDateStamp != 0 && ident.Format == "pe" && ident.TimeDateStamp != m.req.TimeDateStamp:
		what = fmt.Sprintf("timestamp %#x, the module's is %#x", ident.TimeDateStamp, m.req.TimeDateStamp)
	default:
		return nil
	}
	if h.Options()&SYMOPT_EXACT_SYMBOLS != 0 {
		return fmt.Errorf("read image %s: it has %s", describe(file), what)
	}
	h.event(SevProblem, EventIdentityMismatch, file, "%s: %s has %s; using it anyway", m.Name, describe(file), what)
	return nil
}

// openImage opens the image file: through the target when it can open
// the module's files, else the path; from the target's memory for
// in-memory modules; from a symbol server for PE images with a known
// timestamp.
func (h *Handler) openImage(ctx context.Context, m *Module, file string, dsl *DeferredSymbolLoad) (io.ReaderAt, io.Closer, error) {
	var firstErr error
	if file != "" {
		if fo, ok := h.cfg.Target.(target.FileOpener); ok && file == m.req.ImageName {
			r, c, err := fo.OpenModule(target.Module{Name: m.Name, Path: file, Base: m.Base, Size: m.Size})
			if err == nil && r != nil {
				return r, c, nil
			}
			firstErr = err
		}
		f, err := os.Open(file)
		if err == nil {
			return f, f, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if m.req.InMemory || file == "" && m.Size > 0 && h.cfg.Target != nil {
		r := memory.ReaderAt(h, m.Base, m.Size)
		var magic [4]byte
		if _, err := r.ReadAt(magic[:], 0); err == nil {
			return r, nil, nil
		} else if firstErr == nil {
			firstErr = fmt.Errorf("read image from memory at %#x: %w", m.Base, err)
		}
	}
	if file != "" && m.req.TimeDateStamp != 0 && dsl != nil && h.Options()&SYMOPT_SECURE == 0 {
		name := target.BaseName(file)
		path, err := h.serverClient(h.searchPath()).FetchImage(ctx, name, m.req.TimeDateStamp, uint32(m.Size), h.progress(ctx, "download", name, dsl))
		if err == nil {
			f, err := os.Open(path)
			if err == nil {
				return f, f, nil
			}
		}
		if errors.Is(err, symsrv.ErrCanceled) {
			return nil, nil, fmt.Errorf("load symbols of %s: %w", m.Name, ErrCanceled)
		}
		if firstErr == nil || !errors.Is(err, symsrv.ErrNotFound) {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = errors.New("no image file")
	}
	return nil, nil, firstErr
}

// findDebugFile looks for a separate debug file of an ELF image: by build
// ID and debuglink in the debug and search directories, then from the
// symbol servers by build ID.
func (h *Handler) findDebugFile(ctx context.Context, m *Module, image string, ident symfile.Ident, dsl *DeferredSymbolLoad) (r io.ReaderAt, c io.Closer, path string, canceled bool) {
	sp := h.searchPath()
	secure := h.Options()&SYMOPT_SECURE != 0
	byID, byLink := sp.debugCandidates(image, ident.BuildID, ident.DebugLink)
	if secure {
		byID, byLink = nil, nil
		if image != "" && ident.DebugLink != "" {
			_, byLink = (&searchPath{}).debugCandidates(image, nil, ident.DebugLink)
		}
	}
	try := func(path string, wantCRC bool) (io.ReaderAt, io.Closer, bool) {
		if !exists(path) {
			return nil, nil, false
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, false
		}
		id, err := elfsym.Identify(f)
		switch {
		case err != nil:
			h.event(SevProblem, EventIdentityMismatch, path, "%s: %s is not a usable ELF file: %v", m.Name, path, err)
		case len(ident.BuildID) > 0 && len(id.BuildID) > 0 && !bytes.Equal(id.BuildID, ident.BuildID) &&
			(!wantCRC || h.Options()&SYMOPT_EXACT_SYMBOLS != 0):
			h.event(SevProblem, EventIdentityMismatch, path, "%s: %s has build ID %x, the image %x", m.Name, path, id.BuildID, ident.BuildID)
		case wantCRC && !crcMatches(f, ident.DebugLinkCRC):
			h.event(SevProblem, EventIdentityMismatch, path, "%s: %s does not match the debuglink CRC %#08x", m.Name, path, ident.DebugLinkCRC)
		default:
			h.event(SevInfo, EventDebugFileFound, path, "%s: symbols from %s", m.Name, path)
			return f, f, true
		}
		f.Close()
		return nil, nil, false
	}
	for _, p := range byID {
		if r, c, ok := try(p, false); ok {
			return r, c, p, false
		}
	}
	for _, p := range byLink {
		if r, c, ok := try(p, true); ok {
			return r, c, p, false
		}
	}
	if ctx.Err() != nil {
		return nil, nil, "", true
	}
	if len(ident.BuildID) == 0 {
		return nil, nil, "", false
	}
	client := h.serverClient(sp)
	name := fmt.Sprintf("%x", ident.BuildID)
	path, err := client.FetchDebuginfo(ctx, ident.BuildID, symsrv.KindDebuginfo, h.progress(ctx, "download", name, dsl))
	if err != nil {
		if errors.Is(err, symsrv.ErrCanceled) || ctx.Err() != nil {
			return nil, nil, "", true
		}
		if !errors.Is(err, symsrv.ErrNotFound) {
			h.event(SevProblem, EventStatus, m.Name, "%s: debug information for build ID %s: %v", m.Name, name, err)
		}
		return nil, nil, "", false
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, "", false
	}
	h.event(SevInfo, EventDebugFileFound, path, "%s: symbols from %s", m.Name, path)
	return f, f, path, false
}

// serverClient returns the client to fetch with: the whole search path, or
// only its directories under SYMOPT_SECURE or when the callback answers
// true to CBA_CHECK_ENGOPT_DISALLOW_NETWORK_PATHS.
func (h *Handler) serverClient(sp *searchPath) *symsrv.Client {
	if h.Options()&SYMOPT_SECURE != 0 || !sp.remote {
		return sp.local
	}
	if h.deliver(CBA_CHECK_ENGOPT_DISALLOW_NETWORK_PATHS, nil) {
		return sp.local
	}
	if h.Options()&SYMOPT_DISABLE_SYMSRV_TIMEOUT != 0 {
		return sp.untimed
	}
	return sp.client
}

// crcMatches reports whether the file's CRC-32 (the IEEE polynomial, as
// .gnu_debuglink uses) is crc.
func crcMatches(f *os.File, crc uint32) bool {
	hsh := crc32.NewIEEE()
	if _, err := io.Copy(hsh, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return false
	}
	return hsh.Sum32() == crc
}

// closers closes several things once.
type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

package elfsym

import (
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fntable/fntable/internal/filemap"
	"github.com/fntable/fntable/symfile/dwarfidx"
)

// inflatedSize returns the size of debug section s once inflated, and
// whether it is compressed. Compressed sections come in two forms:
// SHF_COMPRESSED, whose header (gABI "Section Compression") debug/elf
// reads when it opens the file, setting Size to the inflated size; and
// GNU's older .zdebug_ sections, which start with "ZLIB" and the inflated
// size as a big-endian 64-bit number. debug/elf's Section.Open inflates
// both.
func (f *File) inflatedSize(s *elf.Section) (size uint64, compressed bool, err error) {
	switch {
	case s.Flags&elf.SHF_COMPRESSED != 0:
		return s.Size, true, nil
	case strings.HasPrefix(s.Name, ".zdebug_"):
		var hdr [12]byte
		if _, err := f.r.ReadAt(hdr[:], int64(s.Offset)); err != nil || string(hdr[:4]) != "ZLIB" {
			return 0, false, fmt.Errorf("section %s: no ZLIB header", s.Name)
		}
		return binary.BigEndian.Uint64(hdr[4:]), true, nil
	}
	return s.Size, false, nil
}

// sectionData returns the contents of a small section, decompressed by
// debug/elf.
func sectionData(s *elf.Section, limit uint64) ([]byte, error) {
	if s.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	if s.Size > limit || (s.Flags&elf.SHF_COMPRESSED == 0 && s.FileSize > limit) {
		return nil, fmt.Errorf("section %s: size %#x exceeds the limit", s.Name, s.Size)
	}
	return s.Data()
}

// debugSection returns the contents of debug section s, decompressed. A
// compressed section is taken from Options.CacheDir when an earlier
// process left its decompressed copy there, and is put there otherwise.
func (f *File) debugSection(s *elf.Section, limit uint64) ([]byte, error) {
	if s.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	size, compressed, err := f.inflatedSize(s)
	if err != nil {
		return nil, err
	}
	if size > limit || s.FileSize > limit {
		return nil, fmt.Errorf("section %s: size %#x exceeds the limit", s.Name, max(size, s.FileSize))
	}
	if !compressed {
		return s.Data()
	}
	cache := f.cachePath(s, size)
	if cache != "" {
		if b, err := mapCached(cache, size); err == nil {
			return b, nil
		}
	}
	out, err := readSized(s.Open(), size, s.FileSize)
	if err != nil {
		return nil, fmt.Errorf("section %s: decompress: %w", s.Name, err)
	}
	if cache != "" {
		storeCached(cache, out)
		pruneCache(f.opts.CacheDir, time.Now())
	}
	return out, nil
}

// readSized reads exactly size bytes from the decompressor r, which was
// given compressed bytes. The size comes from the file, so the buffer is
// not allocated at that size up front: it starts at a multiple of the
// compressed size (DWARF compresses 3 to 5 times) and doubles as data
// arrives, so a header that lies costs no more memory than the data.
func readSized(r io.Reader, size, compressed uint64) ([]byte, error) {
	out := make([]byte, 0, min(size, max(8*compressed, 64<<10)))
	for uint64(len(out)) < size {
		if len(out) == cap(out) {
			out = slices.Grow(out, int(min(size, 2*uint64(cap(out)))-uint64(len(out))))
		}
		n, err := r.Read(out[len(out):min(uint64(cap(out)), size)])
		out = out[:len(out)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if uint64(len(out)) != size {
		return nil, fmt.Errorf("%d bytes where the header says %d", len(out), size)
	}
	var one [1]byte
	if n, _ := r.Read(one[:]); n > 0 {
		return nil, fmt.Errorf("more than the %d bytes the header says", size)
	}
	return out, nil
}

// cachePath names the cached copy of compressed section s: the build ID,
// then the section's name with its compressed and uncompressed sizes, so
// that two files with one build ID but different debug information (one
// rewritten by dwz, say) do not share a copy. Files without a build ID
// are not cached.
func (f *File) cachePath(s *elf.Section, size uint64) string {
	id := f.ident.BuildID
	if f.opts.CacheDir == "" || len(id) < 2 {
		return ""
	}
	h := hex.EncodeToString(id)
	name := s.Name
	if strings.HasPrefix(name, ".zdebug_") {
		name = ".debug_" + name[len(".zdebug_"):]
	}
	name += "-" + strconv.FormatUint(s.FileSize, 16) + "-" + strconv.FormatUint(size, 16)
	return filepath.Join(f.opts.CacheDir, h[:2], h[2:], name)
}

// storeCached writes data to path atomically: a temporary file in the same
// directory, synced, then renamed, so that a reader never maps a partial
// copy. Failures are ignored: the cache is an optimization.
func storeCached(path string, data []byte) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}

// Cache upkeep: a copy not used for cacheMaxUnused is deleted, by a
// sweep made at most once per cacheSweepEvery when a copy is stored (a
// use refreshes a copy's modification time, at most once a day, so
// read-only uses cost no write). debuginfod's client cleans its cache
// the same way, by age.
const (
	cacheMaxUnused  = 30 * 24 * time.Hour
	cacheSweepEvery = 24 * time.Hour
	cacheTouchEvery = 24 * time.Hour
	cacheStamp      = ".swept" // its modification time is the last sweep's
)

// pruneCache deletes the copies under dir unused since before now -
// cacheMaxUnused, and the directories they leave empty, if the last sweep
// is older than cacheSweepEvery. Only the cache's own layout (xx/rest/
// files) is looked at; failures are ignored.
func pruneCache(dir string, now time.Time) {
	stamp := filepath.Join(dir, cacheStamp)
	if fi, err := os.Stat(stamp); err == nil && now.Sub(fi.ModTime()) < cacheSweepEvery {
		return
	}
	if f, err := os.Create(stamp); err == nil {
		f.Close()
		os.Chtimes(stamp, now, now)
	}
	tops, _ := os.ReadDir(dir)
	for _, top := range tops {
		if !top.IsDir() || len(top.Name()) != 2 {
			continue
		}
		topDir := filepath.Join(dir, top.Name())
		ids, _ := os.ReadDir(topDir)
		for _, id := range ids {
			if !id.IsDir() {
				continue
			}
			idDir := filepath.Join(topDir, id.Name())
			files, _ := os.ReadDir(idDir)
			left := len(files)
			for _, f := range files {
				fi, err := f.Info()
				if err == nil && fi.Mode().IsRegular() && now.Sub(fi.ModTime()) > cacheMaxUnused &&
					os.Remove(filepath.Join(idDir, f.Name())) == nil {
					left--
				}
			}
			if left == 0 {
				os.Remove(idDir)
			}
		}
		os.Remove(topDir) // fails unless empty
	}
}

// mapped holds the cached copies this process has mapped, by file
// identity. A mapping is never unmapped: the slices a file's index keeps
// point into it, and an index may be in use on another goroutine after
// its File is closed. Each cached file is mapped once per process however
// often it is opened, so the address space this takes is bounded by the
// distinct debug files read. Only the cache's own files are mapped so:
// they are replaced by rename, never rewritten in place, while a file of
// the user's may be (cp truncates and rewrites), which would fault reads
// of a mapping kept or change strings that point into it.
var mapped struct {
	sync.Mutex
	m map[[2]uint64][]byte // device, inode → contents
}

// unitTablePath names the cached table of the unit headers of info (see
// dwarfidx.Sections.Units), kept beside the cached copy of info, which it
// describes; "" when info is not compressed (it is not cached either) or
// there is no cache.
func (f *File) unitTablePath(info *elf.Section) string {
	size, compressed, err := f.inflatedSize(info)
	if err != nil || !compressed {
		return ""
	}
	if p := f.cachePath(info, size); p != "" {
		return p + ".units"
	}
	return ""
}

// unitTableLimit is the most bytes the unit table of s can take: 40 a
// unit, which takes at least 11 bytes of .debug_info, and 24 a range,
// each of a unit's DIE (one per unit) or of a range list (at least 2
// bytes of .debug_rnglists, 16 of .debug_ranges).
func unitTableLimit(s *dwarfidx.Sections) int64 {
	return 64 + int64(len(s.Info))*(4+3) + int64(len(s.RngLists)+len(s.Ranges))*12
}

// readCached reads the cached file at path, if it exists and holds at
// most limit bytes; nil otherwise. Like mapCached, it marks the file in
// use for pruneCache.
func readCached(path string, limit int64) []byte {
	fd, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > limit {
		return nil
	}
	touchCached(path, fi)
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(fd, b); err != nil {
		return nil
	}
	return b
}

// touchCached marks the cached file at path, whose information is fi,
// in use (pruneCache keeps it), at most once every cacheTouchEvery.
func touchCached(path string, fi os.FileInfo) {
	if time.Since(fi.ModTime()) > cacheTouchEvery {
		now := time.Now()
		os.Chtimes(path, now, now)
	}
}

// mapCached maps the cached copy at path read-only (reads it, where the
// system has no mmap), if it exists and has the expected size. Cached
// copies are replaced only by rename, never rewritten in place, so the
// mapping's pages stay valid.
func mapCached(path string, size uint64) ([]byte, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || uint64(fi.Size()) != size || size == 0 || size > maxSectionSize {
		return nil, errors.New("cached copy has the wrong size")
	}
	touchCached(path, fi) // in use: kept by pruneCache
	key, keyed := fileKey(fi)
	mapped.Lock()
	defer mapped.Unlock()
	if b, ok := mapped.m[key]; keyed && ok && uint64(len(b)) == size {
		return b, nil
	}
	b, _, err := filemap.Map(fd, 0, size) // never unmapped: see mapped
	if errors.Is(err, filemap.ErrUnsupported) {
		b = make([]byte, size)
		_, err = io.ReadFull(fd, b)
	}
	if err != nil {
		return nil, err
	}
	if keyed {
		if mapped.m == nil {
			mapped.m = map[[2]uint64][]byte{}
		}
		mapped.m[key] = b
	}
	return b, nil
}

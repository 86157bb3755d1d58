package cfi

import (
	"errors"
	"os"
	"sync"

	"github.com/fntable/fntable/unwind"
)

// Cache shares Files between walks: one File per ELF object, keyed by
// build ID, or by path, size and modification time for a file without
// one, so that unwinding a process again parses no call-frame information
// again. The zero value is ready to use. A Cache is safe for concurrent
// use. The Files it returns belong to it: callers must not Close them;
// [Cache.Close] closes them all.
type Cache struct {
	mu     sync.Mutex
	byID   map[string]*File
	byStat map[statKey]*File
	files  []*File
}

// statKey identifies a file on disk when it has no build ID.
type statKey struct {
	path  string
	size  int64
	mtime int64
}

// Open returns the File of the named ELF file, opening it on first use.
func (c *Cache) Open(name string) (*File, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	sk := statKey{name, fi.Size(), fi.ModTime().UnixNano()}
	c.mu.Lock()
	if f := c.byStat[sk]; f != nil {
		c.mu.Unlock()
		return f, nil
	}
	c.mu.Unlock()
	f, err := Open(name)
	if err != nil {
		return nil, err
	}
	return c.add(f, sk, true), nil
}

// OpenMemory returns the File of the ELF image complete in mem at base
// (see [NewFileFromMemory]), such as the vDSO. The File copies the
// sections it needs before OpenMemory returns, so it outlives mem. Images
// with a build ID are shared; one without is read each time.
func (c *Cache) OpenMemory(mem unwind.Memory, base uint64) (*File, error) {
	f, err := NewFileFromMemory(mem, base)
	if err != nil {
		return nil, err
	}
	return c.add(f, statKey{}, false), nil
}

// add records f unless a File with its build ID is cached, which it then
// returns instead, closing f.
func (c *Cache) add(f *File, sk statKey, haveStat bool) *File {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil {
		c.byID = make(map[string]*File)
		c.byStat = make(map[statKey]*File)
	}
	id := string(f.BuildID())
	if old := c.byID[id]; id != "" && old != nil {
		f.Close()
		f = old
	} else {
		c.files = append(c.files, f)
		if id != "" {
			c.byID[id] = f
		}
	}
	if haveStat {
		c.byStat[sk] = f
	}
	return f
}

// Len returns the number of Files the cache holds.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.files)
}

// Close closes every File of the cache and empties it.
func (c *Cache) Close() error {
	c.mu.Lock()
	files := c.files
	c.files, c.byID, c.byStat = nil, nil, nil
	c.mu.Unlock()
	var errs []error
	for _, f := range files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

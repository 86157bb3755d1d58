package symhandler

import (
	"fmt"
	"os"

	"github.com/fntable/fntable/symfile/debugfile"
	"github.com/fntable/fntable/symsrv"
)

// defaultDebugDir is the system's global debug directory (GDB's
// debug-file-directory on Debian and Fedora).
const defaultDebugDir = debugfile.DefaultDir

// searchPath is a parsed symbol search path.
type searchPath struct {
	raw       string
	client    *symsrv.Client // every element
	untimed   *symsrv.Client // the same without time limits (SYMOPT_DISABLE_SYMSRV_TIMEOUT)
	local     *symsrv.Client // the directories and directory stores only (SYMOPT_SECURE)
	remote    bool           // the path has server elements
	dirs      []string       // the plain directories
	debugDirs []string       // global debug directories
}

func parseSearchPath(s string, debugDirs []string) (*searchPath, error) {
	sp := &searchPath{raw: s, debugDirs: debugDirs}
	if debugDirs == nil {
		sp.debugDirs = []string{defaultDebugDir}
	}
	var err error
	if s == "" {
		sp.client, err = symsrv.FromEnv()
		if err != nil {
			return nil, fmt.Errorf("symbol search path from the environment: %w", err)
		}
	} else {
		els, err := symsrv.ParsePath(s)
		if err != nil {
			return nil, err
		}
		sp.client = &symsrv.Client{Elements: els, CacheDir: symsrv.DefaultCacheDir()}
	}
	sp.untimed = sp.client.Untimed()
	sp.local = &symsrv.Client{CacheDir: sp.client.CacheDir}
	for _, e := range sp.client.Elements {
		switch {
		case e.Remote():
			sp.remote = true
		case e.Type == symsrv.ElemDir:
			sp.dirs = append(sp.dirs, e.Path)
			sp.local.Elements = append(sp.local.Elements, e)
		case e.Type == symsrv.ElemSymbolServer:
			sp.local.Elements = append(sp.local.Elements, e) // a store in a directory
		}
	}
	return sp, nil
}

// SetSearchPath replaces the symbol search path (SymSetSearchPath):
// elements separated by ';' — plain directories, srv*CACHE*URL Microsoft
// symbol stores, cache*DIR, debuginfod*URL servers (see symsrv.ParsePath).
// "" means the environment's (_NT_SYMBOL_PATH, DEBUGINFOD_URLS). Plain
// directories are also searched for separate debug files (by build ID in
// their .build-id tree, and by .gnu_debuglink name). Modules already loaded
// keep their symbols; call Module.Reload to read them again.
func (h *Handler) SetSearchPath(s string) error {
	if h.closed.Load() {
		return ErrClosed
	}
	sp, err := parseSearchPath(s, h.cfg.DebugDirs)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.search = sp
	h.mu.Unlock()
	return nil
}

// SearchPath returns the search path as set (SymGetSearchPath).
func (h *Handler) SearchPath() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.search.raw
}

func (h *Handler) searchPath() *searchPath {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.search
}

// debugCandidates returns where a separate debug file for image may be,
// in GDB's order (see debugfile.Candidates): by build ID under each debug
// directory and search directory, then by debuglink name next to the image,
// in its .debug directory, under each debug directory's copy of the
// image's directory, and in each search directory.
func (sp *searchPath) debugCandidates(image string, buildID []byte, debugLink string) (byID, byLink []string) {
	return debugfile.Candidates(image, buildID, debugLink, sp.debugDirs, sp.dirs)
}

func exists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
